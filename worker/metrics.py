"""The worker's Prometheus metrics, defined once. Names start with linewatch_worker_.

Camera ids come from senders, so a camera label is capped: the first `max_cameras` distinct
cameras get series of their own, every later one is counted under `_other` (camera_label). Model
labels (per-model series: the model's name, not its version) are capped the same way at
MAX_MODEL_LABELS (model_metrics).
"""

from __future__ import annotations

import threading

from dataclasses import dataclass

from prometheus_client import Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
OTHER_CAMERAS = "_other"

FRAMES_IN = Counter("linewatch_worker_frames_in_total", "Frame records taken from Kafka.", ["camera"])
FRAMES_OUT = Counter("linewatch_worker_frames_out_total", "Frames scored and published.", ["camera"])
ANOMALOUS = Counter("linewatch_worker_frames_anomalous_total", "Frames over their camera's threshold.", ["camera"])
IMPLAUSIBLE_CLOCK = Counter(
    "linewatch_worker_capture_clock_implausible_total",
    "Frames whose capture time was zero, too far ahead or too old (scored anyway; clock_ok=0).",
    ["camera"],
)
DEAD_LETTERED = Counter("linewatch_worker_dead_lettered_total", "Records sent to the dead-letter topic.", ["reason"])
DUPLICATES = Counter(
    "linewatch_worker_duplicate_results_total", "Results already in Redis (a replay), not written again."
)
ALERTS = Counter("linewatch_worker_alerts_total", "Alerts sent to the alert topic.", ["camera"])
PUBLISH_FAILURES = Counter(
    "linewatch_worker_publish_failures_total", "Failed publish attempts by target and kind.", ["target", "kind"]
)
OUTPUTS_OK = Gauge(
    "linewatch_worker_outputs_ok", "1 while Redis and Kafka outputs accept writes; 0 while down or refused."
)
MODEL_LOADS = Counter("linewatch_worker_model_loads_total", "Model loads by outcome.", ["outcome"])
MODEL_FALLBACK = Gauge(
    "linewatch_worker_model_fallback", "1 while serving an older version because the alias's target failed to load."
)
BATCH_SIZE = Histogram(
    "linewatch_worker_batch_size", "Frames per model batch.", buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256)
)
STAGE_SECONDS = Histogram(
    "linewatch_worker_stage_seconds",
    "Time per stage: queue (poll to batch), decode, infer, publish.",
    ["stage"],
    buckets=_LATENCY_BUCKETS,
)
# Children bound once: `labels()` on every frame costs more than the observation itself.
STAGE_QUEUE, STAGE_DECODE, STAGE_INFER, STAGE_PUBLISH = (STAGE_SECONDS.labels(s) for s in ("queue", "decode", "infer", "publish"))
END_TO_END_SECONDS = Histogram(
    "linewatch_worker_end_to_end_seconds",
    "Capture time to result in Redis (frames with a plausible capture clock).",
    buckets=_LATENCY_BUCKETS,
)
LAG = Gauge("linewatch_worker_consumer_lag", "Records behind the partition's end.", ["topic", "partition"])
IN_FLIGHT = Gauge("linewatch_worker_in_flight_frames", "Frames taken in but not yet published.")
PAUSED = Gauge("linewatch_worker_paused", "1 while partitions are paused for backpressure or an outage.")
DRIFT = Gauge(
    "linewatch_worker_drift",
    "A camera's rolling summary (worker/drift.py): signal = score_median, score_p95 (normalised), brightness, contrast.",
    ["camera", "signal"],
)
RECALIBRATE_EVENTS = Counter(
    "linewatch_worker_recalibrate_events_total", "Drift events: a camera's summary left its band.", ["camera", "signal"]
)
MODEL_INFO = Gauge("linewatch_worker_model_info", "Each model loaded and serving (value 1).", ["name", "version"])
MAX_MODEL_LABELS = 32
MODEL_FRAMES = Counter("linewatch_worker_model_frames_total", "Frames scored, by model name.", ["model"])
MODEL_BATCH_SIZE = Histogram(
    "linewatch_worker_model_batch_size", "Frames per batch, by model name.", ["model"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
MODEL_INFER_SECONDS = Histogram(
    "linewatch_worker_model_infer_seconds", "Inference time per batch, by model name.", ["model"], buckets=_LATENCY_BUCKETS
)


class CameraLabels:
    """The first `max_cameras` distinct cameras keep their id as a label; the rest share one."""

    def __init__(self, max_cameras: int = 256) -> None:
        self.max_cameras = max_cameras
        self._known: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, camera: str) -> str:
        if camera in self._known:
            return camera
        with self._lock:
            if len(self._known) < self.max_cameras:
                self._known.add(camera)
                return camera
        return OTHER_CAMERAS


camera_label = CameraLabels()


model_label = CameraLabels(MAX_MODEL_LABELS)


@dataclass(frozen=True, slots=True)
class ModelSeries:
    frames: object
    batch_size: object
    infer: object


_model_series: dict[str, ModelSeries] = {}


def model_metrics(name: str) -> ModelSeries:
    """The per-model children of one model name, bound once (called per batch)."""
    series = _model_series.get(name)
    if series is None:
        label = model_label(name)
        series = _model_series.setdefault(name, ModelSeries(
            MODEL_FRAMES.labels(label), MODEL_BATCH_SIZE.labels(label), MODEL_INFER_SECONDS.labels(label)))
    return series
