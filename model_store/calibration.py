"""Thresholds and score normalisation.

Normal images only (the usual case: no defect samples yet):
    threshold = q + margin * (q - median),  q = quantile(normal scores, 0.995), margin 0.1
At most 0.5 % of the calibration normals lie above q, and the margin pushes the threshold further
out, so calibration can never flag every normal image (checked, and tested). With labelled
defects: the threshold maximising F1 over normal + defect scores.

Normalised score (published to Redis / alerts):
    normalised(s) = 1 / (1 + exp(-(s - threshold) / scale)),  scale = (threshold - median) / ln 99
so the threshold maps to exactly 0.5, the median normal score to 0.01, and the order of raw scores
is kept. Pixel threshold (for masks): the same quantile rule over all pixels of the normal maps at
0.999, or F1-optimal over pixels when defect masks are given.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from sklearn.metrics import precision_recall_curve

from model_store.manifest import Calibration
from model_store.models.base import AnomalyModel
from model_store.training import to_input

NORMAL_QUANTILE = 0.995
PIXEL_QUANTILE = 0.999
MARGIN = 0.1


@torch.inference_mode()
def predict(model: AnomalyModel, images: torch.Tensor, device: str = "cpu", batch_size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """uint8 [N, 3, H, W] RGB -> (amaps float32 [N, H, W], raw scores float64 [N])."""
    model.eval()
    amaps, scores = [], []
    for i in range(0, len(images), batch_size):
        a, s = model(to_input(images[i : i + batch_size].to(device), model.in_channels))
        amaps.append(a.float().cpu().numpy())
        scores.append(s.double().cpu().numpy())
    return np.concatenate(amaps), np.concatenate(scores)


def _quantile_threshold(values: np.ndarray, q: float, margin: float) -> tuple[float, float]:
    qv = float(np.quantile(values, q))
    med = float(np.median(values))
    thr = qv + margin * (qv - med)
    if thr <= med:  # all values (nearly) equal: any spread-free rule would flag half of them
        thr = med + max(abs(med) * 1e-3, 1e-6)
    return thr, med


def _f1_threshold(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    prec, rec, thr = precision_recall_curve(labels, scores)
    f1 = 2 * prec[:-1] * rec[:-1] / np.maximum(prec[:-1] + rec[:-1], 1e-12)
    i = int(np.argmax(f1))
    return float(thr[i]), float(f1[i])


def _pixel_sample(amaps: np.ndarray, limit: int = 4_000_000, seed: int = 0) -> np.ndarray:
    flat = amaps.reshape(-1)
    if flat.size <= limit:
        return flat
    return np.random.default_rng(seed).choice(flat, limit, replace=False)


def calibrate(
    normal_scores: np.ndarray,
    normal_amaps: np.ndarray,
    defect_scores: np.ndarray | None = None,
    defect_amaps: np.ndarray | None = None,
    defect_masks: np.ndarray | None = None,
    quantile: float = NORMAL_QUANTILE,
    margin: float = MARGIN,
) -> Calibration:
    """Build the Calibration record; defects (optional) switch the image threshold to F1-optimal."""
    normal_scores = np.asarray(normal_scores, np.float64)
    if normal_scores.size < 2:
        raise ValueError("calibration needs at least 2 normal images")
    thr, med = _quantile_threshold(normal_scores, quantile, margin)
    method, f1 = "normal_quantile", None
    n_def = 0
    if defect_scores is not None and len(defect_scores):
        n_def = len(defect_scores)
        scores = np.concatenate([normal_scores, defect_scores])
        labels = np.r_[np.zeros(len(normal_scores)), np.ones(n_def)]
        f1_thr, f1 = _f1_threshold(scores, labels)
        if f1_thr > med:  # an "optimal" threshold below the normal median would flag most normals
            thr, method = f1_thr, "f1_optimal"
        else:
            f1 = None
    # scale puts the median normal at 0.01; guard against a threshold sitting on the median
    scale = max((thr - med) / math.log(99), 1e-9)

    pix_thr, _ = _quantile_threshold(_pixel_sample(normal_amaps), PIXEL_QUANTILE, margin)
    if defect_amaps is not None and defect_masks is not None and defect_masks.any():
        vals = np.concatenate([_pixel_sample(normal_amaps, 2_000_000), defect_amaps.reshape(-1)])
        labs = np.concatenate([np.zeros(min(normal_amaps.size, 2_000_000)), defect_masks.reshape(-1)])
        pix_thr, _ = _f1_threshold(vals, labs)
    return Calibration(
        threshold=thr,
        scale=scale,
        normal_median=med,
        method=method,
        quantile=quantile,
        margin=margin,
        pixel_threshold=float(pix_thr),
        n_normal=int(normal_scores.size),
        n_defect=n_def,
        normal_max=float(normal_scores.max()),
        flagged_normal_fraction=float((normal_scores > thr).mean()),
        f1=f1,
    )
