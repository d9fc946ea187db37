"""Parsing what workers wrote: defensive field by field, hostile ids kept as data, timelines thinned."""

from __future__ import annotations

import json

import pytest

from linewatch.contract import Alert
from view.results import alert_item, camera_state, decimate, parse_boxes, published_ms, valid_camera, valid_id

HOSTILE = "<img src=x onerror=alert(1)>"


@pytest.mark.parametrize("camera, ok", [
    ("cam-1", True), (HOSTILE, True), ("a" * 128, True), ("a" * 129, False), ("", False),
    ("lw:latest:x", False), ("tab\there", False), ("new\nline", False),
])
def test_camera_ids_follow_the_contract(camera: str, ok: bool) -> None:
    assert valid_camera(camera) is ok


@pytest.mark.parametrize("value, ok", [
    ("0-17", True), ("1796153113051-0", True), ("17", False), ("0-", False), ("-1-2", False),
    ("1-2-3", False), ("1-2 ", False), ("1" * 21 + "-1", False), ("+", False),
])
def test_frame_and_entry_ids(value: str, ok: bool) -> None:
    assert valid_id(value) is ok


def test_camera_state_reads_a_full_hash() -> None:
    fields = {"camera": "cam-1", "seq": "41", "frame_id": "2-99", "score": "0.730000", "threshold": "0.500000",
              "anomalous": "1", "model_name": "draem", "model_version": "7", "published_ms": "1700000000123",
              "latency_ms": "12.5", "preview_frame_id": "2-97", "worker": "w1", "recipe": "weld"}
    state = camera_state("cam-1", fields)
    assert state == {"camera": "cam-1", "frame_id": "2-99", "seq": 41, "score": 0.73, "threshold": 0.5,
                     "anomalous": True, "model": "draem@7", "published_ms": 1700000000123, "latency_ms": 12.5,
                     "preview": "2-97", "worker": "w1", "part": "", "recipe": "weld"}


def test_camera_state_survives_junk() -> None:
    state = camera_state("c", {"score": "nan", "threshold": "high", "seq": "x", "anomalous": "yes",
                               "latency_ms": "", "preview_frame_id": "../../etc", "model_name": "m"})
    assert state["score"] is None and state["threshold"] is None and state["seq"] is None
    assert state["anomalous"] is False and state["latency_ms"] is None
    assert state["preview"] == ""  # not an id: never turned into an image URL
    assert state["model"] == "m" and state["published_ms"] is None


@pytest.mark.parametrize("fields, expected", [
    ({"published_ms": "1000", "capture_ns": "5000000"}, 1000),
    ({"capture_ns": "5000000", "clock_ok": "1"}, 5),       # an older worker: capture time stands in
    ({"capture_ns": "5000000", "clock_ok": "0"}, None),    # ...unless its clock was implausible
    ({}, None),
])
def test_published_ms(fields: dict, expected) -> None:
    assert published_ms(fields) == expected


@pytest.mark.parametrize("raw, expected", [
    ("[[1, 2, 3, 4]]", [[1, 2, 3, 4]]), ("[]", []), ("", []), ("not json", []), ('{"x": 1}', []),
    ('[[1, 2, 3], [1, 2, 3, 4], "x", [1, 2, 3, "4"]]', [[1, 2, 3, 4]]),
])
def test_parse_boxes(raw: str, expected: list) -> None:
    assert parse_boxes(raw) == expected


def _alert(**overrides) -> dict[str, str]:
    alert = Alert(camera=HOSTILE, frame_seq=5, capture_ns=1, score_raw=0.1, score=0.9, threshold=0.5,
                  model_name="synth", model_version="3", mask_key="k", mask_size=(64, 48), boxes=[(1, 2, 3, 4)],
                  frame_id="1-5", emitted_ns=2)
    data = json.loads(alert.to_json())
    data.update(overrides)
    return {"alert": json.dumps(data)}


def test_alert_item_reads_the_contract_alert() -> None:
    item = alert_item("1700000000000-3", _alert())
    assert item is not None
    assert item["camera"] == HOSTILE and item["frame_id"] == "1-5" and item["t"] == 1700000000000
    assert item["mask_size"] == [64, 48] and item["boxes"] == [[1, 2, 3, 4]] and item["model"] == "synth@3"


@pytest.mark.parametrize("fields", [
    {"alert": "{"}, {}, {"alert": "[]"}, _alert(schema=99), _alert(frame_id="../x"), _alert(camera="a:b"),
    _alert(unexpected=1), {"alert": json.dumps({"schema": 1})}, _alert(mask_size=["a", "b"]), _alert(mask_size=[64]),
    _alert(frame_seq="x"), _alert(camera=5), _alert(frame_id=None), _alert(capture_ns=None),
])
def test_unreadable_alerts_are_none(fields: dict) -> None:
    assert alert_item("1-0", fields) is None


def _points(flags: str) -> list[dict]:
    return [{"id": f"{i}-0", "anomalous": f == "A"} for i, f in enumerate(flags)]


@pytest.mark.parametrize("flags, cap, kept", [
    ("nnnn", 4, "0123"),                 # under the cap: unchanged
    ("nnnnnnnn", 4, "1357"),             # every second normal point, counted from the newest
    ("nnAnnnnnAn", 4, "2489"),           # anomalous kept, normals every 4th from the newest
    ("AAAAAn", 3, "234"),                # too many anomalous: the newest of them
    ("nnnnnnnnnA", 2, "89"),
])
def test_decimate(flags: str, cap: int, kept: str) -> None:
    got = decimate(_points(flags), cap)
    assert "".join(p["id"].split("-")[0] for p in got) == kept
    assert len(got) <= cap
