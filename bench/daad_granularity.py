"""DAAD's central claim on real data: block granularity sets what the memory can rebuild.

For each image-space block size P (every scale cuts its feature map into blocks that cover P x P
input pixels, so scale i uses max(1, P / 2^i) feature pixels), train `daad_small` for the same number
of steps on the category's normal training images, then measure on its test set:

    err_good      mean squared reconstruction error per pixel on test/good images
    err_in        the same inside the ground-truth defect masks
    err_out       the same outside the masks of defect images
    in/good       err_in / err_good: how much worse defects are rebuilt than normal surface
    pixel AUROC   of the unsmoothed error map; image AUROC of its box-filtered maximum

Expected from the paper: small blocks rebuild everything (low err_good, in/good near 1); bigger
blocks keep normal error low while defects cannot be assembled from normal prototypes (in/good
rises) until blocks are so coarse that normal surface is not rebuilt either.

    nice -n 15 .venv/bin/python bench/daad_granularity.py ../shared/data/magnetic_tile/magnetic_tile \
        --size 64 --steps 200 --blocks 2,8,32,64 --threads 2

Prints a markdown table (pasted into docs/models.md) and writes bench/results/daad_granularity_*.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from model_store.data import load_uint8, mvtec_test_set, read_mask, train_images
from model_store.models.base import TrainConfig
from model_store.models.daad import DAADConfig, mean_filter
from model_store.training import train_model

SCALES = len(DAADConfig(widths=(16, 32, 64, 64)).widths)  # daad_small: features at 1/2 .. 1/16


def per_scale_blocks(patch: int, scales: int = SCALES) -> list[int]:
    """Image-space block P -> feature-space block per scale (scale i has stride 2^i)."""
    return [max(1, patch // 2**i) for i in range(1, scales + 1)]


def measure(model: torch.nn.Module, x: torch.Tensor, masks: np.ndarray, labels: np.ndarray, smooth: int) -> dict[str, float]:
    errs = []
    with torch.no_grad():
        for i in range(0, len(x), 32):
            xb = x[i : i + 32]
            x_hat, _ = model.reconstruct(xb)
            errs.append(((xb - x_hat) ** 2).mean(1))  # [B, H, W]
    err = torch.cat(errs)
    img_score = mean_filter(err, smooth).flatten(1).amax(1).numpy()
    e = err.numpy()
    good = e[labels == 0]
    bad, bad_masks = e[labels == 1], masks[labels == 1]
    err_good = float(good.mean())
    err_in = float(bad[bad_masks].mean())
    return {
        "err_good": err_good,
        "err_in": err_in,
        "err_out": float(bad[~bad_masks].mean()),
        "in_over_good": err_in / err_good,
        "pixel_auroc": float(roc_auc_score(masks.ravel(), e.ravel())),
        "image_auroc": float(roc_auc_score(labels, img_score)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data", help="MVTec-layout category folder")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--blocks", default="2,8,32,64", help="image-space block sizes P, comma separated")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="bench/results")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    root = Path(args.data)
    size = (args.size, args.size)
    train = load_uint8(train_images(root), size)
    samples = mvtec_test_set(root)
    x_test = load_uint8([s.path for s in samples], size).float() / 255
    masks = np.stack([read_mask(s, size) for s in samples])
    labels = np.array([s.label for s in samples])

    rows = []
    for patch in (int(p) for p in args.blocks.split(",")):
        blocks = per_scale_blocks(patch)
        t0 = time.monotonic()
        result = train_model(
            "daad_small", {"block_sizes": blocks}, train,
            TrainConfig(max_steps=args.steps, batch_size=args.batch_size, seed=args.seed), show_progress=False,
        )
        row = {"patch": patch, "block_sizes": blocks, "train_s": time.monotonic() - t0,
               "train_rec": result.losses.get("rec"), **measure(result.module.eval(), x_test, masks, labels, result.module.cfg.map_smoothing)}
        rows.append(row)
        print(json.dumps(row), flush=True)

    print(f"\nDAAD granularity on {root.name}, {args.size} px, {args.steps} steps x batch {args.batch_size} per row, seed {args.seed}\n")
    print("| block (input px) | per-scale blocks | train MSE | err good | err in defect | err outside defect | in/good | pixel AUROC | image AUROC |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['patch']} | {r['block_sizes']} | {r['train_rec']:.4f} | {r['err_good']:.4f} | {r['err_in']:.4f} | "
              f"{r['err_out']:.4f} | {r['in_over_good']:.2f} | {r['pixel_auroc']:.3f} | {r['image_auroc']:.3f} |")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"data": str(root), "size": args.size, "steps": args.steps, "batch_size": args.batch_size, "seed": args.seed,
            "threads": args.threads, "machine": platform.platform(), "torch": torch.__version__}
    path = out / f"daad_granularity_{root.name}_{args.size}px_torch{torch.__version__.split('+')[0]}_cpu.json"
    path.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
