"""Pipeline efficiency: the bare model against whole workers through Kafka and Redis, in one run.

    .venv/bin/python bench/bench_pipeline.py                          # draem_small at 128 px, CPU
    .venv/bin/python bench/bench_pipeline.py --arch hostcheck --input-size 64 --frames 12000 \\
        --masks anomalous,all --workers 1,2 --consumers kafka-python,confluent   # the host path alone
    .venv/bin/python bench/bench_pipeline.py --device cuda --arch draem --input-size 256 --amp bf16

One run, one machine, one model (weights after a few training steps: speed does not depend on
what they learned); `hostcheck` is a registered model that costs almost nothing
(model_store/models/hostcheck.py), so with it the run measures the host path: Kafka fetch,
decode, batching, verdicts, masks, Redis, alerts, commits.
1. bare model: the worker's own Engine with the worker's default settings, uint8 batches of
   `--batch` in, maps and scores out (no decode, no I/O), timed for `--seconds` before and after
   the other phases; the better of the two counts;
2. throughput, per `--masks` mode, per `--consumers` client (the workers' LW_KAFKA_CONSUMER) and
   per `--workers` count: `--frames` JPEG frames (256 x 256, 4 synthetic cameras) are put on
   Kafka first (a separate producer process), then N worker processes of one group (`python -m
   worker.app`, configured by LW_* variables only, default threads) consume them; timed by Redis's
   clock from the moment every process has written a result to the last result;
3. latency, per consumer client: a light sender (librdkafka where installed) offers each `--load`
   x that client's first throughput (1 worker), or each `--fps`, for `--latency-seconds`
   (pre-encoded frames, capture time = hand-over to Kafka); p50 / p90 / p99 of capture-to-Redis
   latency (Redis's time of each result's stream entry minus its capture time; each result's own
   `latency_ms`, which stops before masks and the Redis write, beside it), next to the bound
   max_wait_ms + 2 x one batch's compute + 20 ms; the slowest frame of each second (a tail spread
   out, or one episode); and where the time went: p50 / p99 bucket bounds of the first worker's
   stage histograms (queue: poll to batch, decode, infer, publish,
   and capture to Redis) over the same seconds; with `--flame`, a py-spy flame graph of the
   first worker (its threads apart) over the first load's seconds, beside the JSON.
Results: one JSON file in bench/results/ (named for model, device, precision, versions and date)
and Markdown rows on stdout.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Callable

import numpy as np
import redis
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.bench_engine import keep_full  # noqa: E402
from testkit.topics import delete_topics  # noqa: E402
from testkit.workers import WorkerPool, spawn  # noqa: E402
from linewatch.settings import KafkaSettings  # noqa: E402
from linewatch.topics import ensure_topics  # noqa: E402
from model_store.quick import train_quick  # noqa: E402
from model_store.store import ModelStore  # noqa: E402
from producer.synthetic import SyntheticCamera  # noqa: E402
from worker.decode import InputSpec  # noqa: E402
from worker.engine import Engine, pick_device  # noqa: E402
from worker.settings import WorkerSettings  # noqa: E402

CAMERAS = 4
PARTITIONS = 4


def machine() -> dict:
    cpu = platform.processor()
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    info = {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
            "platform": platform.platform()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def bare_model(engine: Engine, batch: int, seconds: float) -> float:
    h, w, c = engine.spec.height, engine.spec.width, engine.spec.channels
    frames = np.random.default_rng(0).integers(0, 255, (batch, h, w, c), dtype=np.uint8)
    for _ in range(3):
        engine.infer(frames)
    done, elapsed = keep_full(engine, frames, seconds)
    return done / elapsed


def run_producer(kafka: str, topic_base: str, frames_per_camera: int, fps: float, size: int) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LW_")}
    cameras = [{"id": f"cam-{i}", "source": f"synthetic://?seed={i}&defect_rate=0.02&width={size}&height={size}",
                "fps": fps, "loop": True} for i in range(1, CAMERAS + 1)]
    env.update(LW_KAFKA_BOOTSTRAP=kafka, LW_TOPIC_BASE=topic_base, LW_CAMERAS=json.dumps(cameras),
               LW_MAX_FRAMES=str(frames_per_camera), LW_METRICS_PORT="0", LW_DROP_POLICY="block", LW_LOG_LEVEL="warning")
    return spawn([sys.executable, "-m", "producer.app"], env=env)


def paced_send(kafka: str, topic: str, fps: float, seconds: float, size: int) -> int:
    """Send pre-encoded synthetic frames round-robin over the cameras at `fps` in all; returns how many.

    The cameras of a real line run on other machines; this stand-in shares the worker's two cores,
    so it uses librdkafka (confluent-kafka, a dev extra) where installed: kafka-python's producer
    cost ~0.6 ms of CPU per record here (0.53 cores at 900 frames/s), librdkafka a tenth of that.
    Linger 1 ms either way."""
    from linewatch.contract import FrameMeta, frame_headers
    from producer.capture import encode_frame

    pool = {f"cam-{i}": [encode_frame(SyntheticCamera(seed=i, width=size, height=size).render(q)[0], "jpeg") for q in range(16)]
            for i in range(1, CAMERAS + 1)}
    send, poll, flush = _sender(kafka)
    total, start, n = int(fps * seconds), time.monotonic(), 0
    while n < total:
        due = min(total, int((time.monotonic() - start) * fps) + 1)  # the frames due by now
        for n in range(n, due):
            camera = f"cam-{n % CAMERAS + 1}"
            meta = FrameMeta(camera=camera, seq=n // CAMERAS, capture_ns=time.time_ns(), encoding="jpeg", width=size, height=size)
            send(topic, camera.encode(), pool[camera][(n // CAMERAS) % 16], frame_headers(meta))
        n = due
        poll()
        time.sleep(0.001)
    flush()
    return total


def _sender(kafka: str) -> tuple[Callable[[str, bytes, bytes, list], object], Callable[[], object], Callable[[], object]]:
    """(send(topic, key, value, headers), poll(), flush()) of the lightest Kafka producer installed."""
    try:
        from confluent_kafka import Producer
    except ImportError:
        from kafka import KafkaProducer

        print("latency sender: confluent-kafka not installed; kafka-python's producer takes ~0.5 core from the worker",
              flush=True)
        producer = KafkaProducer(bootstrap_servers=kafka, linger_ms=1, acks=1)
        return (lambda t, k, v, h: producer.send(t, key=k, value=v, headers=h)), (lambda: None), \
            (lambda: (producer.flush(), producer.close()))
    fast = Producer({"bootstrap.servers": kafka, "linger.ms": 1, "acks": 1, "partitioner": "murmur2_random"})

    def flush() -> None:
        if fast.flush(30) != 0:
            raise SystemExit("latency sender: frames still undelivered after 30 s")

    return (lambda t, k, v, h: fast.produce(t, key=k, value=v, headers=h)), (lambda: fast.poll(0)), flush


def count_results(client: redis.Redis, prefix: str) -> int:
    return sum(client.xlen(f"{prefix}:history:cam-{i}") for i in range(1, CAMERAS + 1))


def wait_count(client: redis.Redis, prefix: str, target: int, timeout_s: float) -> tuple[int, float | None]:
    """Wait for `target` results; returns (count, monotonic time the first result appeared)."""
    deadline, first = time.monotonic() + timeout_s, None
    count = 0
    while time.monotonic() < deadline:
        count = count_results(client, prefix)
        if count and first is None:
            first = time.monotonic()
        if count >= target:
            break
        time.sleep(0.01)
    return count, first


def latencies(client: redis.Redis, prefix: str, since_ms: int) -> tuple[np.ndarray, np.ndarray, float, list[dict]]:
    """For the results written since `since_ms`: capture-to-Redis latencies (ms: Redis's clock when
    the result was added to its stream, from the entry ID, minus the capture time), the results'
    own `latency_ms` (capture to the moment the worker began publishing the batch: before masks
    and the Redis write; the figures until 2026-12-07 03:40 UTC were these), the share flagged
    anomalous, and a timeline (per second: frames, p50 and max) that shows whether a tail is
    spread out or one stall."""
    to_redis, to_publish, written, anomalous = [], [], [], 0
    for i in range(1, CAMERAS + 1):
        for entry, fields in client.xrange(f"{prefix}:history:cam-{i}", min=f"{since_ms}-0"):
            if fields[b"latency_ms"]:  # empty when the capture clock was implausible
                written.append(_entry_ms(entry))
                to_redis.append(written[-1] - int(fields[b"capture_ns"]) / 1e6)
                to_publish.append(float(fields[b"latency_ms"]))
                anomalous += fields.get(b"anomalous") == b"1"
    lat, second = np.array(to_redis), (np.array(written, np.int64) - since_ms) // 1000
    timeline = [{"s": int(t), "frames": int((second == t).sum()), "p50_ms": float(np.median(lat[second == t])),
                 "max_ms": float(lat[second == t].max())} for t in np.unique(second)]
    return lat, np.array(to_publish), anomalous / max(1, len(to_redis)), timeline


def stage_quantiles(before: dict[str, dict[float, float]], after: dict[str, dict[float, float]]) -> dict[str, dict]:
    """Per stage, the histogram bucket bounds (ms) holding the p50 and p99 of what was observed between two scrapes."""
    out = {}
    for stage, buckets in after.items():
        delta = sorted((le, n - before.get(stage, {}).get(le, 0.0)) for le, n in buckets.items())
        total = delta[-1][1] if delta else 0.0
        if total <= 0:
            continue
        bound = {q: next(le for le, n in delta if n >= q * total) for q in (0.5, 0.99)}
        out[stage] = {"n": int(total), "p50_le_ms": bound[0.5] * 1000, "p99_le_ms": bound[0.99] * 1000}
    return out


def _entry_ms(entry_id: bytes) -> int:
    """Redis's time (ms) in a stream entry ID: when the entry was added."""
    return int(entry_id.split(b"-")[0])


