"""Overlays drawn over a frame: the anomaly heatmap, its binary mask, or the mask's outline.

Workers store an 8-bit heatmap PNG at model resolution with 128 as the pixel threshold (and a 0/255
mask PNG, which thresholds to itself). One function turns either into a transparent RGBA PNG the
browser stretches over the frame. The map is upscaled before thresholding, so a 64x64 model map
gives a smooth outline rather than 4-pixel stairs.
"""

from __future__ import annotations

import functools
import math
import struct

import cv2
import numpy as np

MODES = ("heat", "mask", "outline")
PIXEL_THRESHOLD = 128  # the heatmap value at the model's pixel threshold (shapes: P:heat)
MIN_SIDE = 256  # small model maps are upscaled to at least this, so edges stay smooth when stretched
MAX_SIDE = 1024  # larger maps are drawn at this size: the overlay is a hint, not a measurement

_MASK_BGRA = (0, 0, 255, 110)  # translucent red
_OUTLINE_BGRA = (0, 255, 255, 255)  # opaque yellow, visible on grey parts and on the red NG badge


def png_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG's header, or None when `data` is no PNG. Needs the first 24 bytes."""
    if len(data) < 24 or data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _scaled(gray: np.ndarray) -> np.ndarray:
    height, width = gray.shape
    factor = max(1.0, MIN_SIDE / min(height, width))
    factor = min(factor, MAX_SIDE / max(height, width))
    if math.isclose(factor, 1.0):
        return gray
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    return cv2.resize(gray, size, interpolation=cv2.INTER_LINEAR if factor > 1 else cv2.INTER_AREA)


def _heat(gray: np.ndarray) -> np.ndarray:
    bgra = cv2.cvtColor(cv2.applyColorMap(gray, cv2.COLORMAP_JET), cv2.COLOR_BGR2BGRA)
    # Transparent below half the threshold, growing to 80 % opaque at the top: the frame stays visible.
    alpha = np.clip((gray.astype(np.float32) - PIXEL_THRESHOLD / 2) * (204 / (255 - PIXEL_THRESHOLD / 2)), 0, 204)
    bgra[..., 3] = alpha.astype(np.uint8)
    return bgra


def _paint(where: np.ndarray, bgra: tuple[int, int, int, int]) -> np.ndarray:
    out = np.zeros((*where.shape, 4), np.uint8)
    out[where] = bgra
    return out


def _outline(binary: np.ndarray) -> np.ndarray:
    thickness = max(1, max(binary.shape) // 128)
    eroded = cv2.erode(binary.astype(np.uint8), np.ones((3, 3), np.uint8), iterations=thickness).astype(bool)
    return binary & ~eroded


@functools.lru_cache(maxsize=512)  # every open screen asks for the same previews: draw each once
def render(map_png: bytes, mode: str) -> bytes | None:
    """A transparent PNG overlay of a heatmap or mask PNG in `mode` (MODES); None if it is no image."""
    if mode not in MODES:
        raise ValueError(f"overlay mode {mode!r}, expected one of {MODES}")
    gray = cv2.imdecode(np.frombuffer(map_png, np.uint8), cv2.IMREAD_GRAYSCALE)
    if gray is None or gray.size == 0:
        return None
    gray = _scaled(gray)
    if mode == "heat":
        bgra = _heat(gray)
    else:
        binary = gray >= PIXEL_THRESHOLD
        bgra = _paint(binary, _MASK_BGRA) if mode == "mask" else _paint(_outline(binary), _OUTLINE_BGRA)
    ok, encoded = cv2.imencode(".png", bgra, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    return encoded.tobytes() if ok else None
