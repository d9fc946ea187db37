"""From a model's raw outputs to verdicts: thresholds per camera, masks, boxes.

Thresholds are normalised scores in [0, 1]; 0.5 is the model's calibrated threshold. The one in
force for a camera is, first found: a runtime override in Redis, the worker's settings for that
camera, the per-camera value stored beside the model, the worker's default.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


def effective_threshold(
    camera: str,
    runtime: dict[str, float],
    configured: dict[str, float],
    model: dict[str, float],
    default: float,
) -> float:
    for source in (runtime, configured, model):
        if camera in source:
            return source[camera]
    return default


@dataclass(frozen=True, slots=True)
class Mask:
    png: bytes
    boxes: list[tuple[int, int, int, int]]  # x, y, w, h in mask pixels
    size: tuple[int, int]  # width, height


def anomaly_mask(amap: np.ndarray, pixel_threshold: float, min_area: int = 4) -> Mask:
    """Binary mask (0/255 PNG at model resolution) and the boxes of its connected regions."""
    binary = (amap > pixel_threshold).astype(np.uint8) * 255
    ok, png = cv2.imencode(".png", binary, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:  # encoding a plain uint8 array cannot fail short of memory exhaustion
        raise RuntimeError("PNG encoding of a mask failed")
    count, _, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    boxes = [
        (int(x), int(y), int(w), int(h))
        for x, y, w, h, area in stats[1:count]
        if area >= min_area
    ]
    boxes.sort(key=lambda b: b[2] * b[3], reverse=True)
    return Mask(png=png.tobytes(), boxes=boxes[:32], size=(int(amap.shape[1]), int(amap.shape[0])))
