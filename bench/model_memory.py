"""Memory per loaded model in a worker: what `LW_MAX_LOADED_MODELS` bounds.

    .venv/bin/python bench/model_memory.py                              # draem_small at 128 px, CPU
    .venv/bin/python bench/model_memory.py --arch draem --input-size 256 --models 2

Trains `--arch` for one step into a temporary store (weights after one step weigh what trained ones
do), then, in a fresh process (training's freed memory would otherwise be reused by the loads),
loads it `--models` times the way a worker does (worker/serving.py: load_served: hash check, the
worker's Engine on the device, warm-up) and runs one batch of `--batch` frames through each, reading
the process's resident memory (VmRSS) before and after each load. The figure is the mean growth per
loaded model (weights, the Engine's buffers and what one batch leaves in the allocator).
Results: one JSON file in bench/results/ and a Markdown row on stdout.
"""

from __future__ import annotations

import argparse
import subprocess
import datetime as dt
import gc
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from model_store.quick import train_quick  # noqa: E402
from model_store.store import ModelStore  # noqa: E402
from producer.synthetic import SyntheticCamera  # noqa: E402
from worker.engine import Engine, pick_device  # noqa: E402
from worker.serving import load_served  # noqa: E402


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def measure(root: str, models: int, batch: int, device_choice: str) -> dict:
    """In this (fresh) process: RSS growth per model loaded and run once."""
    import numpy as np

    torch.set_num_threads(1)
    device = pick_device(device_choice)
    store = ModelStore(root)
    gc.collect()
    before = rss_mib()
    served, steps = [], []
    for _ in range(models):
        start = rss_mib()
        model = load_served(store, "mem@production", lambda m, spec: Engine(m, spec, device))
        spec = model.spec
        model.engine.infer(np.zeros((batch, spec.height, spec.width, spec.channels), np.uint8))
        served.append(model)
        gc.collect()
        steps.append(rss_mib() - start)
    return {"device": str(device), "rss_before_mib": round(before, 1), "rss_steps_mib": [round(x, 1) for x in steps],
            "rss_per_model_mib": round((rss_mib() - before) / models, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="draem_small")
    parser.add_argument("--input-size", type=int, default=128)
    parser.add_argument("--models", type=int, default=3, help="loads measured (each a model of its own)")
    parser.add_argument("--batch", type=int, default=16, help="frames of the one batch run through each model")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # the fresh process: a store to load from
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.models, args.batch, args.device)))
        return
    frames = [SyntheticCamera(seed=s, defect_rate=0.0).render(i)[0] for s in (1, 2) for i in range(4)]
    with tempfile.TemporaryDirectory() as root:
        train_quick(frames, root, "mem", arch=args.arch, input_size=args.input_size, seconds=300, steps=1)
        weights = sum(f.stat().st_size for f in Path(root, "mem").rglob("*.safetensors"))
        run = subprocess.run([sys.executable, __file__, "--measure", root, "--models", str(args.models), "--batch",
                              str(args.batch), "--device", args.device], capture_output=True, text=True, check=True)
    measured = json.loads(run.stdout.strip().splitlines()[-1])
    result = {
        "arch": args.arch, "input_size": args.input_size, "models": args.models, "batch": args.batch,
        "weights_mib": round(weights / 2**20, 2), **measured,
        "torch": torch.__version__, "machine": f"{platform.machine()}, {os.cpu_count()} cpus",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    out = REPO / "bench" / "results" / f"model_memory-{args.arch}-{args.input_size}-{measured['device']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print("| model | input | device | weights MiB | RSS per loaded model MiB (load + one batch of "
          f"{args.batch}) | each load MiB |")
    print("|---|---|---|---|---|---|")
    print(f"| {args.arch} | {args.input_size} px | {measured['device']} | {result['weights_mib']} | "
          f"{result['rss_per_model_mib']} | {', '.join(map(str, result['rss_steps_mib']))} |")


if __name__ == "__main__":
    main()
