"""The worker's Engine on one model: images/s per precision and per CUDA option, in one run.

    python3 bench/bench_engine.py --arch draem --input-size 256 --batch 32        # on a GPU
    .venv/bin/python bench/bench_engine.py --arch hostcheck --input-size 64 --modes eager,compile

Unlike bench/bench_models.py (the bare nn.Module on float input), this times what a worker runs:
uint8 batches from pinned host buffers, copies on their own stream, two batches in flight, the
fixed bucket shape, and optionally CUDA graphs (LW_CUDA_GRAPHS) or torch.compile (LW_COMPILE).
Every mode warms up first (graph capture and compilation are not timed, their cost is reported),
then times `--seconds` of submit/collect with the engine kept full. One JSON file into --out and a
Markdown table on stdout, with the device's name.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from model_store.registry import create_model  # noqa: E402
from worker.decode import InputSpec  # noqa: E402
from worker.engine import Engine, pick_device  # noqa: E402

MODES = {  # mode -> Engine options
    "eager": {},
    "graphs": {"cuda_graphs": True},
    "compile": {"compile_mode": "default"},
    "compile+graphs": {"compile_mode": "reduce-overhead"},
}


def keep_full(engine: Engine, frames: np.ndarray, seconds: float) -> tuple[int, float]:
    """Submit/collect `frames` with up to `capacity` batches in flight, as the worker does, for `seconds`:
    (images done, seconds taken)."""
    done, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(engine.capacity):
            engine.submit(frames)
        for _ in range(engine.capacity):
            engine.collect()
        done += len(frames) * engine.capacity
    return done, time.perf_counter() - t0


def run_mode(arch: str, size: int, device: torch.device, amp: str, mode: str, batch: int, seconds: float) -> dict:
    torch.manual_seed(0)
    model = create_model(arch).eval()
    spec = InputSpec(size, size, model.in_channels)
    started = time.perf_counter()
    engine = Engine(model, spec, device, amp, buckets=[batch], streams=2, **MODES[mode])
    engine.warm_up()
    warm_s = time.perf_counter() - started
    frames = np.random.default_rng(0).integers(0, 255, (batch, size, size, spec.channels), dtype=np.uint8)
    done, elapsed = keep_full(engine, frames, seconds)
    return {"mode": mode, "amp": amp, "img_s": done / elapsed, "ms_per_batch": 1000 * elapsed / (done / batch),
            "warm_up_s": warm_s}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", default="draem")
    p.add_argument("--input-size", type=int, default=256)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--amps", default="off,bf16", help="precisions: off (fp32), bf16, fp16")
    p.add_argument("--modes", default="eager,graphs,compile", help=f"comma list of {', '.join(MODES)}")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    args = p.parse_args(argv)
    device = pick_device(args.device)
    rows = []
    for amp in args.amps.split(","):
        for mode in args.modes.split(","):
            if mode not in MODES:
                raise SystemExit(f"unknown mode {mode!r}")
            if device.type != "cuda" and (amp != "off" or "graphs" in mode):
                rows.append({"mode": mode, "amp": amp, "skipped": "needs CUDA"})
                continue
            try:
                rows.append(run_mode(args.arch, args.input_size, device, amp, mode, args.batch, args.seconds))
            except (RuntimeError, torch.cuda.OutOfMemoryError) as exc:  # a mode this stack cannot run: say so
                rows.append({"mode": mode, "amp": amp, "skipped": f"{type(exc).__name__}: {str(exc)[:200]}"})
            print(json.dumps(rows[-1]), flush=True)
    name = torch.cuda.get_device_name(0) if device.type == "cuda" else platform.processor() or platform.machine()
    result = {"when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "device": name,
              "torch": torch.__version__, "arch": args.arch, "input_size": args.input_size, "batch": args.batch, "rows": rows}
    out = Path(args.out) / f"engine-{args.arch}-{args.input_size}-{device.type}-torch{torch.__version__.split('+')[0]}-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"\n{name}, torch {torch.__version__}: {args.arch} at {args.input_size} px, batch {args.batch}")
    print("| precision | mode | images/s | ms per batch | warm-up s |\n|---|---|---|---|---|")
    for r in rows:
        prec = "fp32" if r["amp"] == "off" else r["amp"]
        if "skipped" in r:
            print(f"| {prec} | {r['mode']} | skipped: {r['skipped']} | | |")
        else:
            print(f"| {prec} | {r['mode']} | {r['img_s']:.1f} | {r['ms_per_batch']:.2f} | {r['warm_up_s']:.1f} |")
    print(f"\nwritten: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
