"""Per-camera state and metric labels stay bounded whatever camera ids senders invent."""

from __future__ import annotations

import socket
import time
import urllib.request

from linewatch.health import HealthServer
from linewatch.logs import MAX_FIELD_CHARS, bound_fields
from worker.camera_state import CameraTable
from worker.metrics import OTHER_CAMERAS, CameraLabels
from worker.previews import PreviewClock


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_camera_table_keeps_at_most_its_cap_and_forgets_least_recently_used() -> None:
    table = CameraTable[int](max_cameras=100, idle_s=3600)
    for i in range(100_000):
        table.get(f"cam-{i}", lambda: 0)
    assert len(table) == 100 and table.evicted == 99_900
    assert "cam-99999" in table and "cam-0" not in table


def test_camera_table_forgets_idle_cameras() -> None:
    clock = Clock()
    table = CameraTable[list[int]](max_cameras=10, idle_s=60, clock=clock)
    table.get("a", lambda: [1])[0] = 5
    clock.now = 30
    assert table.get("a", lambda: [1]) == [5]  # used within the idle time: kept
    clock.now = 100
    table.get("b", lambda: [2])
    assert "a" not in table  # idle for 70 s > 60 s: gone
    assert table.get("a", lambda: [1]) == [1]  # and starts afresh when it comes back


def test_camera_labels_are_capped() -> None:
    labels = CameraLabels(max_cameras=3)
    assert [labels(f"c{i}") for i in range(5)] == ["c0", "c1", "c2", OTHER_CAMERAS, OTHER_CAMERAS]
    assert labels("c1") == "c1"


def test_preview_clock_spaces_previews_and_stays_bounded() -> None:
    clock = PreviewClock(interval_s=0.25, max_cameras=10)
    assert clock.due("a", now=0.0) and not clock.due("a", now=0.1) and clock.due("a", now=0.3)
    for i in range(1000):
        clock.due(f"x{i}", now=1.0)
    assert len(clock._last) == 10


def test_log_fields_are_cut() -> None:
    event = bound_fields(None, "info", {"event": "x", "header": "h" * 10_000, "raw": b"\xff" * 10_000, "n": 5})
    assert len(event["header"]) < MAX_FIELD_CHARS + 40 and "10000 chars" in event["header"]
    assert len(event["raw"]) < 4 * MAX_FIELD_CHARS + 40 and event["n"] == 5


def test_health_server_answers_while_silent_clients_hold_connections() -> None:
    server = HealthServer("127.0.0.1", 0, lambda: (True, {}), lambda: (False, {"why": "x"}), timeout_s=1.0, workers=2, backlog=2)
    server.start()
    try:
        silent = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(10)]  # connect, say nothing
        time.sleep(1.5)  # longer than the per-connection timeout: their threads are free again
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/healthz", timeout=5) as reply:
            assert reply.status == 200
        for s in silent:
            s.close()
    finally:
        server.stop()


def test_health_server_refuses_connections_beyond_its_bound() -> None:
    server = HealthServer("127.0.0.1", 0, lambda: (True, {}), lambda: (True, {}), timeout_s=5.0, workers=2, backlog=2)
    server.start()
    try:
        silent = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(8)]
        time.sleep(0.5)
        closed = 0
        for s in silent:
            s.settimeout(0.2)
            try:
                closed += s.recv(1) == b""  # the server hung up without an answer
            except (TimeoutError, socket.timeout):
                pass  # still held, waiting for a request
            s.close()
        assert closed == 4  # 2 workers + 2 waiting are held; the rest were refused at once
    finally:
        server.stop()
