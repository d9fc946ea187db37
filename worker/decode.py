"""Frame bytes -> the model's input: check the size, decode, check against the headers, resize.

Runs in a thread pool (OpenCV releases the GIL). The size the image bytes declare is read
before decoding (linewatch/imagesize.py), so a frame whose bytes would decode to more pixels than
its headers say, or than the configured cap, is refused before anything is allocated. Anything
wrong with a frame raises FrameRejected with a reason code, which sends the record to the
dead-letter topic.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from linewatch import contract as c
from linewatch.contract import FrameMeta
from linewatch.errors import FrameRejected
from linewatch.imagesize import declared_size
from model_store import preprocess
from worker.routing import crop, decode_target


@dataclass(frozen=True, slots=True)
class InputSpec:
    """What the model wants: size (height, width) and channels (3 = RGB, 1 = gray)."""

    height: int
    width: int
    channels: int = 3


@dataclass(frozen=True, slots=True)
class DecodeLimits:
    """Bounds on what one frame may cost before it is decoded."""

    max_bytes: int = 8 * 1024 * 1024
    max_pixels: int = 4096 * 4096


def check_size(value: bytes, meta: FrameMeta, limits: DecodeLimits) -> None:
    """Refuse, before decoding, a frame that is too large or whose bytes disagree with its headers."""
    if not value:
        raise FrameRejected(c.R_UNDECODABLE, "empty value")
    if len(value) > limits.max_bytes:
        raise FrameRejected(c.R_OVERSIZE, f"{len(value)} bytes > limit {limits.max_bytes}")
    if meta.width * meta.height > limits.max_pixels:
        raise FrameRejected(c.R_OVERSIZE, f"headers say {meta.width}x{meta.height} > {limits.max_pixels} pixels")
    if meta.encoding == "raw":
        expected = meta.width * meta.height * meta.channels
        if len(value) != expected:
            raise FrameRejected(c.R_WRONG_DIMENSIONS, f"raw frame has {len(value)} bytes, headers say {expected}")
        return
    size = declared_size(value, meta.encoding)
    if size is None:
        raise FrameRejected(c.R_UNDECODABLE, f"no {meta.encoding} header with a size in the first bytes")
    if size != (meta.width, meta.height):
        raise FrameRejected(
            c.R_WRONG_DIMENSIONS, f"{meta.encoding} declares {size[0]}x{size[1]}, headers say {meta.width}x{meta.height}"
        )


def decode_image(value: bytes, meta: FrameMeta, spec: InputSpec) -> np.ndarray:
    """Decode checked bytes to BGR uint8 (H, W, 3), reduced when the model needs less."""
    if meta.encoding == "raw":
        image = np.frombuffer(value, np.uint8).reshape(meta.height, meta.width, meta.channels)
        if meta.channels == 1:
            return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        return image[:, :, :3] if meta.channels == 4 else image
    image, scale = preprocess.decode(value, meta.encoding, meta.width, meta.height, (spec.height, spec.width))
    if image is None:
        raise FrameRejected(c.R_UNDECODABLE, f"{meta.encoding} data could not be decoded ({len(value)} bytes)")
    expect_h, expect_w = -(-meta.height // scale), -(-meta.width // scale)
    if abs(image.shape[0] - expect_h) > 1 or abs(image.shape[1] - expect_w) > 1:
        raise FrameRejected(
            c.R_WRONG_DIMENSIONS,
            f"decoded {image.shape[1] * scale}x{image.shape[0] * scale}, headers say {meta.width}x{meta.height}",
        )
    return image


def to_model_input(image_bgr: np.ndarray, spec: InputSpec) -> np.ndarray:
    """BGR uint8 (H, W, 3) -> uint8 (h, w, C): the model store's one preprocessing path."""
    return preprocess.to_model_input(image_bgr, (spec.height, spec.width), spec.channels)


def decode_chunk(frames: list[tuple[bytes, FrameMeta]], spec: InputSpec, limits: DecodeLimits) -> list[np.ndarray | Exception]:
    """`prepare` for several frames in one pool task (a task per frame costs more than a small
    frame's decode); each result is the model input or the exception that frame raised."""
    out: list[np.ndarray | Exception] = []
    for value, meta in frames:
        try:
            out.append(prepare(value, meta, spec, limits))
        except Exception as exc:  # noqa: BLE001 - handed to the batch thread, which dead-letters the frame
            out.append(exc)
    return out


def prepare(value: bytes, meta: FrameMeta, spec: InputSpec, limits: DecodeLimits) -> np.ndarray:
    """The whole decode step for one record; FrameRejected on any problem with the frame."""
    check_size(value, meta, limits)
    try:
        return to_model_input(decode_image(value, meta, spec), spec)
    except cv2.error as exc:  # OpenCV's own failures on malformed data
        raise FrameRejected(c.R_UNDECODABLE, str(exc).strip().splitlines()[-1][:200]) from exc


def prepare_routed(value: bytes, meta: FrameMeta, spec: InputSpec, limits: DecodeLimits, box: tuple[int, int, int, int] | None) -> np.ndarray:
    """`prepare` for a frame routed by a recipe: decoded for its own model's input, cropped to the
    recipe's region box first (worker/routing.py) when it has one."""
    if box is None:
        return prepare(value, meta, spec, limits)
    check_size(value, meta, limits)
    target = decode_target(box, (spec.height, spec.width), meta.width, meta.height)
    try:
        image = decode_image(value, meta, InputSpec(target[0], target[1], spec.channels))
        return to_model_input(crop(image, box, meta.width, meta.height), spec)
    except cv2.error as exc:  # OpenCV's own failures on malformed data
        raise FrameRejected(c.R_UNDECODABLE, str(exc).strip().splitlines()[-1][:200]) from exc


def decode_routed(
    frames: list[tuple[bytes, FrameMeta, InputSpec, tuple[int, int, int, int] | None]], limits: DecodeLimits
) -> list[np.ndarray | Exception]:
    """`decode_chunk` for routed frames: each with its own model's input spec and region box."""
    out: list[np.ndarray | Exception] = []
    for value, meta, spec, box in frames:
        try:
            out.append(prepare_routed(value, meta, spec, limits, box))
        except Exception as exc:  # noqa: BLE001 - handed to the batch thread, which dead-letters the frame
            out.append(exc)
    return out
