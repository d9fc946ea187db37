"""Pictures for people: heatmaps and downscaled JPEGs the live view shows next to the scores.

Written only where someone will look: every anomalous frame (kept for frame_ttl_s), and one
preview per camera at most every preview_interval_ms (the tile on the camera wall). A JPEG that
is already small enough is stored as it came, without decoding or encoding anything.
"""

from __future__ import annotations

import time

import cv2
import numpy as np

from linewatch.contract import FrameMeta
from worker.camera_state import CameraTable
from linewatch.imagesize import declared_size


def heat_png(amap: np.ndarray, pixel_threshold: float) -> bytes:
    """The anomaly map as an 8-bit PNG in which 128 is the pixel threshold (255: twice it or more)."""
    scale = 128.0 / pixel_threshold if pixel_threshold > 0 else 255.0 / max(float(amap.max()), 1e-9)
    heat = np.clip(amap * scale, 0, 255).astype(np.uint8)
    ok, png = cv2.imencode(".png", heat, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:  # encoding a plain uint8 array cannot fail short of memory exhaustion
        raise RuntimeError("PNG encoding of a heatmap failed")
    return png.tobytes()


def preview_jpeg(value: bytes, meta: FrameMeta, width: int, quality: int = 80) -> bytes:
    """A JPEG of the frame at most `width` pixels wide (the original bytes when they already are)."""
    if meta.encoding == "jpeg" and meta.width <= width and declared_size(value, "jpeg") == (meta.width, meta.height):
        return value
    if meta.encoding == "raw":
        image = np.frombuffer(value, np.uint8).reshape(meta.height, meta.width, meta.channels)[:, :, :3]
    else:
        factor = next((f for f in (8, 4, 2) if meta.width // f >= width), 1)
        flags = {8: cv2.IMREAD_REDUCED_COLOR_8, 4: cv2.IMREAD_REDUCED_COLOR_4, 2: cv2.IMREAD_REDUCED_COLOR_2}
        image = cv2.imdecode(np.frombuffer(value, np.uint8), flags.get(factor, cv2.IMREAD_COLOR))
        if image is None:
            return b""
    if image.shape[1] > width:
        height = max(1, round(image.shape[0] * width / image.shape[1]))
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return jpeg.tobytes() if ok else b""


class PreviewClock:
    """Says when a camera's preview is due again; remembers at most `max_cameras` cameras."""

    def __init__(self, interval_s: float, max_cameras: int, idle_s: float = 3600.0) -> None:
        self.interval_s = interval_s
        self._last = CameraTable[list[float]](max_cameras, idle_s)

    def due(self, camera: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        last = self._last.get(camera, lambda: [float("-inf")])
        if now - last[0] < self.interval_s:
            return False
        last[0] = now
        return True
