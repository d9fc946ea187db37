"""Triggers: one frame per part, its id carried as lw-part.

A line's PLC (or its gateway) says "part X is in front of camera C now" with

    POST /trigger?camera=C&part=X      -> 202 {"camera": C, "part": X, "pending": n}

on LW_TRIGGER_PORT. Cameras with ``"trigger": "http"`` wait for such a trigger, read one frame
(a GenICam camera fires its software trigger at that moment, producer/genicam.py) and send it with
lw-part = X. Without `part` the trigger gets "<camera>-<n>" (n counts that camera's triggers).

Refusals say why: 404 a camera that is not triggered, 400 a part id the contract refuses, 429 a
camera whose pending triggers are full (counted in linewatch_producer_triggers_refused_total;
the PLC should slow down or the camera cannot keep up).
"""

from __future__ import annotations

import collections
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import structlog
from prometheus_client import CollectorRegistry, Counter

from linewatch.contract import MAX_PART_ID, valid_part

log = structlog.get_logger("producer.trigger")

MAX_PENDING = 64  # triggers a camera may owe; past that the PLC is told 429


class TriggerBoard:
    """Pending triggers per camera (FIFO), filled by the HTTP endpoint, taken by capture threads."""

    def __init__(self, cameras: list[str], registry: CollectorRegistry | None = None) -> None:
        self._pending = {camera: collections.deque[str]() for camera in cameras}
        self._counts = dict.fromkeys(cameras, 0)
        self._cond = threading.Condition()
        self.accepted = Counter(
            "linewatch_producer_triggers_total", "Triggers accepted (each becomes one frame).", ["camera"], registry=registry
        )
        self.refused = Counter(
            "linewatch_producer_triggers_refused_total",
            "Triggers refused because the camera already owed MAX_PENDING frames.",
            ["camera"],
            registry=registry,
        )
        for camera in cameras:
            self.accepted.labels(camera)
            self.refused.labels(camera)

    def knows(self, camera: str) -> bool:
        return camera in self._pending

    def fire(self, camera: str, part: str = "") -> tuple[str, int] | None:
        """Queue a trigger; (part id, pending) or None when the camera's pending triggers are full."""
        with self._cond:
            queue = self._pending[camera]
            if len(queue) >= MAX_PENDING:
                self.refused.labels(camera).inc()
                return None
            self._counts[camera] += 1
            part = part or f"{camera}-{self._counts[camera]}"
            queue.append(part)
            self._cond.notify_all()
            pending = len(queue)
        self.accepted.labels(camera).inc()
        return part, pending

    def wait(self, camera: str, stop: threading.Event, poll_s: float = 0.1) -> str | None:
        """The next trigger's part id; None once `stop` is set."""
        queue = self._pending[camera]
        with self._cond:
            while not queue:
                if stop.is_set():
                    return None
                self._cond.wait(poll_s)
            return queue.popleft()


def _handler(board: TriggerBoard) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _reply(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
            url = urlsplit(self.path)
            if url.path != "/trigger":
                self._reply(404, {"error": "POST /trigger?camera=..&part=.."})
                return
            query = parse_qs(url.query)
            camera, part = query.get("camera", [""])[0], query.get("part", [""])[0]
            if not board.knows(camera):
                self._reply(404, {"error": f"camera {camera[:64]!r} is not a triggered camera of this producer"})
                return
            if part and not valid_part(part):
                self._reply(400, {"error": f"part: printable ASCII, 1..{MAX_PART_ID} characters"})
                return
            fired = board.fire(camera, part)
            if fired is None:
                self._reply(429, {"error": f"camera {camera!r} already owes its maximum of pending frames"})
                return
            self._reply(202, {"camera": camera, "part": fired[0], "pending": fired[1]})

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the stdlib's signature
            pass  # one line per trigger would flood the log; the counters say how many came

    return Handler


class TriggerServer:
    """The HTTP endpoint in a daemon thread."""

    def __init__(self, host: str, port: int, board: TriggerBoard) -> None:
        self._server = ThreadingHTTPServer((host, port), _handler(board))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="trigger-http", daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def start(self) -> None:
        self._thread.start()
        log.info("trigger_endpoint", port=self.port)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
