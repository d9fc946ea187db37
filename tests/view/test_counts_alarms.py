"""Counts, the shift CSV, alarms and acknowledge through the view's HTTP API, on the real Redis with
counts written by the worker's own script (tests/view/shapes_writer.py: counted)."""

from __future__ import annotations

import csv
import io
import time

import httpx
import pytest
import redis

from linewatch.contract import RedisKeys
from linewatch.shifts import ShiftCalendar
from tests.view.shapes_writer import ShapesWriter
from tests.view.test_api import _wait_for
from view.server import ViewServer

pytestmark = pytest.mark.integration


def _state(http: httpx.Client, camera: str) -> dict | None:
    return next((s for s in http.get("/api/cameras").json()["cameras"] if s["camera"] == camera), None)


def test_counts_of_the_shift_and_the_hour_reach_the_camera_state(writer: ShapesWriter, view: ViewServer,
                                                                 http: httpx.Client) -> None:
    writer.counted("cam-1", ok=18, ng=2)
    writer.result("cam-1", 1, 0.2)
    state = _wait_for(lambda: (s := _state(http, "cam-1")) and s.get("counts") and s)
    counts = state["counts"]
    assert counts["shift"]["frames"] == 20 and counts["shift"]["ok"] == 18 and counts["shift"]["ng"] == 2
    assert counts["shift"]["reject_rate"] == pytest.approx(0.1)
    assert counts["hour"] == {"frames": 20, "ok": 18, "ng": 2, "reject_rate": 0.1}
    assert counts["fps"] > 0
    snapshot = http.get("/api/cameras").json()
    now = time.time_ns() // 1_000_000
    assert snapshot["shift"]["id"] == ShiftCalendar.of("06:00,14:00,22:00", "UTC").at(now).id


def test_shift_csv_lists_every_counted_camera(writer: ShapesWriter, view: ViewServer, http: httpx.Client) -> None:
    writer.counted("cam-2", ok=3, ng=1)
    writer.counted("=cmd", ok=3, ng=0)  # a sender-chosen id must not turn into a spreadsheet formula
    shift = http.get("/api/cameras").json()["shift"]["id"]
    reply = http.get("/api/shift.csv", params={"shift": shift})
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/csv")
    assert "attachment" in reply.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(reply.text)))
    assert [(r["camera"], r["frames"], r["ok"], r["ng"], r["reject_rate_pct"]) for r in rows] == [
        ("'=cmd", "3", "3", "0", "0.00"), ("cam-2", "4", "3", "1", "25.00")]
    assert all(r["shift"] == shift for r in rows)
    assert http.get("/api/shift.csv").text == reply.text  # no shift: the current one
    assert http.get("/api/shift.csv", params={"shift": "2020-01-01T06:00"}).text.count("\n") == 1  # header only
    assert http.get("/api/shift.csv", params={"shift": "x:y"}).status_code == 400


def test_an_alarm_stays_until_acknowledged_and_the_review_still_asks(
    writer: ShapesWriter, view: ViewServer, http: httpx.Client, redis_client: redis.Redis, redis_prefix: str
) -> None:
    first = writer.result("cam-1", 25, 0.9)
    writer.alert(first)
    second = writer.result("cam-1", 26, 0.95)
    writer.alert(second)
    writer.alert(writer.result("cam-2", 25, 0.9))
    writer.result("cam-1", 27, 0.1)  # the defect cleared: the alarm must not

    alarms = _wait_for(lambda: len(a := http.get("/api/cameras").json()["alerts"]["alarms"]) == 2 and a)
    cam1 = next(a for a in alarms if a["camera"] == "cam-1")
    assert cam1["frame_id"] == second.frame_id and cam1["count"] == 2
    reply = http.post("/api/acknowledge", json={"camera": "cam-1", "user": "ana"})
    assert reply.status_code == 201 and reply.json()["acknowledged"] == 2
    assert [a["camera"] for a in reply.json()["alarms"]] == ["cam-2"]
    entries = [{k.decode(): v.decode() for k, v in f.items()}
               for _, f in redis_client.xrange(RedisKeys(redis_prefix).feedback)]
    assert sorted((e["frame_id"], e["verdict"], e["user"]) for e in entries) == sorted(
        [(first.frame_id, "acknowledged", "ana"), (second.frame_id, "acknowledged", "ana")])
    # Acknowledged is no judgement: both alerts still wait in the review queue.
    assert http.get("/api/alerts").json()["pending"] == 3
    again = http.post("/api/acknowledge", json={"camera": "cam-1"})
    assert again.status_code == 200 and again.json()["acknowledged"] == 0  # nothing new to acknowledge
    # A judgement clears the alarm as well.
    http.post("/api/feedback", json={"camera": "cam-2", "frame_id": "0-0", "verdict": "confirmed"})
    assert _wait_for(lambda: http.get("/api/cameras").json()["alerts"]["alarms"] == [])


def test_model_tools_read_judgements_only(redis_client: redis.Redis, redis_prefix: str) -> None:
    """calibrate --from-stream and commissioning take confirmed / false_alarm; an acknowledgement after a
    judgement neither replaces it nor counts as one."""
    from model_store.commissioning import read_verdicts

    keys = RedisKeys(redis_prefix)
    for frame_id, verdict in [("0-1", "false_alarm"), ("0-1", "acknowledged"), ("0-2", "acknowledged")]:
        redis_client.xadd(keys.feedback, {"camera": "cam-1", "frame_id": frame_id, "verdict": verdict,
                                          "note": "", "time_ns": "1", "user": ""})
    assert read_verdicts(redis_client, keys, "cam-1") == {"0-1": "false_alarm"}
