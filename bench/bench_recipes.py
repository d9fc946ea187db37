"""Recipes: 8 cameras on 1 model against the same 8 cameras spread over 4 models of the same size.

    .venv/bin/python bench/bench_recipes.py                          # draem_small at 128 px, CPU
    .venv/bin/python bench/bench_recipes.py --arch autoencoder --input-size 64 --frames 800 --seconds 10 --fps 40

Per layout, one worker process (`python -m worker.app`, LW_* variables only) on a store of its own:
- `one`: a `default` recipe, every camera on one model;
- `four`: the cameras round-robin over four recipes, each naming its own model reference (two trained
  models of `--arch`, each under its alias and its version: four references, four models loaded,
  within the default LW_MAX_LOADED_MODELS=4).
1. throughput: `--frames` synthetic JPEG frames (8 cameras, 256 x 256) put on Kafka first, then the
   worker starts; frames/s by Redis's clock (stream entry IDs) from the first result to the last;
2. latency: frames offered at `--fps` in all (the same for both layouts) for `--seconds`, capture
   time = the moment each is handed to Kafka; p50 / p99 capture-to-Redis.
The ratio is four / one. Results: one JSON file in bench/results/ and Markdown rows on stdout.
Weights after a couple of training steps: speed does not depend on what they learned.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import redis

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.bench_pipeline import _entry_ms, _sender, machine  # noqa: E402
from linewatch.contract import FrameMeta, frame_headers  # noqa: E402
from linewatch.settings import KafkaSettings  # noqa: E402
from linewatch.topics import ensure_topics  # noqa: E402
from model_store.quick import train_quick  # noqa: E402
from model_store.recipes import Recipe, RecipeBook  # noqa: E402
from model_store.store import ModelStore  # noqa: E402
from producer.capture import encode_frame  # noqa: E402
from producer.synthetic import SyntheticCamera  # noqa: E402
from testkit.topics import delete_topics  # noqa: E402
from testkit.workers import WorkerPool, spawn  # noqa: E402

CAMERAS = [f"cam-{i}" for i in range(1, 9)]
PARTITIONS = 8


def make_store(root: Path, arch: str, size: int) -> list[str]:
    """Two models of `arch` trained a couple of steps; four references to them."""
    frames = [SyntheticCamera(seed=s, defect_rate=0.0).render(q)[0] for s in (1, 2) for q in range(4)]
    refs = []
    for name in ("m0", "m1"):
        _, version = train_quick(frames, root, name, arch=arch, input_size=size, seconds=300, steps=2)
        refs += [f"{name}@production", f"{name}@{version}"]
    return refs


def layout(root: Path, refs: list[str], models: int) -> None:
    store = ModelStore(root)
    book = RecipeBook(store.backend, resolve=store.resolve)
    if models == 1:
        book.set_recipe(Recipe(name="default", model=refs[0]), "bench")
        return
    for i, ref in enumerate(refs[:models]):
        book.set_recipe(Recipe(name=f"r{i}", model=ref), "bench")
    for i, camera in enumerate(CAMERAS):
        book.assign(camera, f"r{i % models}", "bench")


def put_frames(kafka: str, base: str, per_camera: int) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LW_")}
    cameras = [{"id": c, "source": f"synthetic://?seed={i}&defect_rate=0.02&width=256&height=256", "fps": 0, "loop": True}
               for i, c in enumerate(CAMERAS, start=1)]
    env.update(LW_KAFKA_BOOTSTRAP=kafka, LW_TOPIC_BASE=base, LW_CAMERAS=json.dumps(cameras), LW_MAX_FRAMES=str(per_camera),
               LW_METRICS_PORT="0", LW_DROP_POLICY="block", LW_LOG_LEVEL="warning")
    if spawn([sys.executable, "-m", "producer.app"], env=env).wait(900) != 0:
        raise SystemExit("producer failed")


def paced(kafka: str, topic: str, fps: float, seconds: float) -> int:
    pool = {c: [encode_frame(SyntheticCamera(seed=i).render(q)[0], "jpeg") for q in range(8)]
            for i, c in enumerate(CAMERAS, start=1)}
    send, poll, flush = _sender(kafka)
    total, start, n = int(fps * seconds), time.monotonic(), 0
    while n < total:
        due = min(total, int((time.monotonic() - start) * fps) + 1)
        for k in range(n, due):
            camera = CAMERAS[k % len(CAMERAS)]
            meta = FrameMeta(camera=camera, seq=k, capture_ns=time.time_ns(), encoding="jpeg", width=256, height=256)
            send(topic, camera.encode(), pool[camera][k % 8], frame_headers(meta))
        n = due
        poll()
        time.sleep(0.001)
    flush()
    return total


def results(client: redis.Redis, prefix: str, since_ms: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Redis's time (ms) of each result written since `since_ms`, and its capture-to-Redis latency (ms)."""
    written, latency = [], []
    for camera in CAMERAS:
        for entry, fields in client.xrange(f"{prefix}:history:{camera}", min=f"{since_ms}-0"):
            written.append(_entry_ms(entry))
            latency.append(written[-1] - int(fields[b"capture_ns"]) / 1e6)
    return np.array(written, np.int64), np.array(latency)


