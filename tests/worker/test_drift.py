"""The drift watch's pure logic: summaries, bands, one event per excursion."""

from __future__ import annotations

import numpy as np

from worker.drift import DriftPolicy, DriftWatch, image_stats

POLICY = DriftPolicy(window=50, every=10, image_pct=15.0, score_rise=0.15)
BASE = {"score_median": 0.01, "score_p95": 0.05, "brightness": 120.0, "contrast": 30.0}


def _feed(watch: DriftWatch, n: int, score: float, brightness: float, contrast: float = 30.0) -> list:
    events = []
    for _ in range(n):
        if watch.observe("cam", score, brightness, contrast):
            events += watch.check("cam", watch.summary("cam"), BASE)
    return events


def test_summaries_come_every_n_frames_once_the_window_is_full() -> None:
    watch = DriftWatch(POLICY, max_cameras=10)
    due = [watch.observe("cam", 0.01, 120.0, 30.0) for _ in range(100)]
    assert [i + 1 for i, d in enumerate(due) if d] == [50, 60, 70, 80, 90, 100]
    summary = watch.summary("cam")
    assert summary["brightness"] == 120.0 and summary["score_median"] == 0.01


def test_a_lamp_change_fires_once_and_again_only_after_coming_back() -> None:
    watch = DriftWatch(POLICY, max_cameras=10)
    assert _feed(watch, 50, 0.01, 121.0) == []  # within 15 % of 120
    brighter = _feed(watch, 100, 0.01, 150.0)  # +25 %
    assert [e.signal for e in brighter] == ["brightness"] and brighter[0].high == 138.0
    assert _feed(watch, 100, 0.01, 120.0) == []  # back in band: quiet, and re-armed
    assert [e.signal for e in _feed(watch, 100, 0.01, 80.0)] == ["brightness"]


def test_rising_scores_fire_without_a_brightness_change() -> None:
    watch = DriftWatch(POLICY, max_cameras=10)
    events = _feed(watch, 100, 0.3, 120.0)
    assert [e.signal for e in events] == ["score_median"] and events[0].value == 0.3


def test_one_defect_frame_is_not_drift() -> None:
    watch = DriftWatch(POLICY, max_cameras=10)
    events = _feed(watch, 49, 0.01, 120.0) + _feed(watch, 1, 0.99, 120.0) + _feed(watch, 50, 0.01, 120.0)
    assert events == []


def test_image_stats_per_frame() -> None:
    pixels = np.zeros((2, 4, 4, 3), np.uint8)
    pixels[1] = 100
    pixels[1, :2] = 200
    brightness, contrast = image_stats(pixels)
    assert list(brightness) == [0.0, 150.0] and list(contrast) == [0.0, 50.0]
