from __future__ import annotations

import pytest

from linewatch import contract as c
from linewatch.contract import Alert, FrameMeta, frame_headers, parse_frame_headers
from linewatch.errors import FrameRejected

META = FrameMeta(camera="cam-1", seq=7, capture_ns=1_700_000_000_123_456_789, encoding="jpeg", width=640, height=480)


def test_headers_round_trip() -> None:
    assert parse_frame_headers(frame_headers(META), key=b"cam-1") == META


def test_frame_id_orders_by_capture_and_is_stable() -> None:
    a = META.frame_id
    assert a == "1700000000123-7"
    assert a == parse_frame_headers(frame_headers(META)).frame_id


def _without(name: str) -> list[tuple[str, bytes]]:
    return [(k, v) for k, v in frame_headers(META) if k != name]


def _with(name: str, value: bytes) -> list[tuple[str, bytes]]:
    return [(k, value if k == name else v) for k, v in frame_headers(META)]


@pytest.mark.parametrize(
    ("headers", "key", "reason"),
    [
        (None, None, c.R_MISSING_HEADER),
        ([], None, c.R_MISSING_HEADER),
        (_without(c.H_SEQ), None, c.R_MISSING_HEADER),
        (_without(c.H_CAMERA), None, c.R_MISSING_HEADER),
        (_with(c.H_SCHEMA, b"2"), None, c.R_UNKNOWN_SCHEMA),
        (_with(c.H_SEQ, b"seven"), None, c.R_BAD_HEADER),
        (_with(c.H_WIDTH, b"0"), None, c.R_BAD_HEADER),
        (_with(c.H_HEIGHT, b"99999"), None, c.R_BAD_HEADER),
        (_with(c.H_ENCODING, b"gif"), None, c.R_BAD_HEADER),
        (_with(c.H_CAMERA, b"a:b"), None, c.R_BAD_HEADER),
        (_with(c.H_CAMERA, b"\xff\xfe"), None, c.R_BAD_HEADER),
        (frame_headers(META), b"cam-2", c.R_KEY_MISMATCH),
    ],
)
def test_bad_headers_are_rejected_with_a_reason(headers, key, reason: str) -> None:
    with pytest.raises(FrameRejected) as info:
        parse_frame_headers(headers, key)
    assert info.value.reason == reason


def test_alert_json_round_trip() -> None:
    alert = Alert(
        camera="cam-1", frame_seq=3, capture_ns=5, score_raw=0.9, score=0.8, threshold=0.5,
        model_name="m", model_version="v1", mask_key="lw:mask:cam-1:0-3", mask_size=(64, 64),
        boxes=[(1, 2, 3, 4)], frame_id="0-3", emitted_ns=6,
    )
    assert Alert.from_json(alert.to_json()) == alert


def test_dead_letter_headers_keep_the_original_and_say_why() -> None:
    headers = c.dead_letter_headers(frame_headers(META), c.R_UNDECODABLE, "broken", "t:0:5")
    found = dict(headers)
    assert found[c.H_DLQ_REASON] == b"undecodable"
    assert found[c.H_DLQ_SOURCE] == b"t:0:5"
    assert found[c.H_CAMERA] == b"cam-1"
