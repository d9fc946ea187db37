"""Drift watch: tell a lamp change from a defect, per camera.

A defect changes a few pixels of a few frames; a new lamp, a dirty lens or a moved camera
changes every frame a little. The watch keeps, per camera, a rolling window of the last
`window` frames' normalised scores and simple image statistics of the model input (mean
brightness, contrast = standard deviation, both 0..255), and compares their summary (score
median and 95th percentile, brightness and contrast means) with the camera's baseline: the
first full window of the camera, kept in Redis (RedisKeys.drift, written once by whichever worker
summarises first), so restarts and other workers share it.
When a summary leaves its band, a `recalibrate` event goes to the Redis stream
RedisKeys.recalibrate (not an alert: nothing is wrong with the part) and the metric
linewatch_worker_recalibrate_events_total counts it; the same signal fires again only after it
came back into its band. Recommissioning a camera (`linewatch-models calibrate --from-stream`)
deletes its baseline, and the next full window becomes the new one.

Bands (settings): brightness and contrast within +-drift_image_pct % of the baseline; the score
median at most drift_score_rise above the baseline's (normalised scores: the calibrated
threshold is 0.5, the calibration normals' median 0.01).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Callable

import cv2
import numpy as np
import structlog

from linewatch.errors import PublishError
from linewatch.logs import RateLimitedLog
from worker import metrics
from worker.camera_state import CameraTable
from worker.records import ScoredBatch

log = structlog.get_logger(__name__)

SIGNALS = ("brightness", "contrast", "score_median")


@dataclass(frozen=True)
class DriftPolicy:
    window: int = 200  # frames per summary
    every: int = 20  # a summary every this many frames
    image_pct: float = 15.0  # brightness / contrast band, % of the baseline
    score_rise: float = 0.15  # how far the median normalised score may rise above the baseline's


@dataclass(frozen=True)
class DriftEvent:
    camera: str
    signal: str
    value: float
    low: float
    high: float
    baseline: float


@dataclass
class _Camera:
    scores: deque = field(default_factory=deque)
    brightness: deque = field(default_factory=deque)
    contrast: deque = field(default_factory=deque)
    seen: int = 0
    out_of_band: set[str] = field(default_factory=set)


def image_stats(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per frame of a uint8 [B, H, W, C] batch: (mean brightness, contrast), each [B], 0..255.

    OpenCV reads the uint8 pixels in place: a float copy of the whole batch would cost the publish
    thread many times more, the most at paper size (256 px)."""
    stats = [cv2.meanStdDev(frame.reshape(-1, 1)) for frame in pixels]
    return (np.array([mean[0, 0] for mean, _ in stats], np.float32),
            np.array([std[0, 0] for _, std in stats], np.float32))


class DriftWatch:
    """Per-camera rolling summaries against a baseline. Not thread-safe: the publish thread owns it."""

    def __init__(self, policy: DriftPolicy, max_cameras: int, idle_s: float = 3600.0) -> None:
        self.policy = policy
        self._cameras = CameraTable[_Camera](max_cameras, idle_s)

    def camera(self, name: str) -> _Camera:
        return self._cameras.get(name, lambda: _Camera(deque(maxlen=self.policy.window), deque(maxlen=self.policy.window),
                                                       deque(maxlen=self.policy.window)))

    def observe(self, name: str, score: float, brightness: float, contrast: float) -> bool:
        """Add one frame; True when a summary is due (call `summarise`)."""
        cam = self.camera(name)
        cam.scores.append(score)
        cam.brightness.append(brightness)
        cam.contrast.append(contrast)
        cam.seen += 1
        return len(cam.scores) == self.policy.window and cam.seen % self.policy.every == 0

    def summary(self, name: str) -> dict[str, float]:
        """The camera's window summarised: score median and 95th percentile, brightness, contrast."""
        cam = self.camera(name)
        scores = np.fromiter(cam.scores, np.float64)
        return {
            "score_median": float(np.median(scores)), "score_p95": float(np.quantile(scores, 0.95)),
            "brightness": float(np.mean(cam.brightness)), "contrast": float(np.mean(cam.contrast)),
        }

    def check(self, name: str, summary: dict[str, float], baseline: dict[str, float]) -> list[DriftEvent]:
        """Signals of `summary` that just left their band around `baseline` (each fires once per excursion)."""
        cam = self.camera(name)
        events = []
        for signal in SIGNALS:
            low, high = self.band(signal, baseline[signal])
            if low <= summary[signal] <= high:
                cam.out_of_band.discard(signal)
            elif signal not in cam.out_of_band:
                cam.out_of_band.add(signal)
                events.append(DriftEvent(name, signal, summary[signal], low, high, baseline[signal]))
        return events

    def band(self, signal: str, baseline: float) -> tuple[float, float]:
        if signal == "score_median":
            return float("-inf"), baseline + self.policy.score_rise
        margin = abs(baseline) * self.policy.image_pct / 100.0
        return baseline - margin, baseline + margin


Summary = tuple[str, dict[str, float], int, str]  # camera, summary, time (ms), worker


class DriftReport:
    """The publish thread's side of the drift watch: summaries due with a batch, events after it.

    Summaries are stored with the batch's results (worker/sinks.py returns the baseline in force);
    events are best effort: drift is advice to people, never a reason to hold frames back."""

    def __init__(self, watch: DriftWatch, record_events: Callable[[list[dict[str, str]]], None], worker_id: str) -> None:
        self.watch, self.record_events, self.worker_id = watch, record_events, worker_id
        self._log = RateLimitedLog(interval_s=10.0)

    def due(self, job: ScoredBatch, normalised: np.ndarray, now_ns: int) -> list[Summary]:
        """Feed the batch to the watch; the summaries due now, ready to store with the batch."""
        brightness, contrast = image_stats(job.pixels)
        due = []
        for i, item in enumerate(job.items):
            camera = item.meta.camera  # type: ignore[union-attr]
            if self.watch.observe(camera, float(normalised[i]), float(brightness[i]), float(contrast[i])):
                due.append((camera, self.watch.summary(camera), now_ns // 1_000_000, self.worker_id))
        return due

    def report(self, due: list[Summary], baselines: list[dict[str, float] | PublishError], now_ns: int) -> None:
        """Compare the stored summaries with their baselines; record what left its band."""
        events: list[dict[str, str]] = []
        for (camera, summary, _, _), baseline in zip(due, baselines):
            label = metrics.camera_label(camera)
            for signal, value in summary.items():
                metrics.DRIFT.labels(label, signal).set(value)
            if isinstance(baseline, PublishError):
                continue
            for e in self.watch.check(camera, summary, baseline):
                metrics.RECALIBRATE_EVENTS.labels(label, e.signal).inc()
                log.warning("camera drifted; recalibrate", camera=camera, signal=e.signal, value=round(e.value, 4),
                            band=[round(e.low, 4), round(e.high, 4)])
                events.append({"camera": camera, "signal": e.signal, "value": f"{e.value:.6g}", "low": f"{e.low:.6g}",
                               "high": f"{e.high:.6g}", "baseline": f"{e.baseline:.6g}", "time_ns": str(now_ns),
                               "worker": self.worker_id})
        if not events:
            return
        try:
            self.record_events(events)
        except PublishError as exc:
            if self._log.allow("drift") is not None:
                log.warning("drift events not stored", error=str(exc))
