"""Save UTAD's intermediate impressions next to an evaluation report (interpretability is its point).

`linewatch-models evaluate` writes report.html with input | anomaly-map examples; it has no hook for
model-specific intermediates, so this script adds, for the same choice of examples (the three
highest-scoring good images and three defect images spread over each type), one strip per image:

    input | IE-Net impression (anomaly-free) | Expert-Net reconstruction | residual heatmap + mask outline

as impression_<type>_<stem>.png, plus impressions.html linking them, in the report folder.

    .venv/bin/linewatch-models --store runs/seed/store evaluate mt_utad@production DATA --report R
    .venv/bin/python bench/utad_impressions.py --store runs/seed/store mt_utad@production DATA --report R
"""

from __future__ import annotations

import argparse
import html
from pathlib import Path

import cv2
import numpy as np
import torch

from model_store.data import load_uint8, mvtec_test_set, read_mask
from model_store.models.utad import UTAD
from model_store.store import ModelStore


def strip(x: np.ndarray, imp: np.ndarray, rec: np.ndarray, amap: np.ndarray, mask: np.ndarray, hi: float, scale: int = 2) -> np.ndarray:
    """Float RGB [H,W,3] images in [0,1] and a map [H,W] -> one BGR uint8 strip, upscaled."""
    def bgr(a: np.ndarray) -> np.ndarray:
        return cv2.cvtColor((np.clip(a, 0, 1) * 255).astype(np.uint8), cv2.COLOR_RGB2BGR)

    heat = cv2.applyColorMap((np.clip(amap / max(hi, 1e-9), 0, 1) * 255).astype(np.uint8), cv2.COLORMAP_JET)
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(heat, contours, -1, (255, 255, 255), 1)
    gap = np.full((x.shape[0], 4, 3), 255, np.uint8)
    row = np.concatenate([bgr(x), gap, bgr(imp), gap, bgr(rec), gap, heat], axis=1)
    return cv2.resize(row, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("ref", help="a UTAD model in the store, e.g. mt_utad@production")
    ap.add_argument("data", help="MVTec-layout category folder")
    ap.add_argument("--store", default="models")
    ap.add_argument("--report", required=True, help="report folder (created if absent)")
    ap.add_argument("--per-type", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    loaded = ModelStore(Path(args.store)).load(args.ref, require_calibration=False)
    model = loaded.module
    if not isinstance(model, UTAD):
        raise SystemExit(f"{args.ref} is a {loaded.manifest.architecture}, not a UTAD model")
    samples = mvtec_test_set(Path(args.data))
    size = loaded.input_size
    defects = np.array([s.defect for s in samples])

    # Score the good images to pick the highest-scoring ones, as the report does.
    good = np.where(defects == "good")[0]
    with torch.no_grad():
        good_scores = np.concatenate([
            model(load_uint8([samples[i].path for i in good[j : j + 32]], size).float() / 255)[1].numpy()
            for j in range(0, len(good), 32)
        ])
    pick = list(good[np.argsort(-good_scores)][: args.per_type])
    for d in sorted(set(defects) - {"good"}):
        idx = np.where(defects == d)[0]
        pick += list(idx[np.linspace(0, len(idx) - 1, min(args.per_type, len(idx))).astype(int)])

    x = load_uint8([samples[i].path for i in pick], size).float() / 255
    with torch.no_grad():
        imp = model.impression(x)
        rec = model.reconstruct(x, imp)
        amap, score = model(x)
    hi = float(np.percentile(amap.numpy(), 99.9))
    out = Path(args.report)
    out.mkdir(parents=True, exist_ok=True)
    figs = []
    for k, i in enumerate(pick):
        s = samples[i]
        name = f"impression_{s.defect}_{s.path.stem}.png"
        hwc = [t[k].permute(1, 2, 0).numpy() for t in (x, imp, rec)]
        cv2.imwrite(str(out / name), strip(*hwc, amap[k].numpy(), read_mask(s, size), hi))
        figs.append(f"<figure><img src='{html.escape(name)}'><figcaption>{html.escape(s.defect)} / "
                    f"{html.escape(s.path.name)}: raw score {float(score[k]):.4f}</figcaption></figure>")
    (out / "impressions.html").write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(loaded.ref)} impressions</title></head>"
        f"<body style='font-family:sans-serif'><h1>{html.escape(loaded.ref)}: UTAD impressions</h1>"
        "<p>input | IE-Net impression | Expert-Net reconstruction | residual (white: ground truth)</p>"
        f"{''.join(figs)}<p><a href='report.html'>evaluation report</a></p></body></html>"
    )
    print(f"{len(pick)} impression strips -> {out / 'impressions.html'}")


if __name__ == "__main__":
    main()
