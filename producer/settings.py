"""The producer's settings: which cameras to read, how to encode, how hard to push Kafka.

Every field is read from an ``LW_*`` environment variable (``LW_JPEG_QUALITY`` for
``jpeg_quality``) and documented by its ``description`` (the README table is generated from
those). Cameras come as JSON in ``LW_CAMERAS`` or as the shorthand ``synthetic:N``.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import NoDecode

from linewatch.contract import ENCODINGS, MAX_CAMERA_ID
from linewatch.errors import ConfigError
from linewatch.settings import KafkaSettings

SYNTHETIC_SHORTHAND = "synthetic:"


class CameraSpec(BaseModel):
    """One camera: an id (the Kafka key) and where its frames come from.

    source forms: ``synthetic://?seed=1&defect_rate=0.05`` (see producer/synthetic.py),
    a video file path, a device index (``0``) or ``/dev/videoN``, an ``rtsp://``/``http(s)://`` URL
    (PyAV, producer/stream.py), ``genicam://<ip|device id>?...`` (Aravis, producer/genicam.py), or
    ``folder:///path/to/images`` / an existing directory (images in name order).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(description="Camera id: the Kafka key and lw-camera header (printable, no ':').")
    source: str = Field(description="Where frames come from (synthetic://, file, device index, URL, folder).")
    fps: float | None = Field(
        None,
        ge=0,
        description="Frames per second to send; None = the source's own rate, 0 = as fast as possible.",
    )
    loop: bool = Field(True, description="Restart finite sources (files, folders) at their end.")
    trigger: Literal["none", "http"] = Field(
        "none",
        description="none: free-running at fps; http: one frame per POST /trigger (LW_TRIGGER_PORT), carrying its part id.",
    )
    part: Literal["none", "counter"] = Field(
        "none",
        description="Part id of frames without one from a trigger: none, or counter (<camera>-<seq>: one part per frame).",
    )

    @field_validator("id")
    @classmethod
    def _check_id(cls, value: str) -> str:
        # Same rule the worker applies to lw-camera (linewatch.contract.parse_frame_record).
        if not value or len(value) > MAX_CAMERA_ID or not value.isprintable() or ":" in value:
            raise ValueError(f"camera id {value!r} must be printable, without ':', 1..{MAX_CAMERA_ID} chars")
        return value


def synthetic_cameras(count: int, *, defect_rate: float = 0.05, fps: float | None = None) -> list[CameraSpec]:
    """``count`` synthetic cameras cam-1..cam-N, seeds 1..N (what ``LW_CAMERAS=synthetic:N`` means)."""
    return [
        CameraSpec(id=f"cam-{i}", source=f"synthetic://?seed={i}&defect_rate={defect_rate}", fps=fps)
        for i in range(1, count + 1)
    ]


