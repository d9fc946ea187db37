"""One preprocessing path: the same uint8 model input offline (files, evaluate, calibrate) and served
(worker decode, the batch thread's refit), following the manifest's Preprocessing record."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from linewatch.contract import FrameMeta
from model_store.data import load_uint8
from model_store.preprocess import frames_to_tensor, frames_to_uint8, to_float, to_model_input
from worker.decode import DecodeLimits, InputSpec, prepare


def _frame(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A textured BGR frame (random noise would make every interpolation look alike after blurring)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([(xx * 7 + yy * 3) % 256, (xx * 2 + yy * 11) % 256, (xx * yy) % 256], -1)
    return np.clip(base + rng.integers(-20, 20, base.shape), 0, 255).astype(np.uint8)


@pytest.mark.parametrize(
    ("shape", "size", "channels"),
    [
        ((240, 320, 3), (64, 64), 3),  # shrink, colour
        ((48, 40, 3), (96, 80), 3),  # enlarge
        ((64, 64, 3), (64, 64), 3),  # same size: no resize at all
        ((240, 320), (64, 96), 3),  # gray HxW
        ((240, 320, 1), (64, 96), 1),  # gray HxWx1 to a gray model
        ((240, 320, 4), (32, 48), 3),  # BGRA
        ((100, 50, 3), (30, 60), 1),  # colour to a gray model, aspect changed (no crop)
    ],
)
def test_shapes_and_dtype(shape: tuple[int, ...], size: tuple[int, int], channels: int) -> None:
    frame = _frame(shape[0], shape[1])
    frame = frame[:, :, 0] if len(shape) == 2 else frame[:, :, :1] if shape[2] == 1 else frame
    if len(shape) == 3 and shape[2] == 4:
        frame = np.concatenate([frame, np.full(shape[:2] + (1,), 7, np.uint8)], -1)
    out = to_model_input(frame, size, channels)
    assert out.shape == (*size, channels) and out.dtype == np.uint8


def test_colour_order_is_rgb() -> None:
    blue_bgr = np.zeros((10, 10, 3), np.uint8)
    blue_bgr[..., 0] = 255
    assert to_model_input(blue_bgr, (4, 4))[0, 0].tolist() == [0, 0, 255]


def test_enlarging_uses_area_as_the_manifest_says_not_linear() -> None:
    small = _frame(40, 30)
    out = to_model_input(small, (100, 75))
    area = cv2.cvtColor(cv2.resize(small, (75, 100), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
    linear = cv2.cvtColor(cv2.resize(small, (75, 100), interpolation=cv2.INTER_LINEAR), cv2.COLOR_BGR2RGB)
    assert np.array_equal(out, area)
    assert not np.array_equal(out, linear)  # the worker's old upscaling path differed


def test_gray_frames_are_replicated_and_gray_models_get_luma() -> None:
    gray = _frame(32, 32)[:, :, 1].copy()
    rgb = to_model_input(gray, (32, 32), 3)
    assert np.array_equal(rgb[..., 0], gray) and np.array_equal(rgb[..., 2], gray)
    assert np.array_equal(to_model_input(gray, (32, 32), 1)[..., 0], gray)


def test_non_uint8_frames_are_refused() -> None:
    with pytest.raises(ValueError, match="uint8"):
        to_model_input(np.zeros((4, 4, 3), np.float32), (4, 4))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_float_luma_of_rgb_batches_is_bit_exact_with_the_gray_path(seed: int) -> None:
    frames = [_frame(57, 83, seed + k) for k in range(3)]
    via_rgb = to_float(frames_to_uint8(frames, (40, 44), 3), channels=1)
    via_gray = to_float(frames_to_uint8(frames, (40, 44), 1), channels=1)
    assert via_rgb.shape == via_gray.shape == (3, 1, 40, 44)
    assert torch.equal(via_rgb, via_gray)


def test_files_offline_and_frames_in_memory_give_the_same_input(tmp_path: Path) -> None:
    frames = [_frame(120, 160, k) for k in range(3)]
    paths = []
    for k, f in enumerate(frames):
        paths.append(tmp_path / f"{k}.png")
        cv2.imwrite(str(paths[-1]), f)
    offline = load_uint8(paths, (48, 64))
    assert torch.equal(offline, frames_to_uint8(frames, (48, 64)))
    assert torch.equal(to_float(offline, 3), frames_to_tensor(frames, (48, 64)))


def _meta(encoding: str, h: int, w: int, channels: int = 3) -> FrameMeta:
    return FrameMeta(camera="c", seq=0, capture_ns=1, encoding=encoding, width=w, height=h, channels=channels)


@pytest.mark.parametrize(("h", "w", "spec"), [(240, 320, InputSpec(64, 64, 3)), (40, 30, InputSpec(100, 75, 3)),
                                              (120, 160, InputSpec(48, 64, 1))])
@pytest.mark.parametrize("encoding", ["png", "raw"])
def test_worker_decode_gives_the_offline_input(h: int, w: int, spec: InputSpec, encoding: str) -> None:
    """Lossless frames: the worker's model input equals what evaluate / calibrate compute, byte for byte."""
    frame = _frame(h, w)
    value = cv2.imencode(".png", frame)[1].tobytes() if encoding == "png" else frame.tobytes()
    served = prepare(value, _meta(encoding, h, w), spec, DecodeLimits())
    offline = frames_to_uint8([frame], (spec.height, spec.width), spec.channels)[0].permute(1, 2, 0).numpy()
    assert np.array_equal(served, offline)


def test_batch_refit_after_a_model_swap_uses_the_same_path() -> None:
    from types import SimpleNamespace

    from worker.batching import _fit

    frame = _frame(120, 160)
    old_input = to_model_input(frame, (96, 128))  # decoded for the previous model
    new = SimpleNamespace(spec=InputSpec(48, 64, 3))
    refit = _fit(old_input, new)
    assert np.array_equal(refit, to_model_input(cv2.cvtColor(old_input, cv2.COLOR_RGB2BGR), (48, 64)))
    assert refit[..., 0].mean() == pytest.approx(old_input[..., 0].mean(), abs=2)  # red stayed red
    gray = _fit(old_input, SimpleNamespace(spec=InputSpec(48, 64, 1)))
    assert gray.shape == (48, 64, 1)
    assert _fit(refit, new) is refit  # already right: untouched
