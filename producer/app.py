"""linewatch-producer: cameras -> encode -> Kafka frames topic. This module wires the parts.

    start()   metrics endpoint, Kafka producer, queues, sender thread, one capture thread per camera,
              the trigger endpoint (cameras with trigger=http); then waits for every camera's first
              open (LW_CAMERA_START_TIMEOUT_S) and fails with the camera's error if one does not open
    drain()   stop capturing, send what is queued, flush Kafka; True when nothing was left behind
    stop()    stop everything now and close the Kafka producer

Settings come from LW_* environment variables (producer/settings.py); `produce_synthetic` is the
small deterministic helper the tests and the demo use.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from collections.abc import Callable, Mapping, Sequence

import structlog
from kafka import KafkaProducer
from kafka.errors import KafkaError

from linewatch.connect import kafka_connecting
from linewatch.errors import LinewatchError, ServiceUnavailable
from linewatch.health import HealthServer
from linewatch.startup import EXIT_BAD_SETTINGS, program_settings
from producer.capture import CameraCapture, CaptureOptions, FrameQueues, OutgoingFrame
from producer.metrics import ProducerMetrics
from producer.sender import AckCallback, KafkaProducerLike, KafkaSender
from producer.settings import CameraSpec, ProducerSettings
from producer.sources import FrameSource, open_source
from producer.stream import StreamOptions
from producer.trigger import TriggerBoard, TriggerServer

log = structlog.get_logger("producer.app")

SourceFactory = Callable[[CameraSpec], FrameSource]


def make_kafka_producer(settings: ProducerSettings) -> KafkaProducer:
    """kafka-python producer for frames: acks=all, no compression (JPEG is compressed already)."""
    with kafka_connecting(settings, "linewatch-producer"):
        return KafkaProducer(
            **settings.kafka_client_kwargs(),
            client_id="linewatch-producer",
            acks="all",
            compression_type=None,
            linger_ms=settings.linger_ms,
            max_request_size=settings.kafka_max_message_bytes,
            max_block_ms=10_000,
        )


@dataclass(frozen=True, slots=True)
class CameraCounts:
    """One camera's counters, read back from the app's metrics."""

    captured: int
    dropped: int
    sent: int
    send_errors: int
    reconnects: int


class ProducerApp:
    """One producer process: owns its metrics, Kafka producer, queues and threads."""

    def __init__(
        self,
        settings: ProducerSettings,
        *,
        producer: KafkaProducerLike | None = None,
        source_factory: SourceFactory = open_source,
        on_ack: AckCallback | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = ProducerMetrics()
        self._producer = producer
        self._source_factory = source_factory
        if source_factory is open_source:  # network streams get this producer's timeouts and transport
            stream = StreamOptions(settings.stream_open_timeout_s, settings.stream_read_timeout_s, settings.stream_transport)
            self._source_factory = lambda spec: open_source(spec, stream, settings.stream_backend)
        self.triggers: TriggerBoard | None = None
        self._trigger_http: TriggerServer | None = None
        self._on_ack = on_ack
        self._stop_capture = threading.Event()
        self._captures: list[CameraCapture] = []
        self._sender: KafkaSender | None = None
        self._queues: FrameQueues | None = None
        self._http: HealthServer | None = None
        self._started = False
        self._closed = False

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        s = self.settings
        s.check()
        cameras = [spec.id for spec in s.cameras]
        for camera in cameras:
            self.metrics.init_camera(camera)
        if s.metrics_port:
            self._http = HealthServer(
                s.metrics_host, s.metrics_port, self.liveness, self.readiness, registry=self.metrics.registry
            )
            self._http.start()
            log.info("start_step", step="metrics", port=s.metrics_port)
        if self._producer is None:
            self._producer = make_kafka_producer(s)
        log.info("start_step", step="kafka_producer", bootstrap=s.kafka_bootstrap, topic=s.topics.frames)
        self._queues = queues = FrameQueues(cameras, s.queue_size, s.drop_policy, self.metrics)
        self._sender = KafkaSender(self._producer, s.topics.frames, queues, self.metrics, self._on_ack)
        self._sender.start()
        log.info("start_step", step="sender")
        options = CaptureOptions(
            encoding=s.encoding,
            jpeg_quality=s.jpeg_quality,
            resize=(s.resize_width, s.resize_height) if s.resize_width else None,
            target_fps=s.target_fps,
            max_frames=s.max_frames,
            backoff_min_s=s.reconnect_backoff_min_s,
            backoff_max_s=s.reconnect_backoff_max_s,
        )
        triggered = [spec.id for spec in s.cameras if spec.trigger == "http"]
        if triggered:
            self.triggers = TriggerBoard(triggered, self.metrics.registry)
            self._trigger_http = TriggerServer(s.trigger_host, s.trigger_port, self.triggers)
            self._trigger_http.start()
        for spec in s.cameras:
            capture = CameraCapture(
                spec, self._source_factory(spec), queues, options, self.metrics, self._stop_capture, self.triggers
            )
            self._captures.append(capture)
            capture.start()
        self._started = True
        log.info("start_step", step="cameras", cameras=cameras, encoding=s.encoding, drop_policy=s.drop_policy)
        self._check_cameras_open(s.camera_start_timeout_s)

    def _check_cameras_open(self, timeout_s: float) -> None:
        """Wait for each camera's first open; a camera that cannot open is a start failure with its cause."""
        if not timeout_s:
            return
        deadline = time.monotonic() + timeout_s
        for capture in self._captures:
            while not capture.opened.wait(0.05):
                if not capture.is_alive() or time.monotonic() >= deadline:
                    break
            if capture.opened.is_set() or (not capture.is_alive() and capture.error is None):
                continue
            cause = capture.last_open_error or (repr(capture.error) if capture.error else "no error reported")
            raise ServiceUnavailable(
                f"camera {capture.spec.id} ({capture.spec.source}) did not open within {timeout_s:g} s "
                f"(LW_CAMERA_START_TIMEOUT_S): {cause}"
            )
        log.info("start_step", step="cameras_open", cameras=len(self._captures))

    def finished(self) -> bool:
        """True when every capture thread has ended (max_frames reached, finite source ended, error)."""
        return self._started and not any(c.is_alive() for c in self._captures)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for every camera to finish on its own; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for capture in self._captures:
            capture.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return self.finished()

    def drain(self, timeout: float | None = None) -> bool:
        """Stop capturing, send everything queued and flush Kafka; True when nothing was left behind."""
        if not self._started or self._closed:
            return True
        timeout = self.settings.drain_timeout_s if timeout is None else timeout
        deadline = time.monotonic() + timeout
        self._stop_capture.set()
        for capture in self._captures:
            capture.join(max(0.0, deadline - time.monotonic()))
        log.info("drain_step", step="capture_stopped")
        assert self._sender is not None and self._producer is not None and self._queues is not None
        self._sender.finish()
        self._sender.join(max(0.0, deadline - time.monotonic()))
        left = self._queues.pending()
        log.info("drain_step", step="queues_sent", left=left)
        try:
            self._producer.flush(timeout=max(0.1, deadline - time.monotonic()))
        except KafkaError as exc:  # flush timed out: the frames still in flight are reported below
            log.warning("drain_flush_incomplete", error=str(exc))
        in_flight = self._sender.in_flight
        log.info("drain_step", step="kafka_flushed", in_flight=in_flight, left=left)
        return left == 0 and in_flight == 0 and not self._sender.is_alive()

    def stop(self) -> None:
        """Stop now (drain first for a clean shutdown) and release the Kafka producer and endpoint."""
        if self._closed:
            return
        self._closed = True
        self._stop_capture.set()
        for capture in self._captures:
            capture.join(5.0)
        log.info("stop_step", step="capture")
        if self._sender is not None:
            self._sender.abort()
            self._sender.join(5.0)
        if self._queues is not None:
            self._queues.discard()  # only non-empty without a drain (or after a failed one): counted
        log.info("stop_step", step="sender")
        if self._producer is not None:
            try:
                self._producer.close(timeout=5.0)
            except KafkaError as exc:
                log.warning("kafka_close_failed", error=str(exc))
        log.info("stop_step", step="kafka_producer")
        if self._trigger_http is not None:
            self._trigger_http.stop()
        if self._http is not None:
            self._http.stop()
            log.info("stop_step", step="metrics")

    # -- introspection ---------------------------------------------------------------------

    @property
    def sender_alive(self) -> bool:
        return self._sender is not None and self._sender.is_alive()

    def liveness(self) -> tuple[bool, dict]:
        """Alive while the sender thread runs: without it no frame reaches Kafka, whatever the cameras do."""
        cameras = {c.spec.id: c.is_alive() for c in self._captures}
        return self.sender_alive, {"sender_alive": self.sender_alive, "cameras_alive": cameras}

    def readiness(self) -> tuple[bool, dict]:
        connected = {c.spec.id: self.metrics.value("linewatch_producer_camera_connected", c.spec.id) == 1 for c in self._captures}
        return self.sender_alive and any(connected.values()), {"sender_alive": self.sender_alive, "connected": connected}

    def counts(self, camera: str) -> CameraCounts:
        value = self.metrics.value
        return CameraCounts(
            captured=int(value("linewatch_producer_frames_captured_total", camera)),
            dropped=int(value("linewatch_producer_frames_dropped_total", camera)),
            sent=int(value("linewatch_producer_frames_sent_total", camera)),
            send_errors=int(value("linewatch_producer_send_errors_total", camera)),
            reconnects=int(value("linewatch_producer_reconnects_total", camera)),
        )

    @property
    def errors(self) -> list[BaseException]:
        """Exceptions that ended a capture or the sender thread."""
        threads: list[Any] = [*self._captures, self._sender]
        return [t.error for t in threads if t is not None and t.error is not None]


