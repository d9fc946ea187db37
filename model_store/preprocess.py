"""Frame -> model input: the one preprocessing path of training, evaluation, calibration and serving.

`decode` turns encoded bytes (what a camera sends, what a dataset file holds) into a BGR frame:
a JPEG larger than the model needs is decoded at 1/2, 1/4 or 1/8 of its size by libjpeg (much
cheaper, and the frame is shrunk anyway); the worker decodes camera frames and the data loader
decodes image files through this same function, so offline and served inputs agree for JPEG too.
`to_model_input` follows the manifest's Preprocessing record: a BGR uint8 frame (OpenCV's decode;
gray frames HxW or HxWx1 are replicated to 3 channels, a 4th channel is dropped) is resized to the
input size with the record's interpolation (`area`: cv2.INTER_AREA whether it shrinks or enlarges;
no crop), then becomes RGB for 3-channel models or luma for 1-channel ones (cv2 BGR2GRAY:
0.299 R + 0.587 G + 0.114 B, rounded). The result stays uint8 (what crosses threads, pinned
buffers and Kafka-sized queues in the worker); `to_float` is the last step on the model's device,
x * 1/255 as the record's `scale` says (the record allows no mean/std).

Used by model_store.data (training and evaluation images), model_store.store (LoadedModel.preprocess),
model_store.quick, and the worker (worker/decode.py, worker/batching.py).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from model_store.manifest import Preprocessing

_RECORD = Preprocessing()
_INTERPOLATION = {"area": cv2.INTER_AREA}
_REDUCED = ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4), (2, cv2.IMREAD_REDUCED_COLOR_2))


def jpeg_reduction(width: int, height: int, size: tuple[int, int]) -> tuple[int, int]:
    """(factor, imread flag): the largest 1/2, 1/4 or 1/8 JPEG decode that still covers `size` (h, w)."""
    for factor, flag in _REDUCED:
        if width // factor >= size[1] and height // factor >= size[0]:
            return factor, flag
    return 1, cv2.IMREAD_COLOR


def decode(data: bytes, encoding: str, width: int, height: int, size: tuple[int, int]) -> tuple[np.ndarray | None, int]:
    """Encoded `data` ("jpeg" or "png", declaring width x height) -> (BGR uint8 image or None, reduction factor)."""
    factor, flag = jpeg_reduction(width, height, size) if encoding == "jpeg" else (1, cv2.IMREAD_COLOR)
    return cv2.imdecode(np.frombuffer(data, np.uint8), flag), factor


def to_model_input(frame: np.ndarray, size: tuple[int, int], channels: int = 3, record: Preprocessing = _RECORD) -> np.ndarray:
    """BGR uint8 (H, W, 3), gray (H, W) / (H, W, 1) or BGRA (H, W, 4) -> uint8 (h, w, channels): RGB or luma."""
    if frame.dtype != np.uint8:
        raise ValueError(f"frames are uint8, got {frame.dtype}")
    if frame.ndim == 2 or frame.shape[2] == 1:
        frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    elif frame.shape[2] == 4:
        frame = frame[:, :, :3]
    height, width = size
    if frame.shape[:2] != (height, width):
        frame = cv2.resize(frame, (width, height), interpolation=_INTERPOLATION[record.resize])
    if channels == 1:
        return cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)[:, :, None]
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


def frames_to_uint8(frames: list[np.ndarray], size: tuple[int, int], channels: int = 3) -> torch.Tensor:
    """BGR uint8 frames -> uint8 [N, C, H, W] model inputs (a 761-image set at 128 px, C = 3, is 37 MB)."""
    batch = np.stack([to_model_input(f, size, channels) for f in frames])  # [N, H, W, C]
    return torch.from_numpy(batch).permute(0, 3, 1, 2).contiguous()


def _luma_u8(rgb: torch.Tensor) -> torch.Tensor:
    """uint8 [B, 3, H, W] RGB -> uint8 [B, 1, H, W] through cv2, so the rounding is to_model_input's."""
    hwc = rgb.permute(0, 2, 3, 1).cpu().numpy()
    gray = np.stack([cv2.cvtColor(np.ascontiguousarray(im), cv2.COLOR_RGB2GRAY) for im in hwc])
    return torch.from_numpy(gray)[:, None].to(rgb.device)


def to_float(batch_u8: torch.Tensor, channels: int) -> torch.Tensor:
    """uint8 [B, C, H, W] model inputs -> float [B, channels, H, W] in [0, 1], as the worker's engine does.

    RGB batches given to a 1-channel model (training and evaluation load RGB) first get the same
    uint8 luma `to_model_input` gives, so a gray model sees identical inputs offline and served.
    """
    if channels == 1 and batch_u8.shape[1] == 3:
        batch_u8 = _luma_u8(batch_u8)
    return batch_u8.float().div_(255.0)


def frames_to_tensor(frames: list[np.ndarray], size: tuple[int, int], channels: int = 3, device: str = "cpu") -> torch.Tensor:
    """BGR uint8 frames -> float [B, C, H, W] in [0, 1] on device: the model's input."""
    return to_float(frames_to_uint8(frames, size, channels).to(device), channels)