def parse_cameras(value: Any) -> list[CameraSpec]:
    """Accept a list of specs/dicts, a JSON list, or ``synthetic:N``."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith(SYNTHETIC_SHORTHAND):
            try:
                count = int(text[len(SYNTHETIC_SHORTHAND):])
            except ValueError as exc:
                raise ValueError(f"{text!r}: expected synthetic:<count>") from exc
            if count < 1:
                raise ValueError(f"{text!r}: count must be >= 1")
            return synthetic_cameras(count)
        if not text:
            return []
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"cameras must be JSON or synthetic:<count>: {exc}") from exc
    if not isinstance(value, list):
        raise ValueError("cameras must be a list of {id, source, fps, loop} objects")
    specs = [item if isinstance(item, CameraSpec) else CameraSpec.model_validate(item) for item in value]
    ids = [spec.id for spec in specs]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ValueError(f"duplicate camera ids: {', '.join(duplicates)}")
    return specs


class ProducerSettings(KafkaSettings):
    """Settings of ``linewatch-producer``."""

    cameras: Annotated[list[CameraSpec], NoDecode] = Field(
        default_factory=list,
        description=(
            'Cameras as JSON, e.g. [{"id":"cam-1","source":"synthetic://?seed=1&defect_rate=0.05",'
            '"fps":10,"loop":true}], or synthetic:N for N synthetic cameras. Optional per camera: "trigger":"http" '
            '(one frame per POST /trigger), "part":"counter" (part id <camera>-<seq>); sources: README "Cameras".'
        ),
    )
    encoding: str = Field("jpeg", description="Frame encoding on the wire: jpeg, png or raw.")
    jpeg_quality: int = Field(90, ge=1, le=100, description="JPEG quality (1-100).")
    resize_width: int = Field(0, ge=0, description="Resize frames to this width before encoding; 0 keeps the source's.")
    resize_height: int = Field(0, ge=0, description="Resize frames to this height before encoding; 0 keeps the source's.")
    target_fps: float = Field(0.0, ge=0, description="Override every camera's rate (frames/s); 0 keeps each camera's own.")
    max_frames: int = Field(0, ge=0, description="Stop each camera after this many frames; 0 = unlimited (tests, demo).")
    queue_size: int = Field(32, ge=1, description="Encoded frames buffered per camera between capture and Kafka.")
    drop_policy: Literal["drop_oldest", "block"] = Field(
        "drop_oldest",
        description="When a camera's queue is full: drop_oldest (counted, live cameras) or block capture (files, tests).",
    )
    reconnect_backoff_min_s: float = Field(0.5, gt=0, description="First delay before reopening a lost camera, seconds.")
    reconnect_backoff_max_s: float = Field(30.0, gt=0, description="Longest delay between reconnect attempts, seconds.")
    camera_start_timeout_s: float = Field(
        20.0,
        ge=0,
        description=(
            "At start, how long each camera may take to open the first time before the producer exits with "
            "the camera's error (a wrong URL or a missing device fails fast, not later); 0 = keep retrying."
        ),
    )
    stream_backend: Literal["pyav", "opencv"] = Field(
        "pyav",
        description="Reader of rtsp/http/udp URLs: pyav (timeouts, TCP/UDP, newest frame; the cameras extra) or opencv.",
    )
    stream_open_timeout_s: float = Field(10.0, gt=0, description="PyAV streams: longest wait to connect and get the stream's description, seconds.")
    stream_read_timeout_s: float = Field(
        5.0, gt=0, description="PyAV streams: a stream silent this long is lost and reconnected (with back-off), seconds."
    )
    stream_transport: Literal["tcp", "udp"] = Field(
        "tcp", description="RTSP transport: tcp (interleaved, survives lossy links and NAT) or udp (lower latency, drops packets)."
    )
    trigger_port: int = Field(
        0,
        ge=0,
        le=65535,
        description="Port of POST /trigger?camera=..&part=.. for cameras with trigger=http (one frame per trigger); 0 = none.",
    )
    trigger_host: str = Field("127.0.0.1", description="Address the trigger endpoint binds (a PLC gateway's network).")
    linger_ms: int = Field(5, ge=0, description="Kafka producer linger.ms: how long a batch waits for more frames.")
    drain_timeout_s: float = Field(30.0, gt=0, description="On shutdown, how long to wait for queued frames to reach Kafka.")
    metrics_port: int = Field(
        9101, ge=0, le=65535, description="Port of /metrics, /healthz (sender thread alive) and /readyz; 0 disables it."
    )
    metrics_host: str = Field("0.0.0.0", description="Address the metrics and health endpoint binds.")

    @field_validator("cameras", mode="before")
    @classmethod
    def _parse_cameras(cls, value: Any) -> list[CameraSpec]:
        return parse_cameras(value)

    @field_validator("encoding")
    @classmethod
    def _check_encoding(cls, value: str) -> str:
        value = value.lower()
        if value not in ENCODINGS:
            raise ValueError(f"encoding {value!r}: one of {', '.join(ENCODINGS)}")
        return value

    def check(self) -> None:
        """Checks that need several fields; raise ConfigError (called at start-up)."""
        if not self.cameras:
            raise ConfigError("no cameras: set LW_CAMERAS (JSON list or synthetic:N)")
        if self.reconnect_backoff_max_s < self.reconnect_backoff_min_s:
            raise ConfigError("LW_RECONNECT_BACKOFF_MAX_S must be >= LW_RECONNECT_BACKOFF_MIN_S")
        if self.trigger_port == 0 and any(spec.trigger == "http" for spec in self.cameras):
            raise ConfigError("cameras with trigger=http need LW_TRIGGER_PORT (the POST /trigger endpoint)")
        if bool(self.resize_width) != bool(self.resize_height):
            raise ConfigError("set both LW_RESIZE_WIDTH and LW_RESIZE_HEIGHT, or neither")
