"""Sizes read from image header bytes, before any decoding."""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np
import pytest

from linewatch import contract as c
from linewatch.contract import FrameMeta
from linewatch.errors import FrameRejected
from worker.decode import DecodeLimits, check_size
from linewatch.imagesize import declared_size, jpeg_size, png_size


def _png(w: int, h: int) -> bytes:
    return cv2.imencode(".png", np.zeros((h, w, 3), np.uint8))[1].tobytes()


def _jpeg(w: int, h: int, **params: int) -> bytes:
    flags = [cv2.IMWRITE_JPEG_PROGRESSIVE, params.get("progressive", 0)]
    return cv2.imencode(".jpg", np.zeros((h, w, 3), np.uint8), flags)[1].tobytes()


def _with_ihdr(png: bytes, w: int, h: int) -> bytes:
    data = struct.pack(">II", w, h) + png[24:29]
    return png[:16] + data + struct.pack(">I", zlib.crc32(b"IHDR" + data)) + png[33:]


@pytest.mark.parametrize(("w", "h"), [(1, 1), (256, 256), (640, 480), (17, 3001)])
def test_png_and_jpeg_sizes_match_what_opencv_writes(w: int, h: int) -> None:
    assert png_size(_png(w, h)) == (w, h)
    assert jpeg_size(_jpeg(w, h)) == (w, h)
    assert jpeg_size(_jpeg(w, h, progressive=1)) == (w, h)  # SOF2


def test_jpeg_size_walks_past_application_segments() -> None:
    jpeg = _jpeg(64, 48)
    exif = b"\xff\xe1" + struct.pack(">H", 2 + 5000) + b"\x00" * 5000  # a large APP1 before the frame header
    assert jpeg_size(jpeg[:2] + exif + jpeg[2:]) == (64, 48)


@pytest.mark.parametrize(
    "data",
    [b"", b"\x89PNG", b"\xff\xd8", b"\xff\xd8\xff\xda\x00\x02", b"\xff\xd8\xff\xe0\x00\x01", b"GIF89a" + b"\x00" * 40,
     b"\xff\xd8" + b"\xff\xe0\xff\xff" + b"\x00" * 10],
)
def test_garbage_has_no_size(data: bytes) -> None:
    assert declared_size(data, "png") is None and declared_size(data, "jpeg") is None


def _meta(encoding: str, w: int, h: int) -> FrameMeta:
    return FrameMeta(camera="c", seq=0, capture_ns=1, encoding=encoding, width=w, height=h)


def test_a_png_bomb_is_refused_from_its_header() -> None:
    bomb = _with_ihdr(_png(8, 8), 30000, 30000)
    with pytest.raises(FrameRejected) as info:
        check_size(bomb, _meta("png", 256, 256), DecodeLimits())
    assert info.value.reason == c.R_WRONG_DIMENSIONS and "30000x30000" in info.value.detail


def test_an_honest_frame_over_the_pixel_cap_is_refused() -> None:
    png = _png(300, 300)
    with pytest.raises(FrameRejected) as info:
        check_size(png, _meta("png", 300, 300), DecodeLimits(max_pixels=256 * 256))
    assert info.value.reason == c.R_OVERSIZE


def test_an_honest_frame_passes() -> None:
    check_size(_jpeg(320, 240), _meta("jpeg", 320, 240), DecodeLimits())
