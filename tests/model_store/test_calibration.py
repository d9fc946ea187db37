"""Calibration: the false-alarm maths against tables, its promise under sampling, degenerate score
sets, F1 with defects, normalisation, warnings, and old manifests still loading."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from model_store.calibration import (
    allowed_exceedances,
    calibrate,
    clopper_pearson,
    far_threshold,
    far_upper_bound,
    normals_needed,
    shortfall,
)
from model_store.manifest import Calibration, Manifest
from model_store.store import normalise_scores


# ---- the maths against tables -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("target", "confidence", "needed"),
    [
        (0.001, 0.95, 2995),  # ln 0.05 / ln 0.999 = 2994.2
        (0.01, 0.95, 299),  # the "rule of three": about 3 / target
        (0.05, 0.95, 59),
        (0.001, 0.99, 4603),  # ln 0.01 / ln 0.999 = 4602.9
        (0.1, 0.9, 22),  # ln 0.1 / ln 0.9 = 21.9
    ],
)
def test_normals_needed(target: float, confidence: float, needed: int) -> None:
    assert normals_needed(target, confidence) == needed
    # the defining property: the largest of `needed` normals certifies the target, one fewer does not
    assert (1 - target) ** needed <= 1 - confidence < (1 - target) ** (needed - 1)


@pytest.mark.parametrize(
    ("n", "exceedances", "confidence", "bound"),
    [
        (20, 0, 0.95, 0.1391),  # 1 - 0.05^(1/20)
        (76, 0, 0.95, 0.03865),
        (1000, 0, 0.95, 0.002991),
        (100, 1, 0.95, 0.04656),  # one-sided Clopper-Pearson upper limit for 1 in 100
        (20, 6, 0.95, 0.5078),  # one-sided 95 % = two-sided 90 % upper limit for 6 in 20
        (5, 5, 0.95, 1.0),
    ],
)
def test_far_upper_bound_table(n: int, exceedances: int, confidence: float, bound: float) -> None:
    assert far_upper_bound(n, exceedances, confidence) == pytest.approx(bound, abs=5e-4)


def test_far_upper_bound_grows_with_exceedances_and_shrinks_with_n() -> None:
    b = [far_upper_bound(500, j, 0.95) for j in range(6)]
    assert b == sorted(b) and len(set(b)) == 6
    assert far_upper_bound(5000, 3, 0.95) < far_upper_bound(500, 3, 0.95)
    assert far_upper_bound(500, 3, 0.99) > far_upper_bound(500, 3, 0.9)


@pytest.mark.parametrize(
    ("n", "target", "confidence", "expected"),
    [
        (76, 0.001, 0.95, None),  # too few: even the largest score cannot promise 0.1 %
        (2994, 0.001, 0.95, None),
        (2995, 0.001, 0.95, 0),  # just enough: threshold at the largest score
        (5000, 0.001, 0.95, 1),  # Poisson(5): P(<=1) = 0.040, P(<=2) = 0.125
        (10000, 0.001, 0.95, 4),  # Poisson(10): P(<=4) = 0.029, P(<=5) = 0.067
        (100, 0.1, 0.9, 5),  # Bin(100, 0.1): P(<=5) = 0.058, P(<=6) = 0.117
        (1000, 0.05, 0.95, 38),  # about 50 - 1.645 * 6.9
    ],
)
def test_allowed_exceedances_table(n: int, target: float, confidence: float, expected: int | None) -> None:
    j = allowed_exceedances(n, target, confidence)
    assert j == expected
    if j is not None:  # the largest j whose bound meets the target, checked through the Beta side
        assert far_upper_bound(n, j, confidence) <= target < far_upper_bound(n, j + 1, confidence)
    else:
        assert far_upper_bound(n, 0, confidence) > target


@pytest.mark.parametrize(
    ("k", "n", "lo", "hi"),
    [
        (0, 10, 0.0, 0.3085),
        (5, 10, 0.1871, 0.8129),
        (10, 10, 0.6915, 1.0),
        (1, 20, 0.00127, 0.2487),
        (6, 20, 0.1189, 0.5428),
        (0, 191, 0.0, 0.01913),
    ],
)
def test_clopper_pearson_table(k: int, n: int, lo: float, hi: float) -> None:
    got = clopper_pearson(k, n, 0.95)
    assert got == pytest.approx((lo, hi), abs=5e-4)
    mirrored = clopper_pearson(n - k, n, 0.95)
    assert got == pytest.approx((1 - mirrored[1], 1 - mirrored[0]), abs=1e-9)


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.1, 1.5])
def test_rates_outside_zero_one_are_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="must be in"):
        normals_needed(bad, 0.95)
    with pytest.raises(ValueError, match="must be in"):
        allowed_exceedances(100, 0.01, bad)


# ---- the promise holds under sampling -----------------------------------------------------------
@pytest.mark.parametrize(("n", "target", "confidence"), [(1000, 0.01, 0.9), (400, 0.05, 0.95), (60, 0.05, 0.8)])
def test_promise_holds_over_repeated_calibrations(n: int, target: float, confidence: float) -> None:
    """Exponential scores: the true false-alarm rate of threshold t is exp(-t). Over many calibration
    sets it must be within the target at least `confidence` of the time, and not far more often
    (a naive (1 - target)-quantile threshold meets it only about half the time)."""
    rng = np.random.default_rng(7)
    trials = 600
    met = 0
    j = allowed_exceedances(n, target, confidence)
    assert j is not None
    for _ in range(trials):
        fit = far_threshold(rng.exponential(1.0, n), target, confidence)
        met += math.exp(-fit.threshold) <= target
    coverage = met / trials
    exact = 1 - float(stats.binom.cdf(j, n, target))  # the discrete rule's true coverage
    assert coverage >= confidence - 3 * math.sqrt(confidence * (1 - confidence) / trials)
    assert abs(coverage - exact) <= 4 * math.sqrt(exact * (1 - exact) / trials) + 1e-9


def test_naive_quantile_would_break_the_promise() -> None:
    """The test above can fail: the plain (1 - target) quantile covers only about half the time."""
    rng = np.random.default_rng(3)
    met = sum(math.exp(-np.quantile(rng.exponential(1.0, 1000), 0.99)) <= 0.01 for _ in range(300))
    assert 0.35 <= met / 300 <= 0.7


# ---- the Calibration record ----------------------------------------------------------------------
DISTRIBUTIONS = {
    "normal": lambda r, n: r.normal(1.0, 0.1, n),
    "heavy_tail": lambda r, n: r.pareto(1.5, n),
    "constant": lambda r, n: np.full(n, 0.5),
    "two_values": lambda r, n: np.r_[np.zeros(n - 1), 1.0],
    "negative": lambda r, n: -r.exponential(1.0, n),
    "ties_at_top": lambda r, n: np.r_[r.normal(0, 1, n - n // 3), np.full(n // 3, 3.0)],
}


@pytest.mark.parametrize("dist", DISTRIBUTIONS)
@pytest.mark.parametrize(("n", "target"), [(2, 0.001), (5, 0.1), (40, 0.05), (1000, 0.01), (4000, 0.001)])
def test_record_is_consistent_and_never_flags_all(dist: str, n: int, target: float) -> None:
    rng = np.random.default_rng(n)
    scores = DISTRIBUTIONS[dist](rng, n)
    cal = calibrate(scores, rng.random((n, 8, 8)).astype(np.float32), target_far=target, confidence=0.95)
    flagged = scores > cal.threshold
    assert not flagged.all()
    assert cal.method == "order_statistic" and cal.n_normal == n and cal.target_far == target
    assert cal.exceedances == flagged.sum() and cal.flagged_normal_fraction == pytest.approx(flagged.mean())
    assert cal.far_bound == pytest.approx(far_upper_bound(n, int(flagged.sum()), 0.95))
    assert cal.n_needed == normals_needed(target, 0.95)
    enough = n >= normals_needed(target, 0.95)
    assert (cal.far_bound <= target) == enough  # feasible exactly when n suffices
    assert (shortfall(cal) is None) == enough
    assert cal.scale > 0
    norm = normalise_scores(scores, cal)
    assert np.all((norm >= 0) & (norm <= 1))
    assert normalise_scores(np.array([cal.threshold]), cal)[0] == pytest.approx(0.5)
    assert (norm > 0.5).sum() == flagged.sum()  # normalised and raw decisions agree


def test_too_few_normals_sit_at_the_largest_score_and_say_how_many_are_needed() -> None:
    scores = np.random.default_rng(0).normal(1, 0.1, 76)
    cal = calibrate(scores, np.zeros((76, 4, 4), np.float32), target_far=0.001, confidence=0.95)
    assert cal.threshold == scores.max() and cal.exceedances == 0
    assert cal.far_bound == pytest.approx(1 - 0.05 ** (1 / 76))
    text = shortfall(cal)
    assert text is not None and "2995 normal images are needed" in text and "76 normal images" in text


def test_enough_normals_put_the_threshold_below_the_largest() -> None:
    scores = np.random.default_rng(1).normal(1, 0.1, 10_000)
    cal = calibrate(scores, np.zeros((10, 4, 4), np.float32), target_far=0.001, confidence=0.95)
    assert cal.exceedances == 4 and cal.far_bound <= 0.001 and shortfall(cal) is None
    assert cal.threshold == np.sort(scores)[-5]


def test_median_normal_maps_to_one_percent() -> None:
    scores = np.random.default_rng(0).normal(1, 0.1, 500)
    cal = calibrate(scores, np.zeros((500, 4, 4), np.float32) + 0.1)
    assert normalise_scores(np.array([np.median(scores)]), cal)[0] == pytest.approx(0.01, abs=1e-6)


def test_f1_optimal_with_labelled_defects() -> None:
    rng = np.random.default_rng(0)
    normal = rng.normal(1.0, 0.1, 200)
    defect = rng.normal(2.0, 0.1, 50)
    amaps = rng.random((200, 8, 8)).astype(np.float32) * 0.5
    d_amaps = rng.random((50, 8, 8)).astype(np.float32) * 0.5
    masks = np.zeros((50, 8, 8), bool)
    masks[:, 2:5, 2:5] = True
    d_amaps[masks] += 1.0
    cal = calibrate(normal, amaps, defect, d_amaps, masks)
    assert cal.method == "f1_optimal" and cal.f1 == pytest.approx(1.0)
    assert normal.max() < cal.threshold <= defect.min()
    assert cal.exceedances == 0 and cal.far_bound == pytest.approx(far_upper_bound(200, 0, 0.95))
    assert 0.5 <= cal.pixel_threshold <= 1.01  # separates the shifted defect pixels


def test_f1_threshold_below_the_targets_says_so() -> None:
    rng = np.random.default_rng(2)
    normal = rng.normal(1.0, 0.1, 3000)
    defect = rng.normal(1.25, 0.1, 300)  # overlapping: F1 puts the threshold inside the normal tail
    cal = calibrate(normal, rng.random((10, 4, 4)), defect, target_far=0.001)
    assert cal.method == "f1_optimal" and cal.exceedances > 0 and cal.far_bound > 0.001
    assert "F1" in (shortfall(cal) or "")


def test_useless_defect_labels_fall_back_to_the_order_statistic() -> None:
    rng = np.random.default_rng(1)
    normal = rng.normal(1.0, 0.1, 200)
    defect = rng.normal(0.0, 0.1, 5)  # "defects" scoring below normals: F1 would flag every normal
    cal = calibrate(normal, rng.random((200, 4, 4)), defect, target_far=0.05)
    assert cal.method == "order_statistic" and cal.f1 is None
    assert cal.far_bound <= 0.05


def test_old_calibration_records_still_load() -> None:
    """A manifest written before the false-alarm fields existed (method normal_quantile)."""
    old = {
        "threshold": 1.2, "scale": 0.05, "normal_median": 1.0, "method": "normal_quantile", "quantile": 0.995,
        "margin": 0.1, "pixel_threshold": 0.3, "n_normal": 21, "n_defect": 0, "normal_max": 1.18,
        "flagged_normal_fraction": 0.0, "f1": None,
    }
    manifest = Manifest.model_validate({
        "schema_version": 1, "name": "m", "version": "v0001", "architecture": "autoencoder", "input_size": [64, 64],
        "score_definition": "x", "weights_sha256": "0" * 64, "calibration": old,
    })
    assert manifest.calibration is not None and manifest.calibration.target_far is None
    assert shortfall(manifest.calibration) is None
    with pytest.raises(ValueError, match="method"):
        Calibration.model_validate({**old, "method": "made_up"})
