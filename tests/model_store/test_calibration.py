"""Calibration: normal-only thresholds never flag every normal; F1 with defects; normalisation."""

from __future__ import annotations

import numpy as np
import pytest

from model_store.calibration import calibrate
from model_store.store import normalise_scores

DISTRIBUTIONS = {
    "normal": lambda r, n: r.normal(1.0, 0.1, n),
    "heavy_tail": lambda r, n: r.pareto(1.5, n),
    "constant": lambda r, n: np.full(n, 0.5),
    "two_values": lambda r, n: np.r_[np.zeros(n - 1), 1.0],
    "negative": lambda r, n: -r.exponential(1.0, n),
}


@pytest.mark.parametrize("dist", DISTRIBUTIONS)
@pytest.mark.parametrize("n", [2, 5, 40, 1000])
def test_normal_only_never_flags_all(dist: str, n: int) -> None:
    rng = np.random.default_rng(n)
    scores = DISTRIBUTIONS[dist](rng, n)
    amaps = rng.random((n, 8, 8)).astype(np.float32)
    cal = calibrate(scores, amaps)
    flagged = scores > cal.threshold
    assert not flagged.all()
    assert cal.flagged_normal_fraction <= 0.005 + 1e-9 or flagged.sum() <= 1
    assert cal.scale > 0 and cal.method == "normal_quantile"
    norm = normalise_scores(scores, cal)
    assert np.all((norm >= 0) & (norm <= 1))
    assert normalise_scores(np.array([cal.threshold]), cal)[0] == pytest.approx(0.5)
    assert (norm > 0.5).sum() == flagged.sum()  # normalised and raw decisions agree


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
    assert 0.5 <= cal.pixel_threshold <= 1.01  # separates the shifted defect pixels


def test_useless_defect_labels_fall_back_to_quantile() -> None:
    rng = np.random.default_rng(1)
    normal = rng.normal(1.0, 0.1, 200)
    defect = rng.normal(0.0, 0.1, 5)  # "defects" scoring below normals: F1 would flag every normal
    cal = calibrate(normal, rng.random((200, 4, 4)), defect)
    assert cal.method == "normal_quantile"
    assert (normal > cal.threshold).mean() <= 0.005
