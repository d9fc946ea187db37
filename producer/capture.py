"""Capture side of the producer: one thread per camera reads, encodes and queues frames.

    CameraCapture   source -> (pace) -> resize -> encode -> FrameMeta headers -> FrameQueues
    FrameQueues     bounded per-camera queues with drop_oldest or block; every drop is counted

A source that stops delivering costs a reconnect (with linewatch/backoff.py's Backoff); the outage is
counted when frames come back (linewatch_producer_source_gaps_total, _gap_seconds_total,
_frames_missed_total). A camera with trigger=http reads one frame per trigger (producer/trigger.py)
and stamps the trigger's part id.
"""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import cv2
import numpy as np
import structlog

from linewatch.contract import FrameMeta, frame_headers
from linewatch.backoff import Backoff
from linewatch.errors import ConfigError
from linewatch.logs import RateLimitedLog
from producer.metrics import ProducerMetrics
from producer.settings import CameraSpec
from producer.sources import CameraLost, FrameSource, SourceFrame

if TYPE_CHECKING:
    from producer.trigger import TriggerBoard

log = structlog.get_logger("producer.capture")

DropPolicy = Literal["drop_oldest", "block"]


@dataclass(frozen=True, slots=True)
class OutgoingFrame:
    """An encoded frame ready for Kafka, plus the ground truth when the source knows it."""

    camera: str
    seq: int
    value: bytes
    headers: list[tuple[str, bytes]]
    defective: bool | None = None


