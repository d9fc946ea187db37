"""The commit side of "nothing lost": which offsets are done, when to commit them, and hand-over.

One object (after quix-streams' checkpoint) owns everything about committing:
- the pure rule (worker/offsets.py): per partition, commit up to the first offset taken in but
  not yet acknowledged;
- acknowledgements from the publish thread (thread-safe queue), applied on the consumer thread;
- commit timing: at most every `every_s`, and forced at drain;
- the rebalance hand-over: kafka-python 3 calls rebalance listeners on its I/O thread, where a
  blocking commit fails, so revoked partitions are only queued there and forgotten here on the
  consumer thread; work finished for them afterwards is dropped by the epoch check, and the
  next owner redoes it (idempotent writes make that invisible);
- the final commit at shutdown, retried through a rebalance in progress;
- per-partition progress times, so a partition that stops moving is seen (readiness).
"""

from __future__ import annotations

import queue
import time
from typing import Callable

import structlog

from linewatch.logs import RateLimitedLog
from worker import metrics
from worker.offsets import OffsetBook
from worker.records import Item

log = structlog.get_logger(__name__)

TP = tuple[str, int]
Commit = Callable[[dict[TP, int]], None]  # raises on failure (the adapter translates Kafka's errors)
# Starts a commit and calls back (from another thread) with None or the exception it failed with.
CommitAsync = Callable[[dict[TP, int], Callable[[BaseException | None], None]], None]
_ASYNC_STALE_S = 10.0  # an asynchronous commit not answered by then is given up on (a new one goes out)


class Checkpoint:
    """Offsets between intake and commit. Periodic commits are asynchronous (a blocking commit would
    stall intake for a broker round trip several times a second); the final one is synchronous."""

    def __init__(self, commit: Commit, commit_async: CommitAsync | None = None, every_s: float = 0.25) -> None:
        self._commit = commit
        self._commit_async = commit_async
        self._answers: queue.Queue[tuple[dict[TP, int], float, BaseException | None]] = queue.Queue()
        self._pending_since: float | None = None
        self.every_s = every_s
        self.book = OffsetBook()
        self._acked: queue.Queue[tuple[TP, int, int]] = queue.Queue()
        self._released: queue.Queue[list[TP]] = queue.Queue()
        self._last_commit = 0.0
        self._progress: dict[TP, float] = {}  # last time each partition's commit point moved
        self._log = RateLimitedLog(interval_s=10.0)
        self._failing_since: float | None = None
        self.last_error = ""

    # -- any thread -------------------------------------------------------------------------------
    def ack(self, item: Item) -> None:
        """The item's outputs are acknowledged (publish thread)."""
        self._acked.put((item.tp, item.commit_offset, item.epoch))

    def released(self, partitions: list[TP]) -> None:
        """The group took these partitions away (rebalance listener, I/O thread)."""
        self._released.put(list(partitions))

    # -- consumer thread --------------------------------------------------------------------------
    def take(self, tp: TP, offset: int) -> int:
        """Record an offset taken in; returns the partition's ownership epoch for its item."""
        if not self.book.in_flight_of(tp):
            self._progress[tp] = time.monotonic()
        return self.book.take(tp, offset)

    def apply(self, wait_s: float = 0.0) -> None:
        """Apply queued acknowledgements, releases and commit answers (waits up to `wait_s` for an ack)."""
        self._apply_releases()
        self._apply_answers()
        try:
            first = self._acked.get(timeout=wait_s) if wait_s else self._acked.get_nowait()
        except queue.Empty:
            return
        acks = [first]
        while True:
            try:
                acks.append(self._acked.get_nowait())
            except queue.Empty:
                break
        for tp, offset, epoch in acks:
            self.book.ack(tp, offset, epoch)
        metrics.IN_FLIGHT.set(self.book.in_flight())

    def _apply_releases(self) -> None:
        while True:
            try:
                partitions = self._released.get_nowait()
            except queue.Empty:
                return
            for tp in partitions:
                self.book.forget(tp)
                self._progress.pop(tp, None)
            log.info("partitions released", partitions=sorted(f"{t}:{p}" for t, p in partitions))

    def commit(self, force: bool = False) -> bool:
        """Commit what may be committed (at most every `every_s` unless forced): asynchronously when
        an asynchronous commit is available and not forced, else blocking. True unless it failed."""
        now = time.monotonic()
        if not force and now - self._last_commit < self.every_s:
            return True
        offsets = self.book.committable()
        if not offsets:
            return True
        if not force and self._commit_async is not None:
            if self._pending_since is not None and now - self._pending_since < _ASYNC_STALE_S:
                return True  # one at a time: answers then come back in order
            self._last_commit = self._pending_since = now
            self._commit_async(offsets, lambda error, sent=offsets, at=now: self._answers.put((sent, at, error)))
            return True
        self._last_commit = now
        try:
            self._commit(offsets)
        except Exception as exc:  # noqa: BLE001 - the adapter's errors: a rebalance in progress, broker away
            self._failed(exc, now)
            return False
        self._committed(offsets, now)
        return True

    def _apply_answers(self) -> None:
        while True:
            try:
                offsets, at, error = self._answers.get_nowait()
            except queue.Empty:
                return
            if at == self._pending_since:
                self._pending_since = None
            if error is None:
                self._committed(offsets, time.monotonic())
            else:
                self._failed(error, at)

    def _committed(self, offsets: dict[TP, int], now: float) -> None:
        self._failing_since = None
        self.book.mark_committed(offsets)
        for tp in offsets:
            self._progress[tp] = now

    def _failed(self, exc: BaseException, now: float) -> None:
        self.last_error = f"{type(exc).__name__}: {exc}"
        if self._failing_since is None:
            self._failing_since = now
        suppressed = self._log.allow(type(exc).__name__)
        if suppressed is not None:
            log.warning("commit failed; will retry", error=str(exc), suppressed=suppressed)

    def finish(self, poll_paused: Callable[[], None], attempts: int = 50) -> bool:
        """Final commit at shutdown. A rebalance in progress refuses commits until a poll completes
        it, so poll (partitions paused: nothing new is taken) and try again."""
        for _ in range(attempts):
            self.apply()
            if self.commit(force=True) and not self.book.committable():
                return True
            poll_paused()
        log.warning("final commit incomplete; the next owner redoes those frames", pending=self.book.committable())
        return False

    def in_flight(self) -> int:
        return self.book.in_flight()

    def failing_for(self) -> float:
        """Seconds since commits started failing without a success since (0 when they work)."""
        return 0.0 if self._failing_since is None else time.monotonic() - self._failing_since

    def stalled(self, after_s: float) -> list[TP]:
        """Partitions holding unfinished records whose commit point has not moved for `after_s`."""
        now = time.monotonic()
        return [tp for tp in self.book.owned() if self.book.in_flight_of(tp) and now - self._progress.get(tp, now) > after_s]
