"""The view's HTTP API on the real Redis, with data written in the workers' shapes."""

from __future__ import annotations

import json
import time

import cv2
import httpx
import numpy as np
import pytest
import redis

from linewatch.contract import FEEDBACK_FIELDS, RedisKeys
from tests.view.shapes_writer import ShapesWriter
from view.server import ViewServer

pytestmark = pytest.mark.integration

HOSTILE = "<img src=x onerror=alert(1)>"


def _wait_for(check, timeout_s: float = 10):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.05)
    return check()


def _keys(client: redis.Redis, prefix: str) -> dict[bytes, bytes]:
    """Every key under the prefix with a digest of its value (what the view must leave untouched)."""
    return {k: client.dump(k) for k in client.scan_iter(f"{prefix}:*", count=1000)}


def test_cameras_lists_every_camera_with_its_state(writer: ShapesWriter, view: ViewServer, http: httpx.Client) -> None:
    writer.result("cam-1", 1, 0.2)
    writer.result("cam-2", 1, 0.9)
    writer.result(HOSTILE, 1, 0.3)
    data = _wait_for(lambda: (d := http.get("/api/cameras").json()) and len(d["cameras"]) == 3 and d)
    states = {s["camera"]: s for s in data["cameras"]}
    assert set(states) == {"cam-1", "cam-2", HOSTILE}
    assert states["cam-2"]["anomalous"] and not states["cam-1"]["anomalous"]
    assert states["cam-1"]["model"] == "synth@3" and states["cam-1"]["preview"] == "0-0"
    assert abs(states["cam-1"]["published_ms"] - data["now_ms"]) < 60_000
    assert data["redis_ok"] is True


def test_pages_are_static_and_carry_no_redis_data(writer: ShapesWriter, view: ViewServer, http: httpx.Client) -> None:
    writer.result(HOSTILE, 1, 0.3)
    for path in ("/", "/camera?id=%3Cimg%20src%3Dx%3E", "/review"):
        reply = http.get(path)
        assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/html")
        assert "onerror" not in reply.text and "<img" not in reply.text
        csp = reply.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert reply.headers["x-content-type-options"] == "nosniff"


def test_images_preview_frame_and_overlays(writer: ShapesWriter, view: ViewServer, http: httpx.Client) -> None:
    normal = writer.result("cam-1", 1, 0.2)
    bad = writer.result("cam-1", 25, 0.9)
    preview = http.get("/img/preview", params={"camera": "cam-1"})
    assert preview.status_code == 200 and preview.headers["content-type"] == "image/jpeg"
    assert cv2.imdecode(np.frombuffer(preview.content, np.uint8), cv2.IMREAD_COLOR).shape == (192, 192, 3)
    frame = http.get("/img/frame", params={"camera": "cam-1", "frame_id": bad.frame_id})
    assert frame.status_code == 200 and frame.content[:2] == b"\xff\xd8"
    # A normal frame keeps no JPEG (only anomalous frames do): a 404 with the reason.
    missing = http.get("/img/frame", params={"camera": "cam-1", "frame_id": normal.frame_id})
    assert missing.status_code == 404 and "not kept" in missing.json()["error"]
    for mode in ("heat", "mask", "outline"):
        reply = http.get("/img/overlay", params={"camera": "cam-1", "frame_id": bad.frame_id, "mode": mode})
        assert reply.status_code == 200 and reply.headers["content-type"] == "image/png"
        rgba = cv2.imdecode(np.frombuffer(reply.content, np.uint8), cv2.IMREAD_UNCHANGED)
        assert rgba.shape[2] == 4 and rgba[..., 3].any()  # the defect shows
    # A normal frame has a mask but no heatmap: its mask overlay is empty, not an error.
    reply = http.get("/img/overlay", params={"camera": "cam-1", "frame_id": normal.frame_id, "mode": "mask"})
    assert reply.status_code == 200
    assert not cv2.imdecode(np.frombuffer(reply.content, np.uint8), cv2.IMREAD_UNCHANGED)[..., 3].any()
    assert http.get("/img/overlay", params={"camera": "cam-1", "mode": "outline"}).status_code == 200  # preview


