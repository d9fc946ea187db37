"""Coalescing: a subscriber holds only the newest state per camera, however many arrive."""

from __future__ import annotations

import json

from view.live import Subscriber, sse


def _state(camera: str, seq: int) -> dict:
    return {"camera": camera, "seq": seq}


def test_newest_state_per_camera_wins() -> None:
    sub = Subscriber()
    for seq in range(100):  # 100 ticks' worth of updates of 16 cameras before the browser takes any
        sub.offer({f"cam-{i}": _state(f"cam-{i}", seq) for i in range(16)}, set(), None)
    message = sub.take(now=5, redis_ok=True)
    assert len(message["cameras"]) == 16
    assert {s["seq"] for s in message["cameras"]} == {99}
    assert not sub.ready.is_set()
    assert sub.take(now=6, redis_ok=True)["cameras"] == []  # nothing pending twice


def test_removal_and_return_within_one_window() -> None:
    sub = Subscriber()
    sub.offer({"a": _state("a", 1), "b": _state("b", 1)}, set(), None)
    sub.offer({}, {"a"}, None)
    message = sub.take(now=1, redis_ok=True)
    assert [s["camera"] for s in message["cameras"]] == ["b"] and message["removed"] == ["a"]
    sub.offer({}, {"b"}, None)
    sub.offer({"b": _state("b", 2)}, set(), None)  # back before the browser looked: an update, no removal
    message = sub.take(now=2, redis_ok=True)
    assert message["removed"] == [] and message["cameras"] == [_state("b", 2)]


def test_alert_summary_only_when_changed() -> None:
    sub = Subscriber()
    sub.offer({}, set(), {"pending": 1, "version": "a"})
    sub.offer({}, set(), {"pending": 2, "version": "b"})
    assert sub.ready.is_set()
    assert sub.take(now=1, redis_ok=False)["alerts"] == {"pending": 2, "version": "b"}
    assert "alerts" not in sub.take(now=2, redis_ok=False)


def test_sse_frames_one_event() -> None:
    text = sse("update", {"camera": "a\nb <x>"})
    event, data, blank, end = text.split("\n")
    assert event == "event: update" and blank == "" and end == ""
    assert json.loads(data.removeprefix("data: ")) == {"camera": "a\nb <x>"}
