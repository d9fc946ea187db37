"""What keeps the worker honest about its own state: dead parts and failing outputs.

Supervisor        a thread that dies (batch, publish, model watcher, HTTP) reports here; the
                  consumer loop sees it, stops intake and the process exits non-zero, so a
                  supervisor (systemd, Kubernetes) restarts it and Kafka moves its partitions.
                  A process that keeps its partitions while a part of it is dead would look
                  healthy and score nothing.
SupervisedThread  a daemon thread whose death is reported, never silent.
OutputHealth      what the publish thread last saw of each output (Redis, alerts, dead letters):
                  up, unavailable (transient) or refused (permanent for every record), and since
                  when. The consumer loop pauses on it, readiness reports it, and the worker
                  exits after `fatal_after_s` of refusal (or `outage_exit_after_s` of outage).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import structlog

from linewatch.errors import OutputRefused, PublishError

log = structlog.get_logger(__name__)

EXIT_OUTPUTS = 3  # outputs refused or down for longer than allowed
EXIT_DEAD_PART = 4  # a thread of the worker died, or the input could not be read


class Supervisor:
    """Collects the first fatal failure of any part of the worker."""

    def __init__(self) -> None:
        self.failed = threading.Event()
        self.cause: str | None = None
        self.exit_code = 0
        self._lock = threading.Lock()

    def fail(self, part: str, cause: str, exit_code: int = EXIT_DEAD_PART) -> None:
        with self._lock:
            if self.cause is not None:
                return
            self.cause = f"{part}: {cause}"
            self.exit_code = exit_code
        log.error("worker part failed; stopping intake and exiting", part=part, cause=cause, exit_code=exit_code)
        self.failed.set()


class SupervisedThread(threading.Thread):
    """A daemon thread running `loop()`; any exception escaping it is reported to the supervisor."""

    def __init__(self, name: str, supervisor: Supervisor) -> None:
        super().__init__(name=name, daemon=True)
        self.supervisor = supervisor

    def loop(self) -> None:
        raise NotImplementedError

    def run(self) -> None:
        try:
            self.loop()
        except BaseException as exc:  # noqa: BLE001 - the thread boundary: nothing may die silently
            log.exception("thread died", thread=self.name)
            self.supervisor.fail(self.name, f"{type(exc).__name__}: {exc}")


@dataclass(frozen=True, slots=True)
class OutputState:
    target: str  # redis | alerts | dead_letter
    refused: bool  # permanent for every record (else transient)
    cause: str
    since: float  # time.monotonic() of the first failure in this run of failures


class OutputHealth:
    """Thread-safe record of failing outputs; empty when every output works.

    It also knows which output a write is waiting on and since when (`sending`): a send that has
    not been answered for seconds is reported (`waiting`) before its client gives up, so readiness
    turns false at once instead of after the client's own timeout."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failing: dict[str, OutputState] = {}
        self._sending: dict[str, float] = {}

    def sending(self, target: str) -> None:
        with self._lock:
            self._sending.setdefault(target, time.monotonic())

    def answered(self, target: str) -> None:
        with self._lock:
            self._sending.pop(target, None)

    def waiting(self, after_s: float) -> list[tuple[str, float]]:
        """Outputs whose current write has waited longer than `after_s` for an answer, with the wait."""
        now = time.monotonic()
        with self._lock:
            return [(t, now - since) for t, since in self._sending.items() if now - since > after_s]

    def down(self, target: str, error: PublishError) -> None:
        refused = isinstance(error, OutputRefused)
        with self._lock:
            old = self._failing.get(target)
            since = old.since if old is not None and old.refused == refused else time.monotonic()
            self._failing[target] = OutputState(target, refused, str(error), since)

    def up(self, target: str) -> None:
        with self._lock:
            self._failing.pop(target, None)

    def failing(self) -> list[OutputState]:
        with self._lock:
            return sorted(self._failing.values(), key=lambda s: s.since)

    @property
    def ok(self) -> bool:
        return not self._failing
