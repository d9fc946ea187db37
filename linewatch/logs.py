"""structlog set-up shared by every program: JSON lines by default, one call at start-up.

Log lines are bounded: every string or bytes value is cut to MAX_FIELD_CHARS (sender-controlled
header values, camera ids and exception texts can be arbitrarily long), and `RateLimitedLog`
lets a repeated event through once per interval with a count of what it held back.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import Any, TextIO

import structlog


MAX_FIELD_CHARS = 300
MAX_TRACEBACK_CHARS = 6000  # a traceback is worth more room than a field, but not unlimited room


def bound_fields(_logger: Any, _method: str, event: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: cut every long string or bytes value, saying how long it was."""
    for key, value in event.items():
        limit = MAX_TRACEBACK_CHARS if key == "exception" else MAX_FIELD_CHARS
        if isinstance(value, (bytes, bytearray)):
            value = repr(bytes(value[: limit + 1]))
        if isinstance(value, str) and len(value) > limit:
            event[key] = f"{value[:limit]}...({len(value)} chars)"
        elif value is not event[key]:
            event[key] = value
    return event


def configure_logging(level: str = "info", json: bool = True, stream: TextIO | None = None) -> None:
    """Route structlog and the standard library's logging through one renderer on stderr (or `stream`,
    which replaces whatever handlers the standard library's root logger had)."""
    target = stream or sys.stderr
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    renderer = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, bound_fields, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=target),
        cache_logger_on_first_use=False,
    )
    # kafka-python logs through the standard library; keep its chatter at warning and above.
    logging.basicConfig(level=max(numeric, logging.WARNING), stream=target, format="%(name)s %(levelname)s %(message)s",
                        force=stream is not None)


class RateLimitedLog:
    """Lets an event through at most once per `interval_s` per key, and says how many it held back.

    Callers ask first and build the log line only when allowed, so a flood of drops costs a dict
    lookup each, not a log line (or a registry scan) each.
    """

    def __init__(self, interval_s: float = 5.0) -> None:
        self.interval_s = interval_s
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def allow(self, key: str) -> int | None:
        """None: stay quiet this time; otherwise log now, with this many events suppressed since."""
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.interval_s:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return None
            self._last[key] = now
            return self._suppressed.pop(key, 0)