# -- the helper tests and the demo use ---------------------------------------------------------


@dataclass(slots=True)
class ProduceResult:
    """What `produce_synthetic` sent: per camera, (seq, defective) of every acknowledged frame, by seq."""

    topic: str
    frames: dict[str, list[tuple[int, bool]]] = field(default_factory=dict)
    dropped: int = 0
    send_errors: int = 0

    @property
    def sent(self) -> int:
        return sum(len(v) for v in self.frames.values())

    def defective(self, camera: str) -> list[int]:
        return [seq for seq, bad in self.frames.get(camera, []) if bad]


def synthetic_specs(
    cameras: int,
    *,
    size: int = 256,
    defect_rate: float = 0.05,
    fps: float = 0.0,
    defects: Mapping[str, tuple[int, int | None]] | None = None,
    first_seed: int = 1,
) -> list[CameraSpec]:
    """cam-1..cam-N on seeds first_seed.., with optional forced defect ranges [from, to) per camera."""
    specs = []
    for i in range(cameras):
        camera = f"cam-{i + 1}"
        url = f"synthetic://?seed={first_seed + i}&defect_rate={defect_rate}&width={size}&height={size}"
        if defects and camera in defects:
            start, end = defects[camera]
            url += f"&defect_from={start}" + (f"&defect_to={end}" if end is not None else "")
        specs.append(CameraSpec(id=camera, source=url, fps=fps, loop=True))
    return specs