def _rate(times_ms: np.ndarray) -> float:
    """Frames per second of results written at these times (ms)."""
    span = (times_ms.max() - times_ms.min()) / 1000 if len(times_ms) > 1 else 0.0
    return (len(times_ms) - 1) / span if span > 0 else 0.0


class Run:
    """One topic set, key prefix and group; worker processes configured by LW_* variables."""

    def __init__(self, args: argparse.Namespace, root: Path, masks: str, workers: int, consumer: str) -> None:
        self.args = args
        self.base = self.group = f"bench-{uuid.uuid4().hex[:8]}"
        self.prefix = f"bench:{self.base}"
        ensure_topics(KafkaSettings(kafka_bootstrap=args.kafka, topic_base=self.base), partitions=PARTITIONS)
        self.client = redis.Redis.from_url(args.redis)
        env = {
            "LW_KAFKA_BOOTSTRAP": args.kafka, "LW_TOPIC_BASE": self.base, "LW_REDIS_URL": args.redis,
            "LW_REDIS_PREFIX": self.prefix, "LW_GROUP_ID": self.group, "LW_MODEL": "bench@production",
            "LW_MODEL_ROOT": str(root), "LW_DEVICE": args.device, "LW_AMP": args.amp, "LW_MAX_BATCH": str(args.batch),
            "LW_MAX_WAIT_MS": str(args.max_wait_ms), "LW_MASKS": masks, "LW_LOG_LEVEL": "warning", "LW_MODEL_POLL_S": "0",
            "LW_KAFKA_CONSUMER": consumer,
            # Every result is counted in the history streams: no cap may trim them during the run.
            "LW_HISTORY_MAXLEN": "10000000",
        }
        if args.worker_threads:
            env["LW_TORCH_THREADS"] = str(args.worker_threads)
        env.update(item.split("=", 1) for item in args.worker_env)
        self.pool = WorkerPool(env, Path(tempfile.mkdtemp(prefix="lw-bench-logs-")), tied=True)
        self.names = [f"w{i}" for i in range(workers)]

    def throughput(self, frames: int) -> tuple[float, int, dict[str, float | int]]:
        """(frames/s, results, other timings) for `frames` put on Kafka first.

        Timed by Redis's own clock (stream entry IDs of the results), from the moment every worker
        process had written its first result to the last result: with several processes the span
        before that is the group's start (joins, a rebalance), not its throughput. Other timings,
        for comparison: the whole span from the first result, and the way this bench timed until
        2026-12-07 (from when it first saw a result, after waiting for one worker's readiness,
        which let a worker's early frames flatter the rate: two kafka-python processes gave 2,230
        frames/s timed that way and 1,199 over Redis's whole span, in one run)."""
        per_camera = frames // CAMERAS
        if run_producer(self.args.kafka, self.base, per_camera, 0, self.args.frame_size).wait(900) != 0:
            raise SystemExit("producer failed")
        for name in self.names:
            self.pool.start(name)
        self.pool.wait_ready(self.names[:1], timeout_s=300)
        total = per_camera * CAMERAS
        count, first = wait_count(self.client, self.prefix, total, timeout_s=1800)
        elapsed = time.monotonic() - first if first else float("nan")
        times, workers = self.result_times()
        steady_from = max(times[workers == w].min() for w in np.unique(workers)) if len(times) else 0
        steady = times[times >= steady_from]
        other = {"img_s_whole_span": _rate(times),
                 "img_s_timed_from_first_seen": (count - 1) / elapsed if count > 1 else 0.0,
                 "steady_frames": int(len(steady))}
        return _rate(steady), count, other

    def result_times(self) -> tuple[np.ndarray, np.ndarray]:
        """Redis's time (ms, from the stream entry ID) and the writing worker of every result."""
        times, workers = [], []
        for i in range(1, CAMERAS + 1):
            for entry, fields in self.client.xrange(f"{self.prefix}:history:cam-{i}"):
                times.append(_entry_ms(entry))
                workers.append(fields[b"worker"].decode())
        return np.array(times, np.int64), np.array(workers)

    def stage_counts(self) -> dict[str, dict[float, float]]:
        """Cumulative bucket counts of the first worker's stage histograms (its /metrics)."""
        import urllib.request

        from prometheus_client.parser import text_string_to_metric_families

        port = self.pool.workers[self.names[0]].port
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
            text = reply.read().decode()
        out: dict[str, dict[float, float]] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "linewatch_worker_stage_seconds_bucket":
                    out.setdefault(sample.labels["stage"], {})[float(sample.labels["le"])] = sample.value
                elif sample.name == "linewatch_worker_end_to_end_seconds_bucket":
                    out.setdefault("capture_to_redis", {})[float(sample.labels["le"])] = sample.value
        return out

    def profile(self, seconds: float, out: Path) -> subprocess.Popen:
        """py-spy (a dev dependency) samples the first worker for `seconds` into an SVG flame graph."""
        pid = self.pool.workers[self.names[0]].proc.pid
        spy = Path(sys.executable).with_name("py-spy")
        return subprocess.Popen([str(spy), "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "200",
                                 "--threads", "--nonblocking", "--output", str(out)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def latency(self, fps_total: float, seconds: float) -> tuple[np.ndarray, np.ndarray, float, list[dict]]:
        """Frames offered at `fps_total` for `seconds`; capture time = the moment each is handed to Kafka.

        A light sender (pre-encoded frames, fresh headers) rather than the producer program: its
        rendering and encoding would take the CPU the workers are measured on, and its queue
        would count as latency."""
        since_ms = int(time.time() * 1000)
        before = count_results(self.client, self.prefix)
        sent = paced_send(self.args.kafka, f"{self.base}.frames", fps_total, seconds, self.args.frame_size)
        wait_count(self.client, self.prefix, before + sent, timeout_s=120)
        return latencies(self.client, self.prefix, since_ms)

    def close(self) -> None:
        self.pool.stop_all()
        delete_topics(self.args.kafka, self.base)
        for key in self.client.scan_iter(f"{self.prefix}:*", count=1000):
            self.client.delete(key)


def measure_latency(run: Run, offered: float, throughput: float, masks: str, seconds: float,
                    flame: Path | None) -> tuple[dict, Path | None]:
    """One latency phase at `offered` frames/s: its row for the JSON (printed too), and the flame
    graph written over it when `flame` names one (None if py-spy failed)."""
    before = run.stage_counts()
    spy = run.profile(seconds, flame) if flame else None
    lat, to_publish, anomalous, timeline = run.latency(offered, seconds)
    row = {"load": offered / throughput if throughput else float("nan"), "offered_fps": offered, "masks": masks,
           "frames": int(len(lat)), "anomalous_share": anomalous,
           **{f"p{q}_ms": float(np.percentile(lat, q)) for q in (50, 90, 99)},
           **{f"p{q}_ms_to_publish_start": float(np.percentile(to_publish, q)) for q in (50, 90, 99)},
           "stages": stage_quantiles(before, run.stage_counts()), "timeline": timeline}
    if spy is not None and spy.wait(60) != 0:
        print(f"py-spy failed (exit {spy.returncode}); no flame graph", flush=True)
        flame = None
    print(f"latency at {offered:.0f} frames/s offered: p50 {row['p50_ms']:.1f} ms, p90 {row['p90_ms']:.1f} ms, "
          f"p99 {row['p99_ms']:.1f} ms ({len(lat)} frames; to the start of publishing: p50 "
          f"{row['p50_ms_to_publish_start']:.1f}, p99 {row['p99_ms_to_publish_start']:.1f})", flush=True)
    print("  slowest frame per second (ms): " + " ".join(f"{t['max_ms']:.0f}" for t in timeline), flush=True)
    return row, flame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="draem_small")
    parser.add_argument("--input-size", type=int, default=128)
    parser.add_argument("--frame-size", type=int, default=256, help="camera frame size (JPEG, square)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--amp", default="off", choices=["off", "fp16", "bf16"])
    parser.add_argument("--worker-threads", type=int, default=0, help="the workers' LW_TORCH_THREADS (0: their default)")
    parser.add_argument("--batch", type=int, default=16, help="bare-model batch = the workers' LW_MAX_BATCH")
    parser.add_argument("--max-wait-ms", type=float, default=10.0, help="the workers' LW_MAX_WAIT_MS")
    parser.add_argument("--seconds", type=float, default=20, help="bare-model timing")
    parser.add_argument("--frames", type=int, default=1000, help="frames for each throughput phase (all cameras; 1,000 at 25 img/s: 40 s, enough that start-up does not weigh)")
    parser.add_argument("--masks", default="all", help="comma list of the workers' LW_MASKS, one throughput phase each")
    parser.add_argument("--workers", default="1", help="comma list of worker process counts, one throughput phase each")
    parser.add_argument("--consumers", default="kafka-python",
                        help="comma list of the workers' LW_KAFKA_CONSUMER (kafka-python, confluent): each gets its phases")
    parser.add_argument("--load", default="0.5", help="comma list of offered loads for the latency phase, shares of throughput")
    parser.add_argument("--fps", default="", help="comma list of offered frames/s for the latency phase (instead of --load)")
    parser.add_argument("--latency-seconds", type=float, default=30, help="0: skip the latency phase")
    parser.add_argument("--worker-env", action="append", default=[], metavar="LW_NAME=VALUE",
                        help="one more setting for every worker (repeatable), e.g. LW_INTAKE_LINGER_MS=0")
    parser.add_argument("--flame", action="store_true", help="py-spy flame graph of the first worker under the first load")
    parser.add_argument("--kafka", default=os.environ.get("LW_KAFKA_BOOTSTRAP", "127.0.0.1:9092"))
    parser.add_argument("--redis", default=os.environ.get("LW_REDIS_URL", "redis://127.0.0.1:6379/0"))
    args = parser.parse_args()

    device = pick_device(args.device)
    root = Path(tempfile.mkdtemp(prefix="lw-bench-"))
    frames = [SyntheticCamera(seed=s, defect_rate=0.0).render(q)[0] for s in (1, 2) for q in range(8)]
    train_quick(frames, root, "bench", arch=args.arch, input_size=args.input_size, seconds=300, steps=2)
    loaded = ModelStore(root).load("bench@production")
    spec = InputSpec(*loaded.input_size, loaded.channels)
    defaults = WorkerSettings(model_root=root)  # the engine exactly as a worker with these settings builds it
    torch.set_num_threads(args.worker_threads or defaults.inference_threads())
    engine = Engine(loaded.module, spec, device, args.amp, sorted({*defaults.buckets, args.batch}), defaults.cuda_streams)
    bare_before = bare_model(engine, args.batch, args.seconds)
    print(f"bare model: {bare_before:.1f} img/s ({args.arch} {args.input_size}px, batch {args.batch}, {device}, "
          f"{torch.get_num_threads()} threads)", flush=True)

    stamp = f"{args.arch}-{args.input_size}-{device.type}-{args.amp}-torch{torch.__version__.split('+')[0]}-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}"
    results = REPO / "bench" / "results"
    results.mkdir(exist_ok=True)
    phases = []
    latency: list[dict] = []
    flame: Path | None = None
    for masks, consumer, workers in itertools.product(args.masks.split(","), args.consumers.split(","),
                                                      (int(w) for w in args.workers.split(","))):
        run = Run(args, root, masks, workers, consumer)
        try:
            fps, count, other = run.throughput(args.frames)
            print(f"pipeline: {fps:.1f} img/s, masks={masks}, {workers} worker process(es), {consumer} ({count} frames, "
                  f"{other['steady_frames']} after every process had started; whole span "
                  f"{other['img_s_whole_span']:.1f} img/s, as timed before 2026-12-07 "
                  f"{other['img_s_timed_from_first_seen']:.1f})", flush=True)
            phases.append({"masks": masks, "workers": workers, "consumer": consumer, "img_s": fps, "frames": count, **other})
            # Latency once per consumer client, on its first one-process phase.
            if args.latency_seconds and workers == 1 and all(r["consumer"] != consumer for r in latency):
                offers = [float(x) for x in args.fps.split(",")] if args.fps else [float(x) * fps for x in args.load.split(",")]
                for i, offered in enumerate(max(1.0, o) for o in offers):
                    want = results / f"flame-{consumer}-{stamp}.svg" if args.flame and i == 0 else None
                    row, flame_done = measure_latency(run, offered, fps, masks, args.latency_seconds, want)
                    latency.append({**row, "consumer": consumer})
                    flame = flame or flame_done
        finally:
            run.close()
    # The bare model again: the ratio uses the better of the two, so a neighbour's load during one
    # of them cannot flatter the pipeline.
    bare_after = bare_model(engine, args.batch, args.seconds)
    bare = max(bare_before, bare_after)
    batch_ms = 1000.0 * args.batch / bare
    bound_ms = args.max_wait_ms + 2 * batch_ms + 20.0
    print(f"bare model again: {bare_after:.1f} img/s; one batch of {args.batch}: {batch_ms:.1f} ms", flush=True)

    result = {
        "when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "machine": machine(),
        "model": {"arch": args.arch, "input_size": args.input_size, "device": str(device), "amp": args.amp},
        "batch": args.batch, "max_wait_ms": args.max_wait_ms, "worker_env": args.worker_env, "torch_threads": torch.get_num_threads(),
        "frame_size": args.frame_size, "bare_img_s": bare, "bare_img_s_before_after": [bare_before, bare_after],
        "batch_compute_ms": batch_ms, "phases": [{**p, "ratio": p["img_s"] / bare} for p in phases], "latency": latency,
        "latency_bound_ms": bound_ms, "flame_graph": flame.name if flame else None,
    }
    out = results / f"pipeline-{stamp}.json"
    out.write_text(json.dumps(result, indent=2))
    m = result["machine"]
    where = f"{m['cpu']} x{m['cores']}" + (f" + {m['gpu']}" if "gpu" in m else "")
    print(f"\n{where}; {args.arch} {args.input_size} px {device.type} {args.amp}; bare {bare:.1f} img/s "
          f"({torch.get_num_threads()} threads, batch {args.batch}: {batch_ms:.1f} ms)")
    print("| masks | consumer | worker processes | pipeline img/s | pipeline / bare |\n|---|---|---|---|---|")
    for p in result["phases"]:
        print(f"| {p['masks']} | {p['consumer']} | {p['workers']} | {p['img_s']:.1f} | {p['ratio']:.2f} |")
    if latency:
        print("\n| consumer | offered load | frames/s | masks | anomalous | p50 ms | p90 ms | p99 ms | bound ms |\n"
              "|---|---|---|---|---|---|---|---|---|")
    for r in latency:
        print(f"| {r['consumer']} | {r['load']:.0%} | {r['offered_fps']:.0f} | {r['masks']} | {r['anomalous_share']:.0%} | "
              f"{r['p50_ms']:.1f} | {r['p90_ms']:.1f} | {r['p99_ms']:.1f} | {bound_ms:.1f} |")
    if latency:  # where the time went, from the first worker's histograms (upper bucket bounds)
        print("\n| consumer | offered load | stage | frames or batches | p50 <= ms | p99 <= ms |\n|---|---|---|---|---|---|")
    for r in latency:
        for stage, q in r["stages"].items():
            print(f"| {r['consumer']} | {r['load']:.0%} | {stage} | {q['n']} | {q['p50_le_ms']:g} | {q['p99_le_ms']:g} |")
    print(f"\nwritten: {out.relative_to(REPO)}" + (f", {flame.relative_to(REPO)}" if flame else ""))


if __name__ == "__main__":
    main()