class FrameQueues:
    """Bounded per-camera FIFO queues behind one lock; the sender takes from them round-robin."""

    def __init__(
        self,
        cameras: list[str],
        maxsize: int,
        policy: DropPolicy,
        metrics: ProducerMetrics,
        drop_log: RateLimitedLog | None = None,
    ) -> None:
        if maxsize < 1:
            raise ConfigError("queue size must be >= 1")
        self.maxsize, self.policy, self.metrics = maxsize, policy, metrics
        self._drop_log = drop_log or RateLimitedLog()
        self._queues = {camera: collections.deque[OutgoingFrame]() for camera in cameras}
        self._order = list(cameras)
        self._next = 0
        self._cond = threading.Condition()

    def put(self, frame: OutgoingFrame, stop: threading.Event) -> bool:
        """Queue `frame`; False only when the block policy gave up because `stop` was set."""
        queue = self._queues[frame.camera]
        dropped: OutgoingFrame | None = None
        with self._cond:
            if self.policy == "block":
                while len(queue) >= self.maxsize and not stop.is_set():
                    self._cond.wait(0.05)
                if len(queue) >= self.maxsize:
                    dropped = frame  # stopping while blocked: this frame will never be sent
            elif len(queue) >= self.maxsize:
                dropped = queue.popleft()  # the oldest frame is the least useful one to a live line
            if dropped is not frame:
                queue.append(frame)
                self._cond.notify_all()
            depth = len(queue)
        self.metrics.queue_depth.labels(frame.camera).set(depth)
        if dropped is not None:
            self.metrics.dropped.labels(frame.camera).inc()
            suppressed = self._drop_log.allow(frame.camera)
            if suppressed is not None:
                log.warning(
                    "frame_dropped",
                    camera=frame.camera,
                    seq=dropped.seq,
                    reason="shutdown" if dropped is frame else "queue_full",
                    queue_size=self.maxsize,
                    suppressed=suppressed,
                    dropped_total=int(self.metrics.value("linewatch_producer_frames_dropped_total", frame.camera)),
                )
        return dropped is not frame

    def get(self, timeout: float) -> OutgoingFrame | None:
        """The next frame, taking cameras in turn so one busy camera cannot starve the others."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for i in range(len(self._order)):
                    camera = self._order[(self._next + i) % len(self._order)]
                    queue = self._queues[camera]
                    if queue:
                        self._next = (self._next + i + 1) % len(self._order)
                        frame = queue.popleft()
                        self.metrics.queue_depth.labels(camera).set(len(queue))
                        self._cond.notify_all()  # wake a capture thread blocked on a full queue
                        return frame
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)

    def discard(self) -> int:
        """Empty every queue (stopping without a drain); each frame thrown away counts as dropped."""
        with self._cond:
            thrown = {camera: len(queue) for camera, queue in self._queues.items() if queue}
            for queue in self._queues.values():
                queue.clear()
            self._cond.notify_all()
        for camera, count in thrown.items():
            self.metrics.dropped.labels(camera).inc(count)
            self.metrics.queue_depth.labels(camera).set(0)
            log.warning("frames_discarded", camera=camera, frames=count, reason="stopped_without_drain")
        return sum(thrown.values())

    def pending(self) -> int:
        with self._cond:
            return sum(len(q) for q in self._queues.values())


@dataclass(frozen=True, slots=True)
class CaptureOptions:
    """What every camera thread needs from the settings (one small object, not a long argument list)."""

    encoding: str = "jpeg"
    jpeg_quality: int = 90
    resize: tuple[int, int] | None = None  # (width, height)
    target_fps: float = 0.0  # 0: each camera's own rate
    max_frames: int = 0  # 0: unlimited
    backoff_min_s: float = 0.5
    backoff_max_s: float = 30.0


def encode_frame(image: np.ndarray, encoding: str, jpeg_quality: int = 90) -> bytes:
    """Encode BGR/gray uint8 pixels as the wire expects (see linewatch.contract)."""
    if encoding == "raw":
        return np.ascontiguousarray(image).tobytes()
    if encoding == "jpeg":
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
    elif encoding == "png":
        ok, buf = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 1])  # speed over size
    else:
        raise ConfigError(f"unknown encoding {encoding!r}")
    if not ok:
        raise ValueError(f"cv2.imencode failed for a {image.shape} frame as {encoding}")
    return buf.tobytes()


def effective_fps(spec: CameraSpec, source: FrameSource, target_fps: float) -> float:
    """Frames/s to emit: the override, else the camera's, else the source's; 0 = unpaced."""
    if target_fps > 0:
        return target_fps
    if spec.fps is not None:
        return spec.fps
    return source.native_fps or 0.0


class CameraCapture(threading.Thread):
    """Reads one camera until stopped, finished (max_frames, end of a finite source) or broken."""

    def __init__(
        self,
        spec: CameraSpec,
        source: FrameSource,
        queues: FrameQueues,
        options: CaptureOptions,
        metrics: ProducerMetrics,
        stop: threading.Event,
        triggers: TriggerBoard | None = None,
    ) -> None:
        super().__init__(name=f"capture-{spec.id}", daemon=True)
        self.triggers = triggers if spec.trigger == "http" else None
        self.opened = threading.Event()  # set at the first successful open (the app's start check waits on it)
        self.last_open_error = ""
        self._last_frame_at: float | None = None  # monotonic time of the last frame emitted
        self._outage = False  # a live source was lost after delivering; counted when frames come back
        self.spec, self.source, self.queues, self.options, self.metrics = spec, source, queues, options, metrics
        self.stop_event = stop
        self.backoff = Backoff(options.backoff_min_s, options.backoff_max_s)
        self.seq = 0  # next sequence number; counts every captured frame, sent or dropped
        self.error: BaseException | None = None
        self._log = log.bind(camera=spec.id, source=source.name)
        self._open_log = RateLimitedLog()

    def run(self) -> None:
        try:
            self._loop()
        except Exception as exc:  # thread boundary: record and log, never die silently
            self.error = exc
            self._log.exception("capture_failed")
        finally:
            self.metrics.connected.labels(self.spec.id).set(0)
            self.source.close()

    def _loop(self) -> None:
        if not self._connect(after_loss=False):
            return
        fps = effective_fps(self.spec, self.source, self.options.target_fps)
        period = 1.0 / fps if fps > 0 else 0.0
        self._log.info("capture_started", fps=fps, live=self.source.live)
        next_due = time.monotonic()
        part: str | None = None  # the trigger being served; kept across a reconnect so no trigger is lost
        while not self.stop_event.is_set():
            if self.options.max_frames and self.seq >= self.options.max_frames:
                self._log.info("capture_finished", reason="max_frames", frames=self.seq)
                return
            if self.triggers is not None and part is None:
                part = self.triggers.wait(self.spec.id, self.stop_event)
                if part is None:
                    return  # stopped while waiting
            try:
                frame = self.source.read()
                if frame is None:
                    self._log.info("capture_finished", reason="end_of_source", frames=self.seq)
                    return
                now = time.monotonic()
                if period and self.source.live and self.triggers is None:
                    # A live camera delivers at its own pace: skip frames to slow it down, never sleep
                    # (sleeping would let the device buffer fill and add latency).
                    if now < next_due:
                        continue
                    next_due = max(next_due + period, now)
                self._emit(frame, part or frame.part)
                part = None
            except Exception as exc:  # noqa: BLE001 - a source or encoder failure costs a reconnect, not the camera
                self._lost(exc)
                if not self._connect(after_loss=True):
                    return
                next_due = time.monotonic()
                continue
            if period and not self.source.live and self.triggers is None:
                next_due += period
                delay = next_due - time.monotonic()
                if delay > 0:
                    self.stop_event.wait(delay)
                elif delay < -period:
                    next_due = time.monotonic()  # fell behind: carry on at the rate, do not burst

    def _lost(self, exc: Exception) -> None:
        """Count and log a failure of the source or the encoder, then close the source for a reconnect."""
        self.metrics.camera_errors.labels(self.spec.id).inc()
        self.metrics.connected.labels(self.spec.id).set(0)
        if self._last_frame_at is not None and not self._outage:  # lost after delivering: an outage
            self._outage = True
            if self.triggers is not None:  # a triggered camera idles between parts: the outage starts now
                self._last_frame_at = time.monotonic()
        suppressed = self._open_log.allow(f"lost:{type(exc).__name__}")
        if suppressed is not None:
            kind = "camera_lost" if isinstance(exc, (CameraLost, cv2.error)) else "camera_failed"
            self._log.warning(kind, error=f"{type(exc).__name__}: {exc}", seq=self.seq, suppressed=suppressed)
        try:
            self.source.close()
        except Exception as close_exc:  # noqa: BLE001 - a broken source may fail to close too; reopen anyway
            self._log.warning("camera_close_failed", error=str(close_exc))

    def _count_frame(self, skipped: int) -> None:
        """Per frame: newest-frame skips, the source's last-frame time, and an outage that just ended."""
        now = time.monotonic()
        camera = self.spec.id
        if skipped:
            self.metrics.skipped.labels(camera).inc(skipped)
        if self._outage and self._last_frame_at is not None:
            gap = now - self._last_frame_at
            fps = self.source.native_fps or effective_fps(self.spec, self.source, self.options.target_fps)
            self.metrics.gaps.labels(camera).inc()
            self.metrics.gap_seconds.labels(camera).inc(gap)
            # A triggered camera misses parts, not frames: what the PLC sent meanwhile waits in the board.
            missed = max(0, round(gap * fps) - 1) if fps and self.triggers is None else 0
            self.metrics.frames_missed.labels(camera).inc(missed)
            self._log.warning("source_gap", seconds=round(gap, 3), frames_missed_estimate=missed, seq=self.seq)
        self._outage = False
        self._last_frame_at = now
        self.metrics.last_frame.labels(camera).set(time.time())

    def _emit(self, frame: SourceFrame, part: str) -> None:
        self._count_frame(frame.skipped)
        image, defective = frame.image, frame.defective
        if not part and self.spec.part == "counter":
            part = f"{self.spec.id}-{self.seq}"
        capture_ns = time.time_ns()
        if self.options.resize and image.shape[1::-1] != self.options.resize:
            image = cv2.resize(image, self.options.resize, interpolation=cv2.INTER_AREA)
        value = encode_frame(image, self.options.encoding, self.options.jpeg_quality)
        height, width = image.shape[:2]
        meta = FrameMeta(
            camera=self.spec.id,
            seq=self.seq,
            capture_ns=capture_ns,
            encoding=self.options.encoding,
            width=width,
            height=height,
            channels=1 if image.ndim == 2 else image.shape[2],
            part=part,
        )
        frame = OutgoingFrame(self.spec.id, self.seq, value, frame_headers(meta), defective)
        self.seq += 1
        self.metrics.captured.labels(self.spec.id).inc()
        self.metrics.frame_bytes.labels(self.spec.id).observe(len(value))
        self.queues.put(frame, self.stop_event)

    def _connect(self, after_loss: bool) -> bool:
        """Open the source, retrying with backoff; False if stopped first."""
        failures = 0
        while not self.stop_event.is_set():
            if after_loss or failures:
                delay = self.backoff.next()
                if self.stop_event.wait(delay):
                    return False
                self.metrics.reconnects.labels(self.spec.id).inc()
            try:
                self.source.open()
            except Exception as exc:  # noqa: BLE001 - whatever a source raises, try again after a back-off
                failures += 1
                self.last_open_error = f"{type(exc).__name__}: {exc}"
                suppressed = self._open_log.allow(self.spec.id)
                if suppressed is not None:
                    self._log.warning("camera_open_failed", error=str(exc), failures=failures, suppressed=suppressed)
                continue
            if after_loss or failures:
                self._log.info("camera_reconnected", failed_attempts=failures)
            self.backoff.reset()
            self.opened.set()
            self.metrics.connected.labels(self.spec.id).set(1)
            return True
        return False