def produce_synthetic(
    settings: ProducerSettings | Mapping[str, Any],
    cameras: int = 2,
    frames_per_camera: int = 50,
    *,
    size: int = 256,
    defect_rate: float = 0.05,
    fps: float = 0.0,
    defects: Mapping[str, tuple[int, int | None]] | None = None,
    timeout_s: float = 120.0,
    metrics_port: int = 0,
    producer: KafkaProducerLike | None = None,
) -> ProduceResult:
    """Send `frames_per_camera` synthetic frames from each of `cameras` cameras (cam-1..cam-N) and wait.

    Deterministic: camera i uses seed i, so the same call renders the same frames and defects.
    fps=0 sends as fast as Kafka takes them; the block policy means nothing is dropped.
    `defects={"cam-1": (20, 40)}` forces one persistent defect on cam-1's seqs 20..39.
    Raises ServiceUnavailable if not everything was acknowledged within `timeout_s`.
    """
    overrides: dict[str, Any] = {
        "cameras": synthetic_specs(cameras, size=size, defect_rate=defect_rate, fps=fps, defects=defects),
        "max_frames": frames_per_camera,
        "drop_policy": "block",
        "target_fps": 0.0,
        "metrics_port": metrics_port,
    }
    if isinstance(settings, ProducerSettings):
        settings = settings.model_copy(update=overrides)
    else:
        settings = ProducerSettings(**{**settings, **overrides})
    result = ProduceResult(topic=settings.topics.frames)
    lock = threading.Lock()

    def collect(frame: OutgoingFrame, _metadata: Any) -> None:
        with lock:
            result.frames.setdefault(frame.camera, []).append((frame.seq, bool(frame.defective)))

    app = ProducerApp(settings, producer=producer, on_ack=collect)
    deadline = time.monotonic() + timeout_s
    try:
        app.start()
        app.wait(timeout_s)
        complete = app.drain(max(1.0, deadline - time.monotonic()))
    finally:
        app.stop()
    for spec in settings.cameras:
        counts = app.counts(spec.id)
        result.dropped += counts.dropped
        result.send_errors += counts.send_errors
        result.frames.setdefault(spec.id, []).sort()
    if not complete or result.sent != cameras * frames_per_camera or app.errors:
        raise ServiceUnavailable(
            f"produced {result.sent}/{cameras * frames_per_camera} frames to {result.topic} "
            f"(send errors {result.send_errors}, dropped {result.dropped}, thread errors {app.errors})"
        )
    return result


