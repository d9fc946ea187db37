"""Pipeline efficiency: bare model vs the whole worker through Kafka and Redis, in one run.

    .venv/bin/python bench/bench_pipeline.py                         # draem_small at 128 px, CPU
    .venv/bin/python bench/bench_pipeline.py --arch autoencoder --input-size 64
    .venv/bin/python bench/bench_pipeline.py --device cuda --arch draem --input-size 256 --amp bf16

One run, one machine, one model (random-init weights after a few training steps: speed does not
depend on what the weights learned):
1. bare model: the worker's own Engine, uint8 batches of `--batch` in, maps and scores out, timed
   for `--seconds` after warm-up (tensors in, scores out; no decode, no I/O), once before and
   once after the pipeline phases; the better of the two counts;
2. pipeline throughput: `--frames` JPEG frames from 4 synthetic cameras are put on Kafka first
   (by a separate producer process), then one worker consumes them; timed from its first to its
   last result in Redis (decode, batching, model, masks, Redis, alerts, commits);
3. latency: a producer process offers `--load` (share of the measured pipeline throughput) for
   `--latency-seconds`, and p50/p99 of capture-to-publish latency are read from the results.
Ratio = pipeline / bare. Results: one JSON file in bench/results/ and a Markdown row on stdout.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import redis
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from linewatch.settings import KafkaSettings  # noqa: E402
from linewatch.topics import ensure_topics  # noqa: E402
from model_store.quick import train_quick  # noqa: E402
from model_store.store import ModelStore  # noqa: E402
from producer.synthetic import SyntheticCamera  # noqa: E402
from worker.app import Worker  # noqa: E402
from worker.decode import InputSpec  # noqa: E402
from worker.engine import Engine, pick_device  # noqa: E402
from worker.settings import WorkerSettings  # noqa: E402

CAMERAS = 4


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
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        # Keep the engine as full as the worker does: up to `capacity` batches in flight.
        for _ in range(engine.capacity):
            engine.submit(frames)
        for _ in range(engine.capacity):
            engine.collect()
        done += batch * engine.capacity
    return done / (time.perf_counter() - started)


def run_producer(kafka: str, topic_base: str, frames_per_camera: int, fps: float, size: int) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LW_")}
    cameras = [{"id": f"cam-{i}", "source": f"synthetic://?seed={i}&defect_rate=0.02&width={size}&height={size}",
                "fps": fps, "loop": True} for i in range(1, CAMERAS + 1)]
    env.update(LW_KAFKA_BOOTSTRAP=kafka, LW_TOPIC_BASE=topic_base, LW_CAMERAS=json.dumps(cameras),
               LW_MAX_FRAMES=str(frames_per_camera), LW_METRICS_PORT="0", LW_DROP_POLICY="block", LW_LOG_LEVEL="warning")
    return subprocess.Popen([sys.executable, "-m", "producer.app"], cwd=REPO, env=env)


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
        time.sleep(0.02)
    return count, first


def latencies(client: redis.Redis, prefix: str, since_ns: int) -> np.ndarray:
    values = []
    for i in range(1, CAMERAS + 1):
        for _, fields in client.xrange(f"{prefix}:history:cam-{i}", min=f"{since_ns // 1_000_000}-0"):
            values.append(float(fields[b"latency_ms"]))
    return np.array(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="draem_small")
    parser.add_argument("--input-size", type=int, default=128)
    parser.add_argument("--frame-size", type=int, default=256, help="camera frame size (JPEG, square)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--amp", default="off", choices=["off", "fp16", "bf16"])
    parser.add_argument("--worker-threads", type=int, default=0, help="the worker's LW_TORCH_THREADS (0: torch default)")
    parser.add_argument("--batch", type=int, default=16, help="bare-model batch = the worker's max_batch")
    parser.add_argument("--seconds", type=float, default=20, help="bare-model timing")
    parser.add_argument("--frames", type=int, default=600, help="frames for the throughput phase (all cameras)")
    parser.add_argument("--load", type=float, default=0.5, help="offered load for the latency phase, share of pipeline throughput")
    parser.add_argument("--latency-seconds", type=float, default=30)
    parser.add_argument("--kafka", default=os.environ.get("LW_KAFKA_BOOTSTRAP", "127.0.0.1:9092"))
    parser.add_argument("--redis", default=os.environ.get("LW_REDIS_URL", "redis://127.0.0.1:6379/0"))
    args = parser.parse_args()

    device = pick_device(args.device)
    root = Path(tempfile.mkdtemp(prefix="lw-bench-"))
    frames = [SyntheticCamera(seed=s, defect_rate=0.0).render(q)[0] for s in (1, 2) for q in range(8)]
    name, version = train_quick(frames, root, "bench", arch=args.arch, input_size=args.input_size, seconds=300, steps=2)
    loaded = ModelStore(root).load(f"{name}@production")
    spec = InputSpec(*loaded.input_size, loaded.channels)
    buckets = sorted({1, 2, 4, 8, 16, 32, args.batch})
    engine = Engine(loaded.module, spec, device, args.amp, buckets)
    bare_before = bare_model(engine, args.batch, args.seconds)
    print(f"bare model: {bare_before:.1f} img/s ({args.arch} {args.input_size}px, batch {args.batch}, {device})", flush=True)

    base, prefix = f"bench-{uuid.uuid4().hex[:8]}", f"bench:{uuid.uuid4().hex[:8]}"
    kafka_settings = KafkaSettings(kafka_bootstrap=args.kafka, topic_base=base)
    ensure_topics(kafka_settings, partitions=4)
    client = redis.Redis.from_url(args.redis)
    per_camera = args.frames // CAMERAS
    producer = run_producer(args.kafka, base, per_camera, 0, args.frame_size)
    if producer.wait(600) != 0:
        raise SystemExit("producer failed")
    settings = WorkerSettings(
        kafka_bootstrap=args.kafka, topic_base=base, redis_url=args.redis, redis_prefix=prefix, model="bench@production",
        model_root=root, group_id=f"bench-{base}", http_port=0, device=args.device, amp=args.amp, max_batch=args.batch,
        max_wait_ms=10, log_level="warning", torch_threads=args.worker_threads, inflight_frames=max(256, 4 * args.batch), model_poll_s=0,
    )
    worker = Worker(settings)
    worker.start()
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    total = per_camera * CAMERAS
    count, first = wait_count(client, prefix, total, timeout_s=1800)
    elapsed = time.monotonic() - first if first else float("nan")
    pipeline = (count - 1) / elapsed if count > 1 else 0.0  # from the first result to the last
    print(f"pipeline: {pipeline:.1f} img/s ({count}/{total} frames in {elapsed:.1f} s)", flush=True)

    offered = max(1.0, args.load * pipeline)
    fps = offered / CAMERAS
    since = time.time_ns()
    n = int(fps * args.latency_seconds)
    producer = run_producer(args.kafka, base, n, fps, args.frame_size)
    producer.wait(args.latency_seconds + 300)
    wait_count(client, prefix, total + n * CAMERAS, timeout_s=120)
    lat = latencies(client, prefix, since)
    worker.request_stop()
    thread.join(60)
    # Bare model again after the pipeline phases: the ratio uses the better of the two, so a
    # neighbour's load during one of them cannot flatter the pipeline.
    bare_after = bare_model(engine, args.batch, args.seconds)
    bare = max(bare_before, bare_after)
    print(f"bare model again: {bare_after:.1f} img/s", flush=True)
    p50, p99 = (float(np.percentile(lat, 50)), float(np.percentile(lat, 99))) if len(lat) else (float("nan"),) * 2
    print(f"latency at {offered:.1f} frames/s offered: p50 {p50:.1f} ms, p99 {p99:.1f} ms ({len(lat)} frames)")

    result = {
        "when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "machine": machine(),
        "model": {"arch": args.arch, "input_size": args.input_size, "device": str(device), "amp": args.amp},
        "batch": args.batch, "worker_torch_threads": args.worker_threads, "frame_size": args.frame_size, "bare_img_s": bare,
        "bare_img_s_before_after": [bare_before, bare_after], "pipeline_img_s": pipeline,
        "ratio": pipeline / bare if bare else None, "offered_fps": offered, "latency_ms_p50": p50,
        "latency_ms_p99": p99, "latency_frames": int(len(lat)), "throughput_frames": count,
    }
    out = REPO / "bench" / "results" / f"pipeline-{args.arch}-{args.input_size}-{device.type}-{args.amp}-{dt.date.today()}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"\n| machine | model | bare img/s | pipeline img/s | ratio | offered fps | p50 ms | p99 ms |\n|---|---|---|---|---|---|---|---|")
    print(f"| {result['machine']['cpu']} x{result['machine']['cores']}{' + ' + result['machine']['gpu'] if 'gpu' in result['machine'] else ''} "
          f"| {args.arch} {args.input_size}px {device.type} {args.amp} | {bare:.1f} | {pipeline:.1f} | {result['ratio']:.2f} "
          f"| {offered:.1f} | {p50:.1f} | {p99:.1f} |")
    print(f"\nwritten: {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
