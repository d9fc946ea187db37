"""Network streams (RTSP, HTTP, UDP) through PyAV: timeouts, TCP/UDP transport, newest frame only.

Why not OpenCV: its FFmpeg backend blocks for its own hard-coded 30 s on a dead stream and offers
no per-read timeout (opencv#4506), so a camera that drops off the network stalls the capture
thread. PyAV gives the same FFmpeg demuxers with an open and a read timeout (an interrupt callback
armed before every blocking call), and the transport is an ordinary demuxer option.

    StreamSource.open()   connect within open_timeout_s; fails with FFmpeg's cause (refused, 404, timeout)
    reader thread         demuxes and decodes every packet (H.264 needs them all), keeps only the
                          newest decoded frame: a consumer slower than the camera never builds lag
    StreamSource.read()   the newest frame not yet returned; CameraLost after read_timeout_s without one

`av` (PyPI) is the `cameras` extra; without it an rtsp:// camera fails at start with the command to
install it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Literal

import structlog

from producer.frame_source import CameraLost, SourceFrame

log = structlog.get_logger("producer.stream")

Transport = Literal["tcp", "udp"]
_FPS_LIMIT = 1000.0  # a container's rate above this is a timebase, not a camera's rate


@dataclass(frozen=True, slots=True)
class StreamOptions:
    """How to connect: timeouts in seconds and the RTSP transport."""

    open_timeout_s: float = 10.0
    read_timeout_s: float = 5.0
    transport: Transport = "tcp"


def _av() -> Any:
    try:
        import av
    except ImportError as exc:  # optional extra: say how to get it instead of a bare ImportError
        raise CameraLost(
            "stream sources need PyAV: pip install 'linewatch[cameras]' (or set LW_STREAM_BACKEND=opencv: no timeouts)"
        ) from exc
    return av


class StreamSource:
    """One network stream; a thread of its own decodes, `read` hands out the newest frame."""

    live = True

    def __init__(self, url: str, options: StreamOptions | None = None) -> None:
        self.name = url
        self.url = url
        self.options = options or StreamOptions()
        self._fps: float | None = None
        self._cond = threading.Condition()
        self._latest: Any = None  # newest decoded av.VideoFrame not yet handed out
        self._skipped = 0  # decoded frames replaced by a newer one before `read` took them
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def native_fps(self) -> float | None:
        return self._fps

    def _container_options(self) -> dict[str, str]:
        options = {"fflags": "nobuffer", "flags": "low_delay"}  # hand frames over as they arrive
        if self.url.lower().startswith(("rtsp://", "rtsps://")):
            options["rtsp_transport"] = self.options.transport
        return options

    def open(self) -> None:
        self.close()
        av = _av()
        o = self.options
        try:
            container = av.open(self.url, options=self._container_options(), timeout=(o.open_timeout_s, o.read_timeout_s))
        except av.FFmpegError as exc:
            raise CameraLost(f"cannot open {self.url}: {exc}") from exc
        if not container.streams.video:
            container.close()
            raise CameraLost(f"{self.url} has no video stream")
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        self._fps = float(rate) if rate and 0 < float(rate) < _FPS_LIMIT else None
        self._stop = threading.Event()
        self._error, self._latest, self._skipped = None, None, 0
        self._thread = threading.Thread(target=self._decode, args=(container, stream, self._stop), daemon=True,
                                        name=f"stream-{self.url.rsplit('/', 1)[-1][:20]}")
        self._thread.start()

    def _decode(self, container: Any, stream: Any, stop: threading.Event) -> None:
        """Reader thread: decode until stopped or the stream fails; it alone touches the container."""
        try:
            for frame in container.decode(stream):
                with self._cond:
                    if stop.is_set():  # closed: a reopened source has its own reader now
                        return
                    if self._latest is not None:
                        self._skipped += 1
                    self._latest = frame
                    self._cond.notify_all()
            error: BaseException = CameraLost(f"{self.url}: the stream ended")
        except Exception as exc:  # noqa: BLE001 - any demux/decode failure ends this connection; read() reports it
            error = CameraLost(f"{self.url}: {type(exc).__name__}: {exc}")
        finally:
            try:
                container.close()
            except Exception as exc:  # noqa: BLE001 - closing a broken connection may fail too; nothing to keep
                log.debug("stream_close_failed", url=self.url, error=str(exc))
        with self._cond:
            if not stop.is_set():
                self._error = error
            self._cond.notify_all()

    def read(self) -> SourceFrame | None:
        if self._thread is None:
            raise CameraLost(f"{self.url} is not open")
        deadline = time.monotonic() + self.options.read_timeout_s
        with self._cond:
            while self._latest is None:
                if self._error is not None:
                    raise self._error
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise CameraLost(f"{self.url}: no frame for {self.options.read_timeout_s:g} s")
                self._cond.wait(remaining)
            frame, skipped = self._latest, self._skipped
            self._latest, self._skipped = None, 0
        # Converted here, not in the reader: only the frames actually sent pay for the conversion.
        return SourceFrame(frame.to_ndarray(format="bgr24"), skipped=skipped)

    def close(self) -> None:
        """Stop the reader; it leaves within the read timeout (FFmpeg's blocking calls are interrupted)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(self.options.read_timeout_s + 1.0)
            if thread.is_alive():
                log.warning("stream_reader_slow_to_stop", url=self.url)
