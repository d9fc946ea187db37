"""What a program's HTTP endpoint (linewatch/health.py) answers: any path, and /readyz read as JSON."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterable


def http_get(port: int, path: str, timeout_s: float = 5.0) -> tuple[int, bytes]:
    """(status, body) of GET http://127.0.0.1:`port``path`; (0, b"") while nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout_s) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as exc:  # 503 and the like still carry the program's answer
        return exc.code, exc.read()
    except OSError:  # not listening yet, or gone
        return 0, b""


def readiness(port: int, timeout_s: float = 5.0) -> tuple[int, dict]:
    """(status, details) of GET /readyz; (0, {}) while nothing answers or the body is not JSON."""
    status, body = http_get(port, "/readyz", timeout_s)
    try:
        return status, json.loads(body or b"{}")
    except ValueError:
        return status, {}


def wait_ready(ports: Iterable[int], timeout_s: float, interval_s: float = 0.3) -> bool:
    """Whether every port's /readyz said 200 within `timeout_s`."""
    ports = list(ports)
    deadline = time.monotonic() + timeout_s
    while True:
        if all(readiness(p)[0] == 200 for p in ports):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)
