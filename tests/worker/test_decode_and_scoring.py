from __future__ import annotations

import queue

import cv2
import numpy as np
import pytest

from linewatch import contract as c
from linewatch.contract import FrameMeta
from linewatch.errors import FrameRejected
from worker.batching import BatchPolicy, gather
from worker.decode import DecodeLimits, InputSpec, prepare
from worker.records import STOP
from worker.scoring import anomaly_mask, effective_threshold

SPEC = InputSpec(64, 64, 3)


def _image(w: int = 320, h: int = 240) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (h, w, 3), dtype=np.uint8)


def _meta(encoding: str, w: int = 320, h: int = 240, channels: int = 3) -> FrameMeta:
    return FrameMeta(camera="c", seq=0, capture_ns=1, encoding=encoding, width=w, height=h, channels=channels)


@pytest.mark.parametrize("encoding", ["jpeg", "png"])
def test_encoded_frames_decode_to_model_input(encoding: str) -> None:
    ok, data = cv2.imencode(".jpg" if encoding == "jpeg" else ".png", _image())
    assert ok
    out = prepare(data.tobytes(), _meta(encoding), SPEC, DecodeLimits())
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8


def test_raw_gray_frame_and_gray_model() -> None:
    gray = _image()[:, :, 0].copy()
    out = prepare(gray.tobytes(), _meta("raw", channels=1), InputSpec(32, 48, 1), DecodeLimits())
    assert out.shape == (32, 48, 1)


@pytest.mark.parametrize(
    ("value", "meta", "reason"),
    [
        (b"", _meta("jpeg"), c.R_UNDECODABLE),
        (b"\xff\xd8\xff\xe0 not really a jpeg", _meta("jpeg"), c.R_UNDECODABLE),
        (cv2.imencode(".jpg", _image())[1].tobytes()[:300], _meta("jpeg"), c.R_UNDECODABLE),
        (cv2.imencode(".png", _image())[1].tobytes(), _meta("png", 640, 480), c.R_WRONG_DIMENSIONS),
        (b"\x00" * 100, _meta("raw"), c.R_WRONG_DIMENSIONS),
        (b"\x00" * 2000, _meta("raw"), c.R_OVERSIZE),
    ],
)
def test_bad_frames_are_rejected_with_a_reason(value: bytes, meta: FrameMeta, reason: str) -> None:
    with pytest.raises(FrameRejected) as info:
        prepare(value, meta, SPEC, DecodeLimits(max_bytes=1500 if reason == c.R_OVERSIZE else 10**7))
    assert info.value.reason == reason


def test_threshold_precedence() -> None:
    runtime, configured, model = {"a": 0.9}, {"a": 0.8, "b": 0.7}, {"a": 0.6, "b": 0.6, "c": 0.55}
    assert effective_threshold("a", runtime, configured, model, 0.5) == 0.9
    assert effective_threshold("b", runtime, configured, model, 0.5) == 0.7
    assert effective_threshold("c", runtime, configured, model, 0.5) == 0.55
    assert effective_threshold("d", runtime, configured, model, 0.5) == 0.5


def test_mask_png_and_boxes() -> None:
    amap = np.zeros((64, 64), np.float32)
    amap[10:20, 30:45] = 1.0
    amap[50:52, 5:7] = 1.0  # 4 pixels: kept (min_area 4)
    amap[0, 0] = 1.0  # one pixel: noise, no box
    mask = anomaly_mask(amap, pixel_threshold=0.5)
    decoded = cv2.imdecode(np.frombuffer(mask.png, np.uint8), cv2.IMREAD_GRAYSCALE)
    assert decoded.shape == (64, 64) and decoded[15, 35] == 255 and decoded[40, 40] == 0
    assert mask.boxes == [(30, 10, 15, 10), (5, 50, 2, 2)]
    assert mask.size == (64, 64)


def test_gather_closes_at_max_batch_and_keeps_order() -> None:
    inbox: queue.Queue[object] = queue.Queue()
    for i in range(7):
        inbox.put(i)
    entries, stop = gather(inbox, BatchPolicy(max_batch=4, max_wait_s=1.0))
    assert entries == [0, 1, 2, 3] and not stop
    entries, stop = gather(inbox, BatchPolicy(max_batch=4, max_wait_s=0.01))
    assert entries == [4, 5, 6] and not stop  # closed by the wait, not the size


def test_gather_sees_stop() -> None:
    inbox: queue.Queue[object] = queue.Queue()
    inbox.put(1)
    inbox.put(STOP)
    assert gather(inbox, BatchPolicy(4, 1.0)) == ([1], True)
    assert gather(queue.Queue(), BatchPolicy(4, 0.0), idle_s=0.01) == ([], False)
