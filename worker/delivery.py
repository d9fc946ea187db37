"""Getting writes acknowledged: retries by error kind, output health, and the dead-letter topic.

`Delivery.deliver` sends a list of things until each is acknowledged or refused for good. Failures
have a kind (linewatch/errors.py): OutputUnavailable (transient) and OutputRefused (every record)
are retried with back-off (linewatch/backoff.py) while OutputHealth says so, so intake pauses and
readiness names the cause; the consumer loop ends the process if it lasts too long. A
RecordRefused is that one record's outcome: the caller dead-letters it and the line goes on.

`DeadLetters` sends rejected records to the dead-letter topic, smaller when Kafka finds one too
large, and marks them in the dedupe hash so a replay is not dead-lettered twice.
"""

from __future__ import annotations

import threading
from typing import Callable, TypeVar

import structlog

from linewatch import contract as c
from linewatch.backoff import Backoff
from linewatch.contract import Topics
from linewatch.errors import OutputRefused, OutputUnavailable, PublishError, RecordRefused
from linewatch.logs import RateLimitedLog
from worker import metrics
from worker.records import Item
from worker.sinks import KafkaSender, OutRecord, ResultWriter
from worker.supervision import OutputHealth

log = structlog.get_logger(__name__)
T = TypeVar("T")
Send = Callable[[list[int]], list[T | PublishError]]


class Delivery:
    """Retries until acknowledged; `abort()` gives up (shutdown past its drain deadline)."""

    def __init__(self, health: OutputHealth, retry_max_s: float = 5.0) -> None:
        self.health = health
        self.retry_max_s = retry_max_s
        self._abort = threading.Event()

    def abort(self) -> None:
        self._abort.set()

    @property
    def aborted(self) -> bool:
        return self._abort.is_set()

    def deliver(self, target: str, count: int, send: Send) -> dict[int, T | RecordRefused] | None:
        """Send `count` things until each is done or refused for good; None if aborted first.

        `send(indices)` returns one outcome per index or raises for the whole attempt. Outcomes
        that are OutputUnavailable / OutputRefused are retried after a back-off.
        """
        done: dict[int, T | RecordRefused] = {}
        pending = list(range(count))
        delays = Backoff(0.1, max(0.1, self.retry_max_s), jitter=0.0)
        while pending:
            if self._abort.is_set():
                return None
            failure: PublishError | None = None
            self.health.sending(target)
            try:
                outcomes = send(pending)
            except (OutputUnavailable, OutputRefused) as exc:
                failure, outcomes = exc, [exc] * len(pending)
            finally:
                self.health.answered(target)
            retry = []
            for i, outcome in zip(pending, outcomes):
                if isinstance(outcome, (OutputUnavailable, OutputRefused)):
                    retry.append(i)
                    failure = outcome
                else:
                    done[i] = outcome  # a result, or a RecordRefused the caller dead-letters
            pending = retry
            if failure is not None:
                self._failed(target, failure)
                self._abort.wait(delays.next())
        self.health.up(target)
        return done

    def _failed(self, target: str, error: PublishError) -> None:
        """Count and record a failed attempt; the consumer loop reports it (at once, then once a minute)."""
        kind = "refused" if isinstance(error, OutputRefused) else "unavailable"
        metrics.PUBLISH_FAILURES.labels(target, kind).inc()
        self.health.down(target, error)


Rejection = tuple[Item, str, str]  # the record, reason code, detail


class DeadLetters:
    """Rejected records -> the dead-letter topic; `send` returns those the broker acknowledged."""

    def __init__(self, delivery: Delivery, sender: KafkaSender, writer: ResultWriter, topics: Topics,
                 max_bytes: int = 8 * 1024 * 1024) -> None:
        self.delivery, self.sender, self.writer, self.topics, self.max_bytes = delivery, sender, writer, topics, max_bytes
        self._log = RateLimitedLog(interval_s=10.0)

    def record(self, item: Item, reason: str, detail: str, shrink: int) -> OutRecord:
        """shrink 0: everything; 1: without the value; 2: only our own headers."""
        value = item.value[: self.max_bytes] if shrink == 0 else b""
        original = item.headers if shrink < 2 else []
        if shrink:
            detail = f"{detail} [dead letter shrunk: {'value' if shrink == 1 else 'value and headers'} dropped]"
        return OutRecord(
            topic=self.topics.dead_letter,
            key=(item.key or b"")[:1024] if shrink < 2 else b"",
            value=value,
            headers=c.dead_letter_headers(original, reason, detail, item.source),
        )

    def send(self, rejected: list[Rejection]) -> list[Item]:
        """Dead-letter each record (a replay of one already dead-lettered is not sent again); returns
        the items now done (without the unsent ones when delivery was aborted)."""
        already = self._already_sent([item for item, _, _ in rejected])
        done = [item for (item, _, _), sent in zip(rejected, already) if sent]
        todo = [r for r, sent in zip(rejected, already) if not sent]
        if todo and self.delivery.deliver("dead_letter", len(todo), lambda idx: self._send_shrinking(todo, idx)) is None:
            return done
        self._mark_sent([item for item, _, _ in todo])
        for item, reason, detail in todo:
            metrics.DEAD_LETTERED.labels(reason).inc()
            suppressed = self._log.allow(f"dead_letter:{reason}")
            if suppressed is not None:
                log.warning("frame dead-lettered", reason=reason, detail=detail, source=item.source, suppressed=suppressed)
        return done + [item for item, _, _ in todo]

    def _send_shrinking(self, todo: list[Rejection], indices: list[int]) -> list[PublishError | None]:
        outcome: dict[int, PublishError | None] = {}
        left = list(indices)
        for shrink in (0, 1, 2):  # a record Kafka finds too large is sent again, smaller
            if not left:
                break
            outs = self.sender.send_all([self.record(*todo[i], shrink) for i in left])
            smaller = []
            for i, out in zip(left, outs):
                if isinstance(out, RecordRefused) and shrink < 2:
                    smaller.append(i)
                elif isinstance(out, RecordRefused):  # not even our own headers fit: none ever will
                    outcome[i] = OutputRefused(f"kafka refuses even a minimal dead-letter record: {out}")
                else:
                    outcome[i] = out
            left = smaller
        return [outcome[i] for i in indices]

    # The marks are best effort: Redis being away must not hold dead letters back (the cost is a
    # duplicate dead letter after a replay).
    def _already_sent(self, items: list[Item]) -> list[bool]:
        try:
            return self.writer.dead_lettered([(i.tp, i.commit_offset, i.fingerprint) for i in items])
        except PublishError as exc:
            self._marks_unavailable(exc)
            return [False] * len(items)

    def _mark_sent(self, items: list[Item]) -> None:
        try:
            self.writer.mark_dead_lettered([(i.tp, i.commit_offset, i.fingerprint) for i in items])
        except PublishError as exc:
            self._marks_unavailable(exc)

    def _marks_unavailable(self, exc: PublishError) -> None:
        if self._log.allow("dead_letter_marks") is not None:
            log.warning("dead-letter marks unavailable; a replay may dead-letter a record twice", error=str(exc))
