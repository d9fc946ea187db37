from __future__ import annotations

import pytest

from linewatch import contract as c
from linewatch.contract import Alert, FrameMeta, frame_headers, parse_frame_record
from linewatch.errors import FrameRejected

META = FrameMeta(camera="cam-1", seq=7, capture_ns=1_700_000_000_123_456_789, encoding="jpeg", width=640, height=480)
KEY = b"cam-1"


def test_headers_round_trip() -> None:
    assert parse_frame_record(KEY, frame_headers(META)) == META


def test_frame_id_is_the_records_place_in_the_topic() -> None:
    assert c.frame_id(3, 1234) == "3-1234"
    assert c.frame_id(3, 1234) != c.frame_id(1, 1234)


@pytest.mark.parametrize("capture_ns", [0, 1, (1 << 63) - 1])
def test_any_capture_clock_is_accepted_as_data(capture_ns: int) -> None:
    meta = FrameMeta(camera="cam-1", seq=0, capture_ns=capture_ns, encoding="png", width=8, height=8)
    assert parse_frame_record(KEY, frame_headers(meta)).capture_ns == capture_ns


def _without(name: str) -> list[tuple[str, bytes]]:
    return [(k, v) for k, v in frame_headers(META) if k != name]


def _with(name: str, value: bytes) -> list[tuple[str, bytes]]:
    return [(k, value if k == name else v) for k, v in frame_headers(META)]


@pytest.mark.parametrize(
    ("headers", "key", "reason"),
    [
        (None, KEY, c.R_MISSING_HEADER),
        ([], KEY, c.R_MISSING_HEADER),
        (_without(c.H_SEQ), KEY, c.R_MISSING_HEADER),
        (_without(c.H_CAMERA), KEY, c.R_MISSING_HEADER),
        (_with(c.H_SCHEMA, b"2"), KEY, c.R_UNKNOWN_SCHEMA),
        (_with(c.H_SEQ, b"seven"), KEY, c.R_BAD_HEADER),
        (_with(c.H_SEQ, b"-1"), KEY, c.R_BAD_HEADER),
        (_with(c.H_SEQ, b"99999999999999999999999"), KEY, c.R_BAD_HEADER),
        (_with(c.H_SEQ, b"+5"), KEY, c.R_BAD_HEADER),
        (_with(c.H_WIDTH, b"0"), KEY, c.R_BAD_HEADER),
        (_with(c.H_HEIGHT, b"99999"), KEY, c.R_BAD_HEADER),
        (_with(c.H_ENCODING, b"gif"), KEY, c.R_BAD_HEADER),
        (_with(c.H_CAMERA, b"a:b"), b"a:b", c.R_BAD_HEADER),
        (_with(c.H_CAMERA, b"\xff\xfe"), KEY, c.R_BAD_HEADER),
        (_with(c.H_CAMERA, b"x" * 10_000), b"x" * 10_000, c.R_BAD_HEADER),
        (frame_headers(META) + [(c.H_SEQ, b"8")], KEY, c.R_BAD_HEADER),  # repeated, conflicting
        (frame_headers(META) + [(c.H_SEQ, b"7")], KEY, c.R_BAD_HEADER),  # repeated at all
        (frame_headers(META), b"cam-2", c.R_KEY_MISMATCH),
        (frame_headers(META), None, c.R_MISSING_KEY),
    ],
)
def test_bad_records_are_rejected_with_a_reason(headers, key, reason: str) -> None:
    with pytest.raises(FrameRejected) as info:
        parse_frame_record(key, headers)
    assert info.value.reason == reason
    assert len(str(info.value)) < 400  # details quote sender data cut short


def test_foreign_headers_are_ignored() -> None:
    headers = [("traceparent", b"00-abc"), ("x-\u00e9", b"\xff")] + frame_headers(META)
    assert parse_frame_record(KEY, headers) == META


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


def test_part_header_is_optional_and_round_trips() -> None:
    assert parse_frame_record(KEY, frame_headers(META)).part == ""  # records without lw-part stay valid
    assert c.H_PART not in dict(frame_headers(META))
    with_part = FrameMeta(**{**{f: getattr(META, f) for f in META.__slots__}, "part": "SN-0001/lot 7"})
    headers = frame_headers(with_part)
    assert dict(headers)[c.H_PART] == b"SN-0001/lot 7"
    assert parse_frame_record(KEY, headers) == with_part


@pytest.mark.parametrize("bad", [b"", b"x" * (c.MAX_PART_ID + 1), b"tab\there", b"line\nbreak", "caf\u00e9".encode()])
def test_bad_part_ids_are_refused_like_camera_ids(bad: bytes) -> None:
    with pytest.raises(FrameRejected) as rejected:
        parse_frame_record(KEY, frame_headers(META) + [(c.H_PART, bad)])
    assert rejected.value.reason == c.R_BAD_HEADER


def test_alerts_without_part_read_as_empty() -> None:
    alert = Alert(camera="cam-1", frame_seq=1, capture_ns=1, score_raw=0.1, score=0.6, threshold=0.5, model_name="m",
                  model_version="1", mask_key="k", mask_size=(8, 8), part="SN-1")
    assert Alert.from_json(alert.to_json()).part == "SN-1"
    import json
    old = json.loads(alert.to_json())
    del old["part"]  # an alert written before lw-part existed
    assert Alert.from_json(json.dumps(old).encode()).part == ""
    assert c.RESULT_FIELDS[-2:] == ("part", "recipe")  # new fields go last: older readers index the rest
