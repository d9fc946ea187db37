"""The producer's Prometheus metrics.

All per-camera series are created for every configured camera at start-up, so a camera that
never dropped a frame reports 0 rather than nothing.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, PlatformCollector, ProcessCollector


class ProducerMetrics:
    """One set of producer metrics in its own registry, so several apps can live in one process (tests)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        if registry is None:
            registry = CollectorRegistry()
            # The usual process_* series, as the default registry would have them.
            ProcessCollector(registry=registry)
            PlatformCollector(registry=registry)
        self.registry = registry
        label = ["camera"]
        self.captured = Counter(
            "linewatch_producer_frames_captured_total", "Frames read from the camera and encoded.", label, registry=registry
        )
        self.dropped = Counter(
            "linewatch_producer_frames_dropped_total",
            "Frames dropped because the camera's queue to Kafka was full (drop_oldest policy).",
            label,
            registry=registry,
        )
        self.sent = Counter(
            "linewatch_producer_frames_sent_total", "Frames acknowledged by Kafka.", label, registry=registry
        )
        self.send_errors = Counter(
            "linewatch_producer_send_errors_total",
            "Frames Kafka did not accept (send or delivery failed).",
            label,
            registry=registry,
        )
        self.reconnects = Counter(
            "linewatch_producer_reconnects_total", "Attempts to reopen a camera after it failed.", label, registry=registry
        )
        self.camera_errors = Counter(
            "linewatch_producer_camera_errors_total",
            "Failures of a camera's source or of the encoder; each costs a reconnect with back-off.",
            label,
            registry=registry,
        )
        self.gaps = Counter(
            "linewatch_producer_source_gaps_total",
            "Outages of a live source: frames stopped, the source was reopened, frames came again.",
            label,
            registry=registry,
        )
        self.gap_seconds = Counter(
            "linewatch_producer_source_gap_seconds_total",
            "Seconds without frames across those outages (last frame before to first frame after).",
            label,
            registry=registry,
        )
        self.frames_missed = Counter(
            "linewatch_producer_source_frames_missed_total",
            "Frames the camera would have sent during outages (gap seconds x the camera's rate; estimate).",
            label,
            registry=registry,
        )
        self.skipped = Counter(
            "linewatch_producer_frames_skipped_total",
            "Frames decoded but replaced by a newer one before capture took them (newest-frame delivery; no lag).",
            label,
            registry=registry,
        )
        self.last_frame = Gauge(
            "linewatch_producer_last_frame_timestamp_seconds",
            "Unix time of the camera's last frame (time() minus this = seconds without frames).",
            label,
            registry=registry,
        )
        self.queue_depth = Gauge(
            "linewatch_producer_queue_depth", "Encoded frames waiting to be sent.", label, registry=registry
        )
        self.connected = Gauge(
            "linewatch_producer_camera_connected", "1 while the camera's source is open and delivering.", label, registry=registry
        )
        self.frame_bytes = Histogram(
            "linewatch_producer_frame_bytes",
            "Size of encoded frames.",
            label,
            buckets=(4e3, 16e3, 64e3, 256e3, 1e6, 4e6, 16e6),
            registry=registry,
        )

    def init_camera(self, camera: str) -> None:
        """Create every series of `camera` at 0 so dashboards see zeros, not gaps."""
        for metric in (
            self.captured, self.dropped, self.sent, self.send_errors, self.reconnects, self.camera_errors,
            self.gaps, self.gap_seconds, self.frames_missed, self.skipped,
        ):
            metric.labels(camera)
        self.queue_depth.labels(camera).set(0)
        self.connected.labels(camera).set(0)

    def value(self, name: str, camera: str) -> float:
        """Current value of one camera's series, e.g. value("linewatch_producer_frames_sent_total", "cam-1")."""
        return self.registry.get_sample_value(name, {"camera": camera}) or 0.0