@pytest.mark.parametrize("path, params, status", [
    ("/img/preview", {"camera": "a:b"}, 400),
    ("/img/preview", {}, 400),
    ("/img/frame", {"camera": "cam-1", "frame_id": "../../x"}, 400),
    ("/img/frame", {"camera": "cam-1", "frame_id": "0-999"}, 404),
    ("/img/overlay", {"camera": "cam-1", "mode": "sparkles"}, 400),
    ("/img/preview", {"camera": "nobody"}, 404),
    ("/api/history", {"camera": "cam-1", "minutes": "-1"}, 400),
    ("/api/history", {"camera": "cam-1", "minutes": "lots"}, 400),
    ("/api/entry", {"camera": "cam-1", "id": "9-9"}, 404),
    ("/api/entry", {"camera": "cam-1"}, 400),
])
def test_bad_requests_get_a_reason(writer: ShapesWriter, view: ViewServer, http: httpx.Client,
                                   path: str, params: dict, status: int) -> None:
    writer.result("cam-1", 1, 0.2)
    reply = http.get(path, params=params)
    assert reply.status_code == status
    assert reply.json()["error"]


def test_history_is_a_time_range_with_anomalies_marked(writer: ShapesWriter, view: ViewServer, http: httpx.Client,
                                                        redis_client: redis.Redis, redis_prefix: str) -> None:
    # An entry 20 minutes old (explicit stream ID), then fresh ones with Redis-chosen IDs.
    old_ms = time.time_ns() // 1_000_000 - 20 * 60_000
    redis_client.xadd(RedisKeys(redis_prefix).history("cam-1"), {"score": "0.1", "anomalous": "0"}, id=f"{old_ms}-0")
    written = [writer.result("cam-1", seq, 0.9 if seq in (3, 4) else 0.2) for seq in range(8)]
    data = http.get("/api/history", params={"camera": "cam-1", "minutes": 10}).json()
    assert [p["seq"] for p in data["points"]] == list(range(8))  # the old entry is outside the 10 minutes
    assert [p["anomalous"] for p in data["points"]] == [s in (3, 4) for s in range(8)]
    assert [p["frame"] for p in data["points"]] == [s in (3, 4) for s in range(8)]
    assert all(p["threshold"] == 0.5 for p in data["points"])
    assert [p["id"] for p in data["points"]] == [w.entry_id for w in written]
    longer = http.get("/api/history", params={"camera": "cam-1", "minutes": 30}).json()
    assert len(longer["points"]) == 9
    after = http.get("/api/history", params={"camera": "cam-1", "after": written[5].entry_id}).json()
    assert [p["seq"] for p in after["points"]] == [6, 7]


def test_history_is_capped(writer: ShapesWriter, serve, redis_client: redis.Redis, redis_prefix: str) -> None:
    server = serve(view_timeline_points=100)
    for seq in range(300):
        writer.result("cam-1", seq, 0.9 if seq == 10 else 0.2, images=False, preview=False)
    points = httpx.get(f"{server.url}/api/history", params={"camera": "cam-1"}).json()["points"]
    assert len(points) <= 100
    assert points[-1]["seq"] == 299 and any(p["seq"] == 10 and p["anomalous"] for p in points)


def test_entry_gives_scores_boxes_and_what_is_kept(writer: ShapesWriter, view: ViewServer, http: httpx.Client) -> None:
    bad = writer.result("cam-1", 25, 0.9)
    normal = writer.result("cam-1", 1, 0.2)
    detail = http.get("/api/entry", params={"camera": "cam-1", "id": bad.entry_id}).json()
    assert detail["frame_id"] == bad.frame_id and detail["anomalous"] and detail["score"] == 0.9
    assert detail["boxes"] == json.loads(bad.fields["boxes"]) and detail["boxes"]
    assert detail["frame_kept"] and detail["heat_kept"] and detail["mask_kept"]
    assert detail["map_size"] == [64, 64] and detail["model"] == "synth@3"
    plain = http.get("/api/entry", params={"camera": "cam-1", "id": normal.entry_id}).json()
    assert not plain["frame_kept"] and not plain["heat_kept"] and plain["mask_kept"]