def wait_for(client: redis.Redis, prefix: str, target: int, timeout_s: float) -> int:
    deadline, count = time.monotonic() + timeout_s, 0
    while time.monotonic() < deadline:
        count = sum(client.xlen(f"{prefix}:history:{c}") for c in CAMERAS)
        if count >= target:
            break
        time.sleep(0.05)
    return count


def run_layout(args: argparse.Namespace, store: Path, refs: list[str], models: int) -> dict:
    root = Path(tempfile.mkdtemp(prefix=f"lw-recipes-{models}-"))
    shutil.copytree(store, root, dirs_exist_ok=True)
    layout(root, refs, models)
    base = f"bench-{uuid.uuid4().hex[:8]}"
    prefix = f"bench:{base}"
    ensure_topics(KafkaSettings(kafka_bootstrap=args.kafka, topic_base=base), partitions=PARTITIONS)
    client = redis.Redis.from_url(args.redis)
    pool = WorkerPool({
        "LW_KAFKA_BOOTSTRAP": args.kafka, "LW_TOPIC_BASE": base, "LW_REDIS_URL": args.redis, "LW_REDIS_PREFIX": prefix,
        "LW_GROUP_ID": base, "LW_MODEL": refs[0], "LW_MODEL_ROOT": str(root), "LW_DEVICE": args.device,
        "LW_LOG_LEVEL": "warning", "LW_MODEL_POLL_S": "0", "LW_HISTORY_MAXLEN": "10000000",
    }, Path(tempfile.mkdtemp(prefix="lw-bench-logs-")), tied=True)
    try:
        per_camera = args.frames // len(CAMERAS)
        put_frames(args.kafka, base, per_camera)
        pool.start("w0")
        pool.wait_ready(["w0"], timeout_s=300)
        count = wait_for(client, prefix, per_camera * len(CAMERAS), timeout_s=1800)
        times, _ = results(client, prefix)
        span_s = (times.max() - times.min()) / 1000 if len(times) > 1 else 0.0
        throughput = (len(times) - 1) / span_s if span_s else 0.0
        since_ms = int(time.time() * 1000)
        sent = paced(args.kafka, f"{base}.frames", args.fps, args.seconds)
        wait_for(client, prefix, count + sent, timeout_s=300)
        _, latency = results(client, prefix, since_ms)
        _, ready = pool.ready("w0")
        return {"models": models, "throughput_img_s": round(throughput, 1), "frames": int(count),
                "offered_fps": args.fps, "latency_frames": int(len(latency)),
                "p50_ms": round(float(np.percentile(latency, 50)), 1) if len(latency) else None,
                "p99_ms": round(float(np.percentile(latency, 99)), 1) if len(latency) else None,
                "loaded": ready.get("models")}
    finally:
        pool.stop_all()
        delete_topics(args.kafka, base)
        for key in client.scan_iter(f"{prefix}:*", count=1000):
            client.delete(key)
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="draem_small")
    parser.add_argument("--input-size", type=int, default=128)
    parser.add_argument("--frames", type=int, default=2400, help="frames of the throughput phase (8 cameras)")
    parser.add_argument("--fps", type=float, default=40.0, help="frames/s offered in all in the latency phase")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the latency phase")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    parser.add_argument("--kafka", default=os.environ.get("LW_KAFKA_BOOTSTRAP", "127.0.0.1:9092"))
    parser.add_argument("--redis", default=os.environ.get("LW_REDIS_URL", "redis://127.0.0.1:6379/0"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as store:
        refs = make_store(Path(store), args.arch, args.input_size)
        rows = [run_layout(args, Path(store), refs, models) for models in (1, 4)]
    ratio = rows[1]["throughput_img_s"] / rows[0]["throughput_img_s"] if rows[0]["throughput_img_s"] else 0.0
    result = {"arch": args.arch, "input_size": args.input_size, "device": args.device, "rows": rows,
              "throughput_ratio": round(ratio, 3), "machine": machine(),
              "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
              "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
              "git": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()}
    out = REPO / "bench" / "results" / f"recipes-{args.arch}-{args.input_size}-{args.device}-{result['date'][:10]}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"| layout | model | frames/s | offered fps | p50 ms | p99 ms |\n|---|---|---|---|---|---|")
    for row in rows:
        print(f"| 8 cameras on {row['models']} model(s) | {args.arch} {args.input_size} px | {row['throughput_img_s']} | "
              f"{row['offered_fps']:g} | {row['p50_ms']} | {row['p99_ms']} |")
    print(f"\nthroughput ratio (4 models / 1): {ratio:.2f}  ->  {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
