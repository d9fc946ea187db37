"""Frame sources: where a camera's pixels come from.

Every source has the same small surface (`open`, `read`, `close`, `native_fps`, `live`):
`read` returns the next BGR frame, None at the end of a finite source, and raises CameraLost
when the device or stream fails (the capture loop then reconnects with backoff).

    open_source(spec)        picks one of:
    SyntheticSource          synthetic://?seed=..  (producer/synthetic.py; knows each frame's truth)
    ImageFolderSource        folder:///dir or an existing directory, images in name order
    VideoCaptureSource       video file or device index ("0", /dev/video0: USB/V4L2) through OpenCV
    StreamSource             rtsp:// / http(s):// / udp:// URLs through PyAV (producer/stream.py):
                             timeouts, TCP/UDP, newest frame only (LW_STREAM_BACKEND=opencv: OpenCV)
    AravisSource             genicam://<device id> GigE Vision / USB3 Vision (producer/genicam.py)
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

import cv2

from producer.settings import CameraSpec
from producer.synthetic import SCHEME as SYNTHETIC_SCHEME
from producer.synthetic import SyntheticCamera

from producer.frame_source import CameraLost, FrameSource, SourceFrame

if TYPE_CHECKING:
    from producer.stream import StreamOptions

__all__ = ["CameraLost", "FrameSource", "SourceFrame", "open_source"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
SYNTHETIC_DEFAULT_FPS = 10.0  # synthetic and folder sources have no rate of their own
_LIVE_SCHEMES = ("rtsp", "rtsps", "http", "https", "udp", "tcp")


class SyntheticSource:
    """Renders SyntheticCamera frames; its counter survives reopening, so seq == render index."""

    live = False

    def __init__(self, url: str) -> None:
        self.name = url
        self.camera = SyntheticCamera.from_url(url)
        self.position = 0

    @property
    def native_fps(self) -> float | None:
        return SYNTHETIC_DEFAULT_FPS

    def open(self) -> None:
        pass

    def read(self) -> SourceFrame | None:
        image, mask = self.camera.render(self.position)
        self.position += 1
        return SourceFrame(image, defective=mask is not None)

    def close(self) -> None:
        pass


class ImageFolderSource:
    """Images of a folder in name order; loops when asked to. Unreadable files are CameraLost."""

    live = False

    def __init__(self, folder: Path, loop: bool = True) -> None:
        self.name = str(folder)
        self.folder = folder
        self.loop = loop
        self._files: list[Path] = []
        self._index = 0

    @property
    def native_fps(self) -> float | None:
        return SYNTHETIC_DEFAULT_FPS

    def open(self) -> None:
        if not self.folder.is_dir():
            raise CameraLost(f"image folder {self.folder} does not exist")
        self._files = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self._files:
            raise CameraLost(f"image folder {self.folder} has no images ({', '.join(IMAGE_SUFFIXES)})")
        self._index = min(self._index, len(self._files))

    def read(self) -> SourceFrame | None:
        if self._index >= len(self._files):
            if not self.loop:
                return None
            self._index = 0
        path = self._files[self._index]
        self._index += 1
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise CameraLost(f"cannot read image {path}")
        return SourceFrame(image)

    def close(self) -> None:
        pass


class VideoCaptureSource:
    """OpenCV VideoCapture: a video file (rewinds when looping), a device index or a stream URL."""

    def __init__(self, target: str | int, loop: bool = True) -> None:
        self.name = str(target)
        self.target = target
        self.loop = loop
        # A path is a file even before it exists; device indexes and stream URLs are live.
        self.is_file = (
            isinstance(target, str) and urlsplit(target).scheme.lower() not in _LIVE_SCHEMES and _device_path(target) is None
        )
        self.live = not self.is_file
        self._cap: cv2.VideoCapture | None = None
        self._fps: float | None = None

    @property
    def native_fps(self) -> float | None:
        return self._fps

    def open(self) -> None:
        self.close()
        device = _device_path(self.target)
        if device is not None and not Path(device).exists():
            # OpenCV only says "cannot open"; a missing node is the usual cause (unplugged, wrong index,
            # a container without --device).
            raise CameraLost(f"video device {device} does not exist (unplugged, wrong index, or not passed to the container)")
        cap = cv2.VideoCapture(self.target)
        if not cap.isOpened():
            cap.release()
            raise CameraLost(f"cannot open {self.name}")
        fps = cap.get(cv2.CAP_PROP_FPS)
        self._fps = float(fps) if fps and 0 < fps < 1000 else None
        self._cap = cap

    def read(self) -> SourceFrame | None:
        if self._cap is None:
            raise CameraLost(f"{self.name} is not open")
        ok, image = self._cap.read()
        if ok:
            return SourceFrame(image)
        if not self.is_file:
            raise CameraLost(f"{self.name} stopped delivering frames")
        if not self.loop:
            return None
        self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)  # end of file: rewind
        ok, image = self._cap.read()
        if not ok:
            raise CameraLost(f"{self.name}: no frame after rewinding")
        return SourceFrame(image)

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


def _device_path(target: str | int) -> str | None:
    """The V4L2 node a device target names (index 0 -> /dev/video0), None for files and URLs."""
    if isinstance(target, int):
        return f"/dev/video{target}"
    return target if target.startswith("/dev/video") else None


def open_source(spec: CameraSpec, stream: "StreamOptions | None" = None, backend: str = "pyav") -> FrameSource:
    """The source a camera spec names (not opened yet: the capture loop opens it, with retries).

    `stream` and `backend` apply to network URLs: PyAV with those timeouts, or OpenCV."""
    source = spec.source.strip()
    scheme = urlsplit(source).scheme.lower()
    if scheme == SYNTHETIC_SCHEME:
        return SyntheticSource(source)
    if scheme == "genicam":
        from producer.genicam import AravisSource

        return AravisSource.from_url(source)
    if scheme == "folder":
        parts = urlsplit(source)
        return ImageFolderSource(Path(unquote(parts.netloc + parts.path)), loop=spec.loop)
    if source.isdigit():
        return VideoCaptureSource(int(source), loop=spec.loop)
    if scheme in _LIVE_SCHEMES:
        if backend == "opencv":
            return VideoCaptureSource(source, loop=spec.loop)
        from producer.stream import StreamSource

        return StreamSource(source, stream)
    if scheme == "file":
        parts = urlsplit(source)
        source = unquote(parts.netloc + parts.path)
    if Path(source).is_dir():
        return ImageFolderSource(Path(source), loop=spec.loop)
    return VideoCaptureSource(source, loop=spec.loop)