def test_feedback_acknowledges_an_alert_and_is_the_only_write(
    writer: ShapesWriter, view: ViewServer, http: httpx.Client, redis_client: redis.Redis, redis_prefix: str
) -> None:
    first = writer.result("cam-1", 25, 0.9)
    second = writer.result(HOSTILE, 26, 0.95)
    writer.alert(first)
    writer.alert(second)
    queue = _wait_for(lambda: len(q := http.get("/api/alerts").json()["alerts"]) == 2 and q)
    assert [a["camera"] for a in queue] == [HOSTILE, "cam-1"]  # newest first
    before = _keys(redis_client, redis_prefix)
    reply = http.post("/api/feedback", json={"camera": HOSTILE, "frame_id": second.frame_id,
                                              "verdict": "false_alarm", "note": "glare", "user": "ana"})
    assert reply.status_code == 201, reply.text
    after = _keys(redis_client, redis_prefix)
    feedback_key = RedisKeys(redis_prefix).feedback.encode()
    assert set(after) - set(before) == {feedback_key}
    assert {k: v for k, v in after.items() if k != feedback_key} == before  # nothing else touched
    [(_, entry)] = redis_client.xrange(feedback_key)
    entry = {k.decode(): v.decode() for k, v in entry.items()}
    assert tuple(entry) == FEEDBACK_FIELDS
    assert entry["camera"] == HOSTILE and entry["frame_id"] == second.frame_id and entry["verdict"] == "false_alarm"
    assert entry["note"] == "glare" and entry["user"] == "ana" and abs(int(entry["time_ns"]) - time.time_ns()) < 60e9
    pending = http.get("/api/alerts").json()
    assert [a["camera"] for a in pending["alerts"]] == ["cam-1"] and pending["pending"] == 1
    mine = http.get("/api/alerts", params={"camera": HOSTILE}).json()["alerts"]
    assert [a["verdict"] for a in mine] == ["false_alarm"]


def test_feedback_written_elsewhere_also_acknowledges(writer: ShapesWriter, view: ViewServer, http: httpx.Client,
                                                      redis_client: redis.Redis, redis_prefix: str) -> None:
    """Another view process (or a tool) wrote the verdict: the queue follows the stream, not its own posts."""
    written = writer.result("cam-1", 25, 0.9)
    writer.alert(written)
    _wait_for(lambda: http.get("/api/alerts").json()["alerts"])
    redis_client.xadd(RedisKeys(redis_prefix).feedback, {"camera": "cam-1", "frame_id": written.frame_id,
                                                          "verdict": "confirmed", "note": "", "time_ns": "1", "user": ""})
    assert _wait_for(lambda: http.get("/api/alerts").json()["pending"] == 0)


@pytest.mark.parametrize("body, status, reason", [
    ({"camera": "cam-1", "frame_id": "0-0", "verdict": "maybe"}, 422, "verdict"),
    ({"camera": "cam-1", "frame_id": "0-0", "verdict": "confirmed", "note": "x" * 501}, 422, "note"),
    ({"camera": "cam-1", "frame_id": "0-0", "verdict": "confirmed", "note": 5}, 422, "note"),
    ({"camera": "a:b", "frame_id": "0-0", "verdict": "confirmed"}, 422, "camera"),
    ({"camera": "cam-1", "frame_id": "x", "verdict": "confirmed"}, 422, "frame_id"),
    ({"camera": "cam-1", "frame_id": "0-0", "verdict": "confirmed", "user": "u" * 65}, 422, "user"),
    (["not", "an", "object"], 400, "object"),
])
def test_feedback_is_validated(view: ViewServer, http: httpx.Client, redis_client: redis.Redis, redis_prefix: str,
                               body, status: int, reason: str) -> None:
    reply = http.post("/api/feedback", json=body)
    assert reply.status_code == status and reason in reply.json()["error"]
    assert not redis_client.exists(RedisKeys(redis_prefix).feedback)


