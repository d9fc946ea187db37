"""Bare-model throughput: images/s at batch sizes 1..32, CPU fp32/bf16 and, with CUDA, fp32/bf16/fp16.

    .venv/bin/python bench/bench_models.py                 # default: short CPU run (< 3 min)
    .venv/bin/python bench/bench_models.py --threads 2 --budget-s 120
    .venv/bin/python bench/bench_models.py --device cuda   # paper-size DRAEM at 256 px on a GPU

Method (after timm's benchmark.py): build each model with random weights (speed does not depend
on them), warm up, then time whole synchronised forward passes of random [B, C, H, W] inputs until
--min-time seconds or --max-iters iterations per point. FLOPs per image come from
torch.utils.flop_counter; achieved TFLOP/s and, for GPUs whose peak we know, the share of peak
(like nanoGPT's estimate_mfu) are reported. bf16 on a CPU without AMX is very slow, so every point
is capped and the whole run has a wall-clock budget: points it cannot reach are recorded as
skipped, never silently dropped. One JSON file per run lands in bench/results/ with machine and
library versions.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from model_store.registry import create_model  # noqa: E402

# dense peak TFLOP/s for the tensor-core dtypes (bf16 == fp16) and fp32 (no TF32), vendor figures
GPU_PEAK_TFLOPS = {"H100": {"bf16": 989, "fp16": 989, "fp32": 67}, "H200": {"bf16": 989, "fp16": 989, "fp32": 67},
                   "A100": {"bf16": 312, "fp16": 312, "fp32": 19.5}}
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def flops_per_image(model: torch.nn.Module, c: int, h: int, w: int) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.rand(1, c, h, w)
    with torch.inference_mode(), FlopCounterMode(display=False) as fc:
        model(x)
    return float(fc.get_total_flops())


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_point(model, device, dtype, bs, c, h, w, warmup, min_time, max_iters) -> dict:
    x = torch.rand(bs, c, h, w, device=device, dtype=dtype)
    with torch.inference_mode():
        for _ in range(warmup):
            model(x)
        sync(device)
        n, t0 = 0, time.perf_counter()
        while True:
            model(x)
            n += 1
            sync(device)
            el = time.perf_counter() - t0
            if el >= min_time or n >= max_iters:
                break
    return {"batch": bs, "iters": n, "ms_per_batch": round(1000 * el / n, 3), "images_per_s": round(bs * n / el, 2)}


def machine_info(device: str) -> dict:
    info = {
        "host": platform.node(), "platform": platform.platform(), "processor": platform.processor(),
        "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
        "torch": torch.__version__, "cuda": torch.version.cuda,
        "load_avg_1m_at_start": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }
    try:
        info["cpu_model"] = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (cuda when available, plus cpu)")
    p.add_argument("--models", default=None, help="comma list of arch:size[:k=v;k=v] (default depends on device)")
    p.add_argument("--batch-sizes", default="1,2,4,8,16,32")
    p.add_argument("--dtypes", default=None, help="default cpu: fp32,bf16; cuda: fp32,bf16,fp16")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--min-time", type=float, default=None, help="seconds per point (default cpu 0.5, cuda 1.0)")
    p.add_argument("--max-iters", type=int, default=200)
    p.add_argument("--point-cap-s", type=float, default=20, help="skip a point whose predicted time exceeds this")
    p.add_argument("--budget-s", type=float, default=150, help="wall-clock cap for the whole run")
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    devices = ["cpu"] if args.device == "cpu" else (["cuda", "cpu"] if torch.cuda.is_available() else ["cpu"]) if args.device == "auto" else [args.device]
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    start = time.monotonic()
    results = []
    rate: dict[tuple[str, str], float] = {}  # achieved FLOP/s per (device, dtype), for predictions
    for device in devices:
        gpu = device.startswith("cuda")
        dtypes = (args.dtypes or ("fp32,bf16,fp16" if gpu else "fp32,bf16")).split(",")
        spec = args.models or ("autoencoder:128,draem_small:128,draem:256" if gpu else "autoencoder:128,draem_small:128")
        min_time = args.min_time if args.min_time is not None else (1.0 if gpu else 0.5)
        peak = next((v for k, v in GPU_PEAK_TFLOPS.items() if gpu and k in torch.cuda.get_device_name(device)), None)
        for item in spec.split(","):
            arch, size, *kw = item.split(":")
            kwargs = {k: json.loads(v) for k, v in (pair.split("=") for pair in kw[0].split(";"))} if kw else {}
            h = w = int(size)
            base = create_model(arch, **kwargs).eval()
            c = base.in_channels
            fl = flops_per_image(base, c, h, w)
            params = sum(q.numel() for q in base.parameters())
            for dname in dtypes:
                model = create_model(arch, **kwargs).eval().to(device=device, dtype=DTYPES[dname])
                model.load_state_dict(base.state_dict())
                for bs in batch_sizes:
                    row = {"device": device, "arch": arch, "kwargs": kwargs, "input": [c, h, w], "dtype": dname,
                           "params": params, "gflops_per_image": round(fl / 1e9, 3), "batch": bs}
                    # predict this point's cost from the FLOP rate seen so far on this device/dtype
                    left = args.budget_s - (time.monotonic() - start)
                    predicted = fl * bs / rate[(device, dname)] if (device, dname) in rate else 0.0
                    if left <= 0 or predicted > min(args.point_cap_s, left):
                        why = "run budget exhausted" if left <= 0 else (
                            f"predicted {predicted:.1f} s per batch > cap {args.point_cap_s:.0f} s or budget left {left:.0f} s")
                        results.append(row | {"skipped": why})
                        continue
                    # slow CPU points: the first (only) timed pass is the measurement, no warm-up
                    warmup = 5 if gpu else (1 if predicted < 1.0 else 0)
                    try:
                        r = time_point(model, device, DTYPES[dname], bs, c, h, w, warmup, min_time, args.max_iters)
                    except torch.OutOfMemoryError:
                        results.append(row | {"skipped": "out of memory"})
                        torch.cuda.empty_cache()
                        continue
                    rate[(device, dname)] = r["images_per_s"] * fl
                    tflops = r["images_per_s"] * fl / 1e12
                    row |= r | {"achieved_tflops": round(tflops, 4)}
                    if peak and dname in peak:
                        row["share_of_peak"] = round(tflops / peak[dname], 4)
                    results.append(row)
                    print(f"{device:5s} {arch:12s} {h}px {dname:4s} bs={bs:2d} {r['images_per_s']:9.2f} img/s {r['ms_per_batch']:9.2f} ms/batch", flush=True)
                del model
    main_device = devices[0]
    out = {
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine_info(main_device),
        "settings": vars(args),
        "seconds": round(time.monotonic() - start, 1),
        "results": results,
    }
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    path = out_dir / f"bench_models-{main_device.split(':')[0]}-torch{torch.__version__.split('+')[0]}-{stamp}.json"
    path.write_text(json.dumps(out, indent=2))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
