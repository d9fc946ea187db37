"""DAAD's central claim on real data: block granularity sets what the memory can rebuild.

For each image-space block size P (every scale cuts its feature map into blocks that cover P x P
input pixels, so scale i uses max(1, P / 2^i) feature pixels), train `daad_small` with the same
budget (steps, or CPU minutes as in the results table) on the category's normal training images,
then measure on its test set:

    err_good      mean squared reconstruction error per pixel on test/good images
    err_in        the same inside the ground-truth defect masks
    err_out       the same outside the masks of defect images
    in/good       err_in / err_good: how much worse defects are rebuilt than normal surface
    image / pixel AUROC, pixel AP   of the model's own map and score (what the table reports)

Expected from the paper: small blocks rebuild everything (low err_good, in/good near 1); bigger
blocks keep normal error low while defects cannot be assembled from normal prototypes (in/good
rises) until blocks are so coarse that normal surface is not rebuilt either.

    nice -n 15 .venv/bin/python bench/daad_granularity.py ../shared/data/magnetic_tile/magnetic_tile \
        --size 128 --cpu-budget 10 --blocks 2,16,64 --reuse 16=runs/table/store:mt_daad@production

At the table's size and budget; `--reuse P=STORE:REF` takes the table's own model for block size P
(the default, 16 px) instead of training it again.

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
from sklearn.metrics import average_precision_score, roc_auc_score

from model_store.data import load_uint8, mvtec_test_set, read_mask, train_images
from model_store.models.base import TrainConfig
from model_store.models.daad import DAADConfig
from model_store.pipeline import split_calibration
from model_store.store import ModelStore
from model_store.training import train_model

SCALES = len(DAADConfig(widths=(16, 32, 64, 64)).widths)  # daad_small: features at 1/2 .. 1/16


def per_scale_blocks(patch: int, scales: int = SCALES) -> list[int]:
    """Image-space block P -> feature-space block per scale (scale i has stride 2^i)."""
    return [max(1, patch // 2**i) for i in range(1, scales + 1)]


def measure(model: torch.nn.Module, x: torch.Tensor, masks: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    errs, maps, scores = [], [], []
    with torch.no_grad():
        for i in range(0, len(x), 32):
            xb = x[i : i + 32]
            x_hat, _ = model.reconstruct(xb)
            errs.append(((xb - x_hat) ** 2).mean(1))  # [B, H, W]
            amap, score = model(xb)
            maps.append(amap)
            scores.append(score)
    e, amap, score = torch.cat(errs).numpy(), torch.cat(maps).numpy(), torch.cat(scores).numpy()
    good = e[labels == 0]
    bad, bad_masks = e[labels == 1], masks[labels == 1]
    err_good = float(good.mean())
    err_in = float(bad[bad_masks].mean())
    return {
        "err_good": err_good,
        "err_in": err_in,
        "err_out": float(bad[~bad_masks].mean()),
        "in_over_good": err_in / err_good,
        "image_auroc": float(roc_auc_score(labels, score)),
        "pixel_auroc": float(roc_auc_score(masks.ravel(), amap.ravel())),
        "pixel_ap": float(average_precision_score(masks.ravel(), amap.ravel())),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data", help="MVTec-layout category folder")
    ap.add_argument("--size", default="64", help="H or HxW")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--cpu-budget", type=float, default=None, help="CPU minutes per block size (the table's: 10)")
    ap.add_argument("--reuse", action="append", default=[], metavar="P=STORE:REF",
                    help="measure this stored daad_small model for block size P instead of training one")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--blocks", default="2,8,32,64", help="image-space block sizes P, comma separated")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="bench/results")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    if args.steps is None and args.cpu_budget is None:
        ap.error("give --steps or --cpu-budget")
    root = Path(args.data)
    h, _, w = args.size.partition("x")
    size = (int(h), int(w or h))
    reuse = {int(p): spec.split(":", 1) for p, _, spec in (r.partition("=") for r in args.reuse)}
    paths = train_images(root)
    tr, _ = split_calibration(len(paths), 0.1, args.seed)  # the same held-out slice as `train`
    train = load_uint8([paths[i] for i in tr], size)
    samples = mvtec_test_set(root)
    x_test = load_uint8([s.path for s in samples], size).float() / 255
    masks = np.stack([read_mask(s, size) for s in samples])
    labels = np.array([s.label for s in samples])

    rows = []
    for patch in (int(p) for p in args.blocks.split(",")):
        blocks = per_scale_blocks(patch)
        t0 = time.monotonic()
        if patch in reuse:
            store, ref = reuse[patch]
            loaded = ModelStore(Path(store)).load(ref, require_calibration=False)
            if list(loaded.module.cfg.block_sizes) != blocks:
                raise SystemExit(f"{ref} has block sizes {loaded.module.cfg.block_sizes}, not {blocks}")
            module, steps, rec = loaded.module, loaded.manifest.training.steps, loaded.manifest.training.final_losses.get("rec")
        else:
            cfg = TrainConfig(max_steps=args.steps, cpu_budget_s=args.cpu_budget * 60 if args.cpu_budget else None,
                              batch_size=args.batch_size, seed=args.seed)
            result = train_model("daad_small", {"block_sizes": blocks}, train, cfg, show_progress=False)
            module, steps, rec = result.module, result.steps, result.losses.get("rec")
        row = {"patch": patch, "block_sizes": blocks, "steps": steps, "train_s": time.monotonic() - t0,
               "train_rec": rec, "reused": patch in reuse, **measure(module.eval(), x_test, masks, labels)}
        rows.append(row)
        print(json.dumps(row), flush=True)

    budget = f"{args.cpu_budget} CPU min" if args.cpu_budget else f"{args.steps} steps"
    print(f"\nDAAD granularity on {root.name}, {args.size} px, {budget} x batch {args.batch_size} per row, seed {args.seed}\n")
    print("| block (input px) | per-scale blocks | steps | train loss | err good | err in defect | err outside defect | in/good | image AUROC | pixel AUROC | pixel AP |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['patch']}{' (table model)' if r['reused'] else ''} | {r['block_sizes']} | {r['steps']} | {r['train_rec']:.4f} | "
              f"{r['err_good']:.4f} | {r['err_in']:.4f} | {r['err_out']:.4f} | {r['in_over_good']:.2f} | "
              f"{r['image_auroc']:.3f} | {r['pixel_auroc']:.3f} | {r['pixel_ap']:.3f} |")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"data": str(root), "size": args.size, "steps": args.steps, "cpu_budget_min": args.cpu_budget,
            "batch_size": args.batch_size, "seed": args.seed,
            "threads": args.threads, "machine": platform.platform(), "torch": torch.__version__}
    path = out / f"daad_granularity_{root.name}_{args.size}px_{budget.replace(' ', '')}_torch{torch.__version__.split('+')[0]}_cpu.json"
    path.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