def test_feedback_refuses_forms_and_other_sites(view: ViewServer, http: httpx.Client, redis_client: redis.Redis,
                                                redis_prefix: str) -> None:
    good = {"camera": "cam-1", "frame_id": "0-0", "verdict": "confirmed"}
    form = http.post("/api/feedback", data=good)  # what a cross-site <form> could send
    assert form.status_code == 415
    cross = http.post("/api/feedback", json=good, headers={"origin": "https://evil.example"})
    assert cross.status_code == 403
    huge = http.post("/api/feedback", content=b"{" + b" " * 20_000 + b"}", headers={"content-type": "application/json"})
    assert huge.status_code == 413
    assert not redis_client.exists(RedisKeys(redis_prefix).feedback)
    same = http.post("/api/feedback", json=good, headers={"origin": view.url})
    assert same.status_code == 201


def test_note_cap_follows_the_setting(serve, redis_client: redis.Redis, redis_prefix: str) -> None:
    server = serve(view_note_max=5)
    body = {"camera": "cam-1", "frame_id": "0-0", "verdict": "confirmed"}
    assert httpx.post(f"{server.url}/api/feedback", json={**body, "note": "abcdef"}).status_code == 422
    assert httpx.post(f"{server.url}/api/feedback", json={**body, "note": "abcde"}).status_code == 201


def _events(url: str, until, timeout_s: float = 15) -> list[tuple[str, dict]]:
    """Read server-sent events until `until(events)` holds (or the timeout)."""
    events: list[tuple[str, dict]] = []
    deadline = time.monotonic() + timeout_s
    with httpx.stream("GET", f"{url}/api/events", timeout=timeout_s) as stream:
        name = ""
        for line in stream.iter_lines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                events.append((name, json.loads(line.removeprefix("data: "))))
                if until(events) or time.monotonic() > deadline:
                    break
    return events


def test_events_stream_a_snapshot_then_changes(writer: ShapesWriter, view: ViewServer) -> None:
    writer.result("cam-1", 1, 0.2)
    _wait_for(lambda: httpx.get(f"{view.url}/api/cameras").json()["cameras"])
    import threading

    snapshot_read = threading.Event()

    def feed() -> None:
        snapshot_read.wait(30)  # a fixed head start lost the race on a loaded machine
        for seq in range(2, 40):
            writer.result("cam-2", seq, 0.2, images=False, preview=False)
        writer.alert(writer.result("cam-2", 40, 0.9, images=False, preview=False))

    feeder = threading.Thread(target=feed)
    feeder.start()
    def done(ev: list) -> bool:
        snapshot_read.set()
        return any(any(s["seq"] == 40 for s in data["cameras"]) for _, data in ev[1:]) and any(
            "alerts" in d for _, d in ev[1:])

    events = _events(view.url, done, timeout_s=40)
    feeder.join()
    name, snapshot = events[0]
    assert name == "snapshot" and [s["camera"] for s in snapshot["cameras"]] == ["cam-1"]
    updates = [data for name, data in events[1:] if name == "update"]
    cam2 = [s["seq"] for data in updates for s in data["cameras"] if s["camera"] == "cam-2"]
    assert cam2 and cam2[-1] == 40
    assert len(cam2) < 39  # coalesced: far fewer messages than the 39 results written
    assert any(d.get("alerts", {}).get("pending") == 1 for d in updates)
    assert all(len({s["camera"] for s in d["cameras"]}) == len(d["cameras"]) for d in updates)  # one state per camera


def test_redis_down_gives_503_and_the_feed_says_so(view_settings) -> None:
    server = ViewServer(view_settings(redis_url="redis://127.0.0.1:1/0")).start()
    try:
        assert httpx.get(f"{server.url}/healthz").status_code == 503
        assert httpx.get(f"{server.url}/img/preview", params={"camera": "cam-1"}).status_code == 503
        assert httpx.get(f"{server.url}/api/cameras").json()["redis_ok"] is False
        events = _events(server.url, lambda ev: len(ev) >= 2, timeout_s=10)
        assert events[0][1]["redis_ok"] is False and events[1][0] == "update"  # heartbeats go on
    finally:
        server.stop()
