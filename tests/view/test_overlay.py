"""Overlays from a heatmap: where the pixel threshold (128) is crossed, and only there."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from view.overlay import MIN_SIDE, png_size, render


def _png(array: np.ndarray) -> bytes:
    return cv2.imencode(".png", array)[1].tobytes()


def _decode(png: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)


@pytest.fixture
def heat() -> np.ndarray:
    """64x64 heatmap: background 40, a 16x16 square at 220 (above the threshold), a 16x16 square at 110 (below)."""
    heat = np.full((64, 64), 40, np.uint8)
    heat[8:24, 8:24] = 220
    heat[40:56, 40:56] = 110
    return heat


def test_png_size_reads_the_header(heat: np.ndarray) -> None:
    assert png_size(_png(heat[:, :48])) == (48, 64)
    assert png_size(_png(heat)[:24]) == (64, 64)  # the first 24 bytes are enough
    assert png_size(b"\xff\xd8\xff\xe0" + b"\0" * 30) is None  # a JPEG
    assert png_size(b"") is None


def test_mask_covers_exactly_the_pixels_over_threshold(heat: np.ndarray) -> None:
    out = _decode(render(_png(heat), "mask"))
    assert out.shape == (MIN_SIDE, MIN_SIDE, 4)  # upscaled 4x, RGBA
    alpha = out[..., 3] > 0
    # Inside the hot square (away from its edge, where upscaling blends): painted; elsewhere: clear.
    assert alpha[40:90, 40:90].all()
    assert not alpha[170:215, 170:215].any()  # 110 < 128: not anomalous
    assert not alpha[120:150, :].any()
    assert alpha.sum() == pytest.approx(64 * 64, rel=0.1)  # the 16x16 square, 4x upscaled


def test_outline_is_the_border_only(heat: np.ndarray) -> None:
    out = _decode(render(_png(heat), "outline"))
    drawn = out[..., 3] > 0
    assert not drawn[48:80, 48:80].any()  # the square's inside stays clear
    assert drawn[32:96, 30:34].any() and drawn[30:34, 32:96].any()  # its left and top edges are drawn
    assert 0 < drawn.sum() < 0.25 * 64 * 64
    assert not drawn[160:224, 160:224].any()


def test_heat_is_transparent_where_cold(heat: np.ndarray) -> None:
    out = _decode(render(_png(heat), "heat"))
    alpha = out[..., 3]
    assert alpha[5:10, 150:250].max() == 0  # background 40: below half the threshold
    assert alpha[50:80, 50:80].min() > 150  # hot square: mostly opaque
    assert 0 < alpha[180:210, 180:210].min() < alpha[50:80, 50:80].min()  # warm: visible, fainter


def test_mask_png_gives_the_same_mask_as_its_heatmap(heat: np.ndarray) -> None:
    mask = np.where(heat >= 128, 255, 0).astype(np.uint8)
    from_heat = _decode(render(_png(heat), "mask"))[..., 3] > 0
    from_mask = _decode(render(_png(mask), "mask"))[..., 3] > 0
    assert (from_heat != from_mask).mean() < 0.01


def test_not_an_image_gives_none_and_unknown_mode_raises(heat: np.ndarray) -> None:
    assert render(b"garbage", "mask") is None
    with pytest.raises(ValueError, match="overlay mode"):
        render(_png(heat), "sparkles")