# -- command line ------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="linewatch-producer",
        description=(
            "Read cameras (files, devices, RTSP/HTTP, image folders, synthetic) and send their frames "
            "to the Kafka frames topic. Settings come from LW_* environment variables (see the README "
            "table, e.g. LW_KAFKA_BOOTSTRAP, LW_TOPIC_BASE, LW_CAMERAS, LW_ENCODING, LW_DROP_POLICY); "
            "the options below override them."
        ),
    )
    parser.add_argument(
        "--cameras", help='LW_CAMERAS: JSON list of {"id","source","fps","loop","trigger","part"} or synthetic:N'
    )
    parser.add_argument("--max-frames", type=int, help="LW_MAX_FRAMES: stop each camera after N frames (0 = unlimited)")
    parser.add_argument("--target-fps", type=float, help="LW_TARGET_FPS: frames/s for every camera (0 = each camera's own)")
    parser.add_argument("--encoding", choices=["jpeg", "png", "raw"], help="LW_ENCODING")
    parser.add_argument("--topic-base", help="LW_TOPIC_BASE: topics <base>.frames, <base>.alerts, <base>.frames.dlq")
    parser.add_argument("--metrics-port", type=int, help="LW_METRICS_PORT: Prometheus port (0 disables)")
    parser.add_argument("--create-topics", action="store_true", help="create the topics first if missing")
    parser.add_argument("--partitions", type=int, default=4, help="partitions for --create-topics (default 4)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    overrides = {
        name: getattr(args, name)
        for name in ("cameras", "max_frames", "target_fps", "encoding", "topic_base", "metrics_port")
    }
    settings = program_settings("linewatch-producer", ProducerSettings, overrides, check=ProducerSettings.check)
    if settings is None:
        return EXIT_BAD_SETTINGS

    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("signal", signal=signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    app = ProducerApp(settings)
    try:
        if args.create_topics:
            from linewatch.topics import ensure_topics

            ensure_topics(settings, args.partitions)
        app.start()
        while not stop.wait(0.5) and not app.finished():
            if not app.sender_alive:  # a dead sender is a dead producer: exit so a supervisor restarts it
                log.error("sender_thread_died", error=str(app.errors))
                return 1
        drained = app.drain(settings.drain_timeout_s)
    except LinewatchError as exc:
        log.error("producer_failed", error=str(exc))
        return 1
    finally:
        app.stop()
    total = [app.counts(spec.id) for spec in settings.cameras]
    log.info(
        "producer_stopped",
        drained=drained,
        sent=sum(c.sent for c in total),
        dropped=sum(c.dropped for c in total),
        send_errors=sum(c.send_errors for c in total),
    )
    return 0 if drained and not app.errors else 1


if __name__ == "__main__":
    sys.exit(main())
