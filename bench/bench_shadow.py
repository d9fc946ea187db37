"""What a shadow costs production, in one run: throughput and latency with and without a shadow.

    .venv/bin/python bench/bench_shadow.py                         # draem_small at 128 px, CPU
    .venv/bin/python bench/bench_shadow.py --arch autoencoder --frames 2000 --latency-seconds 30

One model store, one production model (`bench@production`) and a candidate of the same
architecture and size (another version, other weights); the worker processes of
bench/bench_pipeline.py (configured by LW_* variables only). Phases, each on fresh topics:
1. no shadow: `--frames` frames put on Kafka first, throughput by Redis's clock; then latency
   (capture to Redis, p50/p99) at `--load` x that throughput;
2. the candidate shadowing every camera (`shadow start`, fraction 1): the same throughput and
   latency, and the share of offered frames the shadow scored and shed (the worker's
   linewatch_worker_shadow_frames_total);
3. the shadow at 1.5 x the throughput phase 1 sustained: the shed share (production falls behind
   there whatever the shadow does; the point is that the shadow gives way first).
Results: bench/results/shadow-<stamp>.json and Markdown rows on stdout.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
import urllib.request
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.bench_pipeline import Run, machine  # noqa: E402
from model_store.quick import train_quick  # noqa: E402
from model_store.shadow_plans import ShadowBook  # noqa: E402
from model_store.store import ModelStore  # noqa: E402
from producer.synthetic import SyntheticCamera  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def shadow_counts(run: Run) -> dict[str, float]:
    """outcome -> frames, summed over candidates, from the first worker's /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    port = run.pool.workers[run.names[0]].port
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "linewatch_worker_shadow_frames_total":
                out[s.labels["outcome"]] = out.get(s.labels["outcome"], 0.0) + s.value
    return out


def phase(args: argparse.Namespace, root: Path, name: str, loads: list[float], base_fps: float | None) -> dict:
    run = Run(args, root, "all", 1, "kafka-python")
    try:
        fps, count, _ = run.throughput(args.frames)
        row: dict = {"phase": name, "img_s": fps, "frames": count, "throughput_shadow": shadow_counts(run), "latency": []}
        print(f"{name}: {fps:.1f} img/s ({count} frames); shadow {row['throughput_shadow']}", flush=True)
        for load in loads:
            before = shadow_counts(run)
            offered = max(1.0, load * (base_fps or fps))
            lat, _, _, _ = run.latency(offered, args.latency_seconds)
            after = shadow_counts(run)
            delta = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in ("scored", "shed", "dropped")}
            offered_shadow = sum(delta.values())
            entry = {"load": load, "offered_fps": offered, "frames": int(len(lat)),
                     "p50_ms": float(np.percentile(lat, 50)), "p99_ms": float(np.percentile(lat, 99)), "shadow": delta,
                     "shed_share": delta["shed"] / offered_shadow if offered_shadow else None}
            row["latency"].append(entry)
            print(f"  {offered:.0f} frames/s: p50 {entry['p50_ms']:.1f} ms, p99 {entry['p99_ms']:.1f} ms, shadow {delta}", flush=True)
        return row
    finally:
        run.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="draem_small")
    parser.add_argument("--input-size", type=int, default=128)
    parser.add_argument("--frames", type=int, default=800)
    parser.add_argument("--load", type=float, default=0.5, help="latency load, a share of phase 1's throughput")
    parser.add_argument("--latency-seconds", type=float, default=20)
    parser.add_argument("--kafka", default=os.environ.get("LW_KAFKA_BOOTSTRAP", "127.0.0.1:9092"))
    parser.add_argument("--redis", default=os.environ.get("LW_REDIS_URL", "redis://127.0.0.1:6379/0"))
    args = parser.parse_args()
    # What bench_pipeline's Run reads from its own arguments.
    args.device, args.amp, args.batch, args.max_wait_ms, args.worker_threads = "cpu", "off", 16, 10.0, 0
    args.worker_env, args.frame_size = ["LW_SHADOW_POLL_S=0.5"], 256

    root = Path(tempfile.mkdtemp(prefix="lw-bench-shadow-"))
    frames = [SyntheticCamera(seed=s, defect_rate=0.0).render(q)[0] for s in (1, 2) for q in range(8)]
    train_quick(frames, root, "bench", arch=args.arch, input_size=args.input_size, seconds=300, steps=2)
    _, candidate = train_quick(frames, root, "bench", arch=args.arch, input_size=args.input_size, seconds=300, steps=3,
                               seed=1, alias=None)
    store = ModelStore(root)
    book = ShadowBook(store.backend, resolve=store.resolve)

    rows = [phase(args, root, "no shadow", [args.load], None)]
    base = rows[0]["img_s"]
    book.start(f"bench@{candidate}", "bench@production", [], 1.0, "bench")
    rows.append(phase(args, root, "shadow on every camera", [args.load, 1.5], base))

    stamp = f"{args.arch}-{args.input_size}-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}"
    out = REPO / "bench" / "results" / f"shadow-{stamp}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "machine": machine(),
                               "model": {"arch": args.arch, "input_size": args.input_size}, "phases": rows}, indent=2))
    print(f"\n| phase | throughput img/s | offered frames/s | p50 ms | p99 ms | shadow scored | shed | shed share |\n"
          f"|---|---|---|---|---|---|---|---|")
    for r in rows:
        for lat in r["latency"]:
            share = "–" if lat["shed_share"] is None else f"{lat['shed_share']:.0%}"
            print(f"| {r['phase']} | {r['img_s']:.1f} | {lat['offered_fps']:.0f} ({lat['load']:.1f}x) | {lat['p50_ms']:.1f} | "
                  f"{lat['p99_ms']:.1f} | {lat['shadow']['scored']:.0f} | {lat['shadow']['shed']:.0f} | {share} |")
    print(f"\nwritten: {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
