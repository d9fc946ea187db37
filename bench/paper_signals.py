"""Each seed model's own signal, measured on a stored model and an MVTec-layout test set.

What the papers claim, and what this script measures (JSON on stdout, pictures in --report):

- DRAEM: the image score is the max of the mean-filtered segmentation map. For the highest-scoring
  good images (the false-alarm candidates) it writes input | reconstruction | map strips and
  reports where their maxima lie (within the outer 10 % of the image or inside), with the image
  AUROC of alternative image scores computed from the same maps (paper score, larger filter, outer
  band ignored, mean of the map), so the cause of the normal-score spread can be read off.
- DAAD: the discriminator's latent-feature distance is a score of its own: image AUROC of the
  pixel-residual score, of the discriminator-feature score and of their standardised sum.
- DDR-ID: the latent-space score, the image-space score and their sum (image AUROC each); the
  decomposition x = x_n + r on a few defect images (input | normal component | |residual| heat with
  the mask outline | free reconstruction) and the share of residual energy inside the defect masks.
- UTAD: the IE-Net impression is anomaly-free and the Expert-Net restores detail: mean residual
  (squared error and 1 - SSIM) on the good test images of the impression alone vs the Expert-Net
  reconstruction, the residual in the outer 8 px band vs inside, and impression strips
  (input | impression | reconstruction | residual) for the best-scoring good and some defect images.

    .venv/bin/python bench/paper_signals.py mt_ddrid@production ../shared/data/magnetic_tile/magnetic_tile \
        --store runs/table/store --report runs/table/mt_ddrid --threads 1
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import structlog
import torch
from sklearn.metrics import roc_auc_score

from model_store.data import TestSample, load_uint8, mvtec_test_set, read_mask
from model_store.models._common import gray, mean_filter, residual_map, ssim_map
from model_store.store import LoadedModel, ModelStore
from model_store.training import to_input

BATCH = 16


def _bgr(img: np.ndarray) -> np.ndarray:
    """Float RGB [H, W, 3] (or gray [H, W]) in [0, 1] -> BGR uint8."""
    u8 = (np.clip(img, 0, 1) * 255).astype(np.uint8)
    return cv2.cvtColor(u8, cv2.COLOR_GRAY2BGR) if u8.ndim == 2 else cv2.cvtColor(u8, cv2.COLOR_RGB2BGR)


def _heat(m: np.ndarray, hi: float, mask: np.ndarray | None = None) -> np.ndarray:
    heat = cv2.applyColorMap((np.clip(m / max(hi, 1e-9), 0, 1) * 255).astype(np.uint8), cv2.COLORMAP_JET)
    if mask is not None and mask.any():
        contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(heat, contours, -1, (255, 255, 255), 1)
    return heat


def strip(panels: list[np.ndarray], scale: int = 2) -> np.ndarray:
    """BGR uint8 panels of equal height -> one row with white gaps, upscaled for viewing."""
    gap = np.full((panels[0].shape[0], 4, 3), 255, np.uint8)
    row = np.concatenate([p for pair in zip(panels, [gap] * len(panels)) for p in pair][:-1], axis=1)
    return cv2.resize(row, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)


def auroc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    return float(roc_auc_score(labels, scores)) if 0 < labels.sum() < len(labels) else None


def batched(model: torch.nn.Module, x_u8: torch.Tensor, fn) -> list[Any]:
    """Apply fn(model, x float) to batches of uint8 images; returns the list of per-batch results."""
    out = []
    with torch.inference_mode():
        for i in range(0, len(x_u8), BATCH):
            out.append(fn(model, to_input(x_u8[i : i + BATCH], model.in_channels)))
    return out


def components(model: torch.nn.Module, x_u8: torch.Tensor) -> dict[str, np.ndarray]:
    parts = batched(model, x_u8, lambda m, x: {k: v.double().numpy() for k, v in m.score_components(x).items()})
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def pick_examples(samples: list[TestSample], good_scores: np.ndarray, per_type: int) -> list[int]:
    """Indices: the highest-scoring good images, then `per_type` defect images spread over each type."""
    defects = np.array([s.defect for s in samples])
    good = np.where(defects == "good")[0]
    pick = list(good[np.argsort(-good_scores)][:per_type])
    for d in sorted(set(defects) - {"good"}):
        idx = np.where(defects == d)[0]
        pick += list(idx[np.linspace(0, len(idx) - 1, min(per_type, len(idx))).astype(int)])
    return pick


def border_band(h: int, w: int, frac: float = 0.1) -> np.ndarray:
    band = np.zeros((h, w), bool)
    bh, bw = max(1, round(h * frac)), max(1, round(w * frac))
    band[:bh], band[-bh:], band[:, :bw], band[:, -bw:] = True, True, True, True
    return band


# --- per family --------------------------------------------------------------------------------


def draem_signals(loaded: LoadedModel, samples, x_u8, labels, masks, out: Path, per_type: int) -> dict[str, Any]:
    model = loaded.module

    def fn(m, x):
        amap = m(x)[0]
        recon = m.reconstructive(x)
        edges = (x[..., :, 1:] - x[..., :, :-1]).abs().mean(dim=(1, 2, 3)) + (x[..., 1:, :] - x[..., :-1, :]).abs().mean(dim=(1, 2, 3))
        return amap.numpy(), ((x - recon) ** 2).mean(dim=(1, 2, 3)).numpy(), edges.numpy()

    parts = batched(model, x_u8, fn)
    maps, recon_err, texture = (np.concatenate([p[i] for p in parts]) for i in range(3))  # [N, H, W], [N], [N]
    t = torch.from_numpy(maps)[:, None]
    k = model.cfg.score_kernel
    h, w = maps.shape[1:]
    b = max(1, round(0.1 * min(h, w)))
    smoothed_t = mean_filter(t, k)
    alt = {
        f"max of {k}x{k} mean filter (model)": smoothed_t.amax(dim=(1, 2, 3)),
        f"max of {2 * k - 1}x{2 * k - 1} mean filter": mean_filter(t, 2 * k - 1).amax(dim=(1, 2, 3)),
        f"max of {k}x{k} mean filter, outer {b} px ignored": smoothed_t[..., b:-b, b:-b].amax(dim=(1, 2, 3)),
        f"max of {k}x{k} mean filter minus the map's median": smoothed_t.amax(dim=(1, 2, 3)) - t.flatten(1).median(dim=1).values,
        "mean of the map": t.mean(dim=(1, 2, 3)),
    }
    score = alt[f"max of {k}x{k} mean filter (model)"].numpy()
    good = labels == 0
    smoothed = mean_filter(t, k)[:, 0].numpy()
    band = border_band(h, w)
    argmax = smoothed.reshape(len(maps), -1).argmax(1)
    at_border = band.reshape(-1)[argmax]
    top = np.where(good)[0][np.argsort(-score[good])][: max(per_type, 5)]
    recon = batched(model, x_u8[torch.from_numpy(top)], lambda m, x: m.reconstructive(x).clamp(0, 1).numpy())
    recon = np.concatenate(recon)
    files = []
    for j, i in enumerate(top):
        x = x_u8[i].permute(1, 2, 0).numpy() / 255
        name = f"draem_topgood_{j}_{samples[i].path.stem}.png"
        cv2.imwrite(str(out / name), strip([_bgr(x), _bgr(recon[j].transpose(1, 2, 0)), _heat(maps[i], 1.0)]))
        files.append(name)
    q = np.quantile(score[good], [0.5, 0.9, 0.99])
    from scipy.stats import spearmanr

    return {
        "image_auroc_by_score": {n: auroc(labels, s.numpy()) for n, s in alt.items()},
        # what drives the good images' scores: the reconstruction's failure, the input's texture
        "good_spearman_score_vs_reconstruction_error": float(spearmanr(score[good], recon_err[good])[0]),
        "good_spearman_score_vs_texture_gradient": float(spearmanr(score[good], texture[good])[0]),
        "good_spearman_score_vs_map_median": float(spearmanr(score[good], np.median(maps[good].reshape(good.sum(), -1), 1))[0]),
        "good_score_quantiles_50_90_99": [float(v) for v in q],
        "good_max_in_outer_10pct_band": float(at_border[good].mean()),
        "defect_max_in_outer_10pct_band": float(at_border[~good].mean()),
        "band_area_fraction": float(band.mean()),
        "good_mean_map": float(maps[good].mean()),
        "top_good": [{"image": samples[i].path.name, "score": float(score[i]), "max_in_band": bool(at_border[i]),
                      "map_area_above_0.5": float((maps[i] > 0.5).mean())} for i in top],
        "pictures": files,
    }


def ddrid_signals(loaded: LoadedModel, samples, x_u8, labels, masks, out: Path, per_type: int) -> dict[str, Any]:
    model = loaded.module
    comps = components(model, x_u8)
    parts = batched(model, x_u8, lambda m, x: {k: v.numpy() for k, v in m.decompose(x).items() if k != "z_n"})
    dec = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    energy = (dec["residual"] ** 2).mean(1)  # [N, H, W]
    bad = labels == 1
    inside = float(energy[bad][masks[bad]].mean()) if masks[bad].any() else None
    outside = float(energy[bad][~masks[bad]].mean())
    files = []
    defect_idx = [i for i in pick_examples(samples, comps["sum"][labels == 0], 2) if labels[i] == 1]
    hi = float(np.percentile(energy, 99.9))
    for i in defect_idx:
        x = x_u8[i].permute(1, 2, 0).numpy() / 255
        name = f"ddrid_decomposition_{samples[i].defect}_{samples[i].path.stem}.png"
        panels = [_bgr(x), _bgr(dec["x_n"][i].transpose(1, 2, 0)), _heat(energy[i], hi, masks[i]),
                  _bgr(dec["x_f"][i].transpose(1, 2, 0))]
        cv2.imwrite(str(out / name), strip(panels))
        files.append(name)
    return {
        "image_auroc": {k: auroc(labels, v) for k, v in comps.items()},
        "residual_energy_in_defect": inside,
        "residual_energy_outside_defect_on_defect_images": outside,
        "residual_energy_good_images": float(energy[~bad].mean()),
        "in_over_out": inside / outside if inside is not None else None,
        "pictures (input | normal component | residual energy, mask outline | free reconstruction)": files,
    }


def daad_signals(loaded: LoadedModel, samples, x_u8, labels, masks, out: Path, per_type: int) -> dict[str, Any]:
    comps = components(loaded.module, x_u8)
    return {"image_auroc": {k: auroc(labels, v) for k, v in comps.items()}}


def utad_signals(loaded: LoadedModel, samples, x_u8, labels, masks, out: Path, per_type: int) -> dict[str, Any]:
    model = loaded.module

    def fn(m, x):
        imp = m.impression(x)
        rec = m.reconstruct(x, imp)
        return {"x": x.numpy(), "imp": imp.numpy(), "rec": rec.numpy(),
                "l2_imp": ((x - imp) ** 2).mean(1).numpy(), "l2_rec": ((x - rec) ** 2).mean(1).numpy(),
                "ssim_imp": (1 - ssim_map(gray(imp), gray(x)))[:, 0].numpy(),
                "ssim_rec": (1 - ssim_map(gray(rec), gray(x)))[:, 0].numpy(),
                "map": residual_map(x, rec, m.cfg.map_kind)[:, 0].numpy(), "score": m(x)[1].numpy()}

    parts = batched(model, x_u8, fn)
    r = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    good = labels == 0
    h, w = r["map"].shape[1:]
    band = np.zeros((h, w), bool)
    band[:8], band[-8:], band[:, :8], band[:, -8:] = True, True, True, True
    files = []
    hi = float(np.percentile(r["map"], 99.9))
    for i in pick_examples(samples, r["score"][good], per_type):
        name = f"utad_impression_{samples[i].defect}_{samples[i].path.stem}.png"
        panels = [_bgr(r[k][i].transpose(1, 2, 0)) for k in ("x", "imp", "rec")] + [_heat(r["map"][i], hi, masks[i])]
        cv2.imwrite(str(out / name), strip(panels))
        files.append(name)
    g = {k: r[k][good] for k in ("l2_imp", "l2_rec", "ssim_imp", "ssim_rec", "map")}
    return {
        "good_images": {
            "squared_error_impression_only": float(g["l2_imp"].mean()),
            "squared_error_with_expert_net": float(g["l2_rec"].mean()),
            "one_minus_ssim_impression_only": float(g["ssim_imp"].mean()),
            "one_minus_ssim_with_expert_net": float(g["ssim_rec"].mean()),
            "map_outer_8px_band": float(g["map"][:, band].mean()),
            "map_inside": float(g["map"][:, ~band].mean()),
        },
        "image_auroc": {"impression only (max of mean-filtered 1 - SSIM)": auroc(
            labels, mean_filter(torch.from_numpy(r["ssim_imp"])[:, None], model.cfg.score_kernel).amax(dim=(1, 2, 3)).numpy()),
            "with Expert-Net (the model's score)": auroc(labels, r["score"])},
        "pictures (input | impression | reconstruction | residual, mask outline)": files,
    }


SIGNALS = {"DRAEM": draem_signals, "DDRID": ddrid_signals, "DAAD": daad_signals, "UTAD": utad_signals}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("ref")
    ap.add_argument("data", help="MVTec-layout category folder")
    ap.add_argument("--store", default="models")
    ap.add_argument("--report", required=True, help="folder for the pictures (created if absent)")
    ap.add_argument("--per-type", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    structlog.configure(logger_factory=lambda *_: structlog.PrintLogger(file=sys.stderr))  # stdout is the JSON
    torch.set_num_threads(args.threads)
    loaded = ModelStore(Path(args.store)).load(args.ref, require_calibration=False)
    family = type(loaded.module).__name__
    if family not in SIGNALS:
        raise SystemExit(f"{args.ref}: no paper signal defined for {family}")
    samples = mvtec_test_set(Path(args.data))
    size = loaded.input_size
    x_u8 = load_uint8([s.path for s in samples], size)
    labels = np.array([s.label for s in samples])
    masks = np.stack([read_mask(s, size) for s in samples])
    out = Path(args.report)
    out.mkdir(parents=True, exist_ok=True)
    result = {"model": loaded.ref, "architecture": loaded.manifest.architecture, "dataset": Path(args.data).resolve().name,
              **SIGNALS[family](loaded, samples, x_u8, labels, masks, out, args.per_type)}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
