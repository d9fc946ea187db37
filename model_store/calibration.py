"""Thresholds whose false-alarm rate is a stated promise, and score normalisation.

Image threshold from normal scores only (order statistic; distribution-free):
    Sort the n normal calibration scores and put the threshold at the (n - j)-th smallest, so j of
    them lie above it. If future normal frames are exchangeable with the calibration ones, the
    threshold's false-alarm rate p (share of future normals above it) satisfies
        P(p <= b) >= confidence,   b = Beta.ppf(confidence, j + 1, n - j)
    (exactly, for continuous scores; ties only lower p). b is the one-sided Clopper-Pearson upper
    bound for j exceedances in n trials. We take the largest j whose bound is at most the target
    rate, i.e. the largest j with BinomCDF(j; n, target) <= 1 - confidence. When even j = 0 (the
    threshold at the largest score) gives b = 1 - (1 - confidence)^(1/n) > target, n is too small:
    n_needed = ceil(ln(1 - confidence) / ln(1 - target)) normals would be needed. The threshold then
    stays at the largest score, and the record states the larger bound it really has.
With labelled defects: the threshold maximising F1 over normal + defect scores, and the record
states the false-alarm bound that threshold has on the normals.

Normalised score (published to Redis / alerts; model_store/store.py normalise_scores):
    normalised(s) = 1 / (1 + exp(-(s - threshold) / k)),
    k = scale = (threshold - median) / ln 99 below the threshold, k = max(scale, |threshold| / 4) above it
so the threshold maps to exactly 0.5, the median normal score to 0.01, the order of raw scores is
kept, and scores up to about ten times the threshold stay apart in float64. Pixel threshold (masks): q + 0.1 (q - median), q the 0.999 quantile over all pixels of the
normal maps, or F1-optimal over pixels when defect masks are given.

Evaluation: the false-alarm rate measured on k of n good test images gets the two-sided
Clopper-Pearson interval [Beta.ppf(a/2, k, n - k + 1), Beta.ppf(1 - a/2, k + 1, n - k)], a = 1 - confidence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy import stats
from sklearn.metrics import precision_recall_curve

from model_store.manifest import Calibration
from model_store.models.base import AnomalyModel
from model_store.preprocess import to_float
from model_store.settings import DEFAULT_CONFIDENCE, DEFAULT_TARGET_FAR

PIXEL_QUANTILE = 0.999
PIXEL_MARGIN = 0.1


@torch.inference_mode()
def predict(model: AnomalyModel, images: torch.Tensor, device: str = "cpu", batch_size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """uint8 [N, C, H, W] model inputs (model_store.preprocess) -> (amaps float32 [N, H, W], raw scores float64 [N])."""
    model.eval()
    amaps, scores = [], []
    for i in range(0, len(images), batch_size):
        a, s = model(to_float(images[i : i + batch_size].to(device), model.in_channels))
        amaps.append(a.float().cpu().numpy())
        scores.append(s.double().cpu().numpy())
    return np.concatenate(amaps), np.concatenate(scores)


# ---- the false-alarm maths (pure) -----------------------------------------------------------
def _check_rate(name: str, value: float) -> None:
    if not 0.0 < value < 1.0:
        raise ValueError(f"{name} must be in (0, 1), got {value}")


def normals_needed(target: float, confidence: float) -> int:
    """Fewest normals whose largest score certifies `target` at `confidence`: (1 - target)^n <= 1 - confidence."""
    _check_rate("target", target)
    _check_rate("confidence", confidence)
    n = math.ceil(math.log1p(-confidence) / math.log1p(-target))
    while (1 - target) ** n > 1 - confidence:  # guard the ceil against rounding just below an integer
        n += 1
    return n


def far_upper_bound(n: int, exceedances: int, confidence: float) -> float:
    """Upper `confidence` bound on the false-alarm rate of a threshold with `exceedances` of n normals above it."""
    _check_rate("confidence", confidence)
    if n < 1 or not 0 <= exceedances <= n:
        raise ValueError(f"need 0 <= exceedances <= n and n >= 1, got {exceedances} of {n}")
    if exceedances == n:
        return 1.0
    return float(stats.beta.ppf(confidence, exceedances + 1, n - exceedances))


def allowed_exceedances(n: int, target: float, confidence: float) -> int | None:
    """Largest j with BinomCDF(j; n, target) <= 1 - confidence (None: not even j = 0, n too small)."""
    _check_rate("target", target)
    _check_rate("confidence", confidence)
    delta = 1 - confidence
    j = int(stats.binom.ppf(delta, n, target))  # smallest j with CDF(j) >= delta
    while j >= 0 and stats.binom.cdf(j, n, target) > delta:
        j -= 1
    return j if j >= 0 else None


def clopper_pearson(k: int, n: int, confidence: float = DEFAULT_CONFIDENCE) -> tuple[float, float]:
    """Two-sided exact interval for a rate observed as k of n."""
    _check_rate("confidence", confidence)
    if n < 1 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n and n >= 1, got {k} of {n}")
    a = 1 - confidence
    lo = 0.0 if k == 0 else float(stats.beta.ppf(a / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(stats.beta.ppf(1 - a / 2, k + 1, n - k))
    return lo, hi


@dataclass(frozen=True, slots=True)
class FarThreshold:
    """A raw threshold fitted for a target false-alarm rate, and what it can promise."""

    threshold: float
    n: int
    exceedances: int  # calibration normals above the threshold
    bound: float  # upper `confidence` bound on its false-alarm rate
    target: float
    confidence: float
    n_needed: int  # normals needed to certify `target` at all


def far_threshold(scores: np.ndarray, target: float = DEFAULT_TARGET_FAR, confidence: float = DEFAULT_CONFIDENCE) -> FarThreshold:
    """The lowest order-statistic threshold whose false-alarm bound meets `target` (else the largest score)."""
    s = np.sort(np.asarray(scores, np.float64))
    if s.size < 1 or not np.isfinite(s).all():
        raise ValueError("need at least one finite normal score")
    n = int(s.size)
    j = allowed_exceedances(n, target, confidence)
    thr = float(s[n - 1 - (j or 0)])
    return describe_threshold(s, thr, target, confidence)


def describe_threshold(scores: np.ndarray, threshold: float, target: float, confidence: float) -> FarThreshold:
    """What any raw threshold promises on these normal scores (ties at the threshold count as below)."""
    s = np.asarray(scores, np.float64)
    above = int((s > threshold).sum())
    return FarThreshold(
        threshold=float(threshold), n=int(s.size), exceedances=above, bound=far_upper_bound(int(s.size), above, confidence),
        target=target, confidence=confidence, n_needed=normals_needed(target, confidence),
    )


def shortfall(fit: FarThreshold | Calibration) -> str | None:
    """A warning when the threshold cannot promise its target rate (None when it can, or for old records)."""
    if isinstance(fit, Calibration):
        if fit.target_far is None or fit.far_bound is None or fit.confidence is None:
            return None
        n, bound, target, conf, needed = fit.n_normal, fit.far_bound, fit.target_far, fit.confidence, fit.n_needed
    else:
        n, bound, target, conf, needed = fit.n, fit.bound, fit.target, fit.confidence, fit.n_needed
    if bound <= target:
        return None
    text = (f"{n} normal images certify a false-alarm rate of at most {bound:.3%} at {conf:.0%} confidence, "
            f"not the target {target:.3%}")
    if needed is not None and n < needed:
        text += f": {needed} normal images are needed (calibrate --normal DIR, or --from-stream CAM --frames {needed})"
    else:
        text += " (the threshold was chosen by F1 on labelled defects, below the target's)"
    return text


# ---- the Calibration record -----------------------------------------------------------------
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


def normalisation_scale(threshold: float, median: float) -> tuple[float, float]:
    """(threshold, scale) with the median normal at 0.01; a threshold on the median is nudged above it."""
    if threshold <= median:  # the upper half of the normals all equal: keep every one of them below
        threshold = median + max(abs(median) * 1e-3, 1e-6)
    return threshold, max((threshold - median) / math.log(99), 1e-9)


def calibrate(
    normal_scores: np.ndarray,
    normal_amaps: np.ndarray,
    defect_scores: np.ndarray | None = None,
    defect_amaps: np.ndarray | None = None,
    defect_masks: np.ndarray | None = None,
    target_far: float = DEFAULT_TARGET_FAR,
    confidence: float = DEFAULT_CONFIDENCE,
) -> Calibration:
    """Build the Calibration record; defects (optional) switch the image threshold to F1-optimal."""
    normal_scores = np.asarray(normal_scores, np.float64)
    if normal_scores.size < 2:
        raise ValueError("calibration needs at least 2 normal images")
    med = float(np.median(normal_scores))
    thr = far_threshold(normal_scores, target_far, confidence).threshold
    method, f1 = "order_statistic", None
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
    thr, scale = normalisation_scale(thr, med)
    fit = describe_threshold(normal_scores, thr, target_far, confidence)

    pix_thr, _ = _quantile_threshold(_pixel_sample(normal_amaps), PIXEL_QUANTILE, PIXEL_MARGIN)
    if defect_amaps is not None and defect_masks is not None and defect_masks.any():
        vals = np.concatenate([_pixel_sample(normal_amaps, 2_000_000), defect_amaps.reshape(-1)])
        labs = np.concatenate([np.zeros(min(normal_amaps.size, 2_000_000)), defect_masks.reshape(-1)])
        pix_thr, _ = _f1_threshold(vals, labs)
    return Calibration(
        threshold=thr,
        scale=scale,
        normal_median=med,
        method=method,
        pixel_threshold=float(pix_thr),
        n_normal=int(normal_scores.size),
        n_defect=n_def,
        normal_max=float(normal_scores.max()),
        flagged_normal_fraction=fit.exceedances / fit.n,
        f1=f1,
        target_far=target_far,
        confidence=confidence,
        far_bound=fit.bound,
        exceedances=fit.exceedances,
        n_needed=fit.n_needed,
    )
