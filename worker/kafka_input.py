"""The frames topic as the worker reads it: one consumer, and a way past records it cannot parse.

kafka-python parses records inside `poll()`. Header names that are not UTF-8 are read thanks to
worker/kafka_compat.py (and refused by the contract); a record it still cannot parse (a batch
whose checksum fails, a broken record structure) makes `poll()` raise, and a second `poll()` over
the same data can spin forever inside the client. So when `poll()` raises a parse error,
`KafkaPythonInput`:
1. finds the partition and offset it failed on: the consumer's position of each assigned
   partition is where reading stopped; a short-lived probe consumer reads one record there, and
   the partition whose probe fails too is the culprit;
2. recovers what it can: a second probe with checksums off returns the record when only its
   checksum failed (key, value and headers as stored); a record whose headers cannot be parsed
   at all comes back empty, with the client's error as the reason;
3. seeks the main consumer one past that offset, so the record is stepped over, never retried
   in place, and hands it back as an `Unreadable` for the dead-letter topic. Its offset is
   committed only after the dead letter is confirmed, like any rejected frame.
Kafka's exceptions are translated here (InputUnavailable / InputRefused / InputBroken) and nowhere
else; worker/kafka_input_rdkafka.py is the same interface (worker/frames_input.py) on librdkafka.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import structlog
from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition
from kafka.coordinator.assignors.cooperative_sticky import CooperativeStickyAssignor
from kafka.errors import (
    CorruptRecordError,
    GroupAuthorizationFailedError,
    KafkaError,
    TopicAuthorizationFailedError,
)
from kafka.structs import OffsetAndMetadata

from linewatch.errors import InputBroken, InputRefused, InputUnavailable, ServiceUnavailable
from worker import kafka_compat
from worker.frames_input import TP, Unreadable

log = structlog.get_logger(__name__)

_PROBE_POLL_MS = 300
_PROBE_ROUNDS = 10  # a record that exists arrives within a few fetches
_CLOSE_TIMEOUT_MS = 5000


class _Listener(ConsumerRebalanceListener):
    """Runs on kafka-python's I/O thread: only hands partitions over, never blocks."""

    def __init__(self, on_released: Callable[[list[TP]], None]) -> None:
        self.on_released = on_released

    def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        self.on_released([(tp.topic, tp.partition) for tp in revoked])

    def on_partitions_lost(self, lost: list[TopicPartition]) -> None:
        self.on_released([(tp.topic, tp.partition) for tp in lost])

    def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        log.info("partitions assigned", partitions=[f"{tp.topic}:{tp.partition}" for tp in assigned])


def is_parse_error(exc: BaseException) -> bool:
    """Errors the client raises on a record it cannot parse (as opposed to a broker or network problem)."""
    return isinstance(exc, CorruptRecordError) or (isinstance(exc, Exception) and not isinstance(exc, KafkaError))


class KafkaPythonInput:
    """worker/frames_input.FramesInput on kafka-python. Used from the consumer thread only."""

    def __init__(self, topic: str, client_kwargs: dict[str, Any], consumer_kwargs: dict[str, Any]) -> None:
        self.topic = topic
        self._client_kwargs = client_kwargs
        kafka_compat.install()  # header names that are not UTF-8 must not hide their batch-mates
        self.consumer = KafkaConsumer(
            **client_kwargs,
            **consumer_kwargs,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            partition_assignment_strategy=[CooperativeStickyAssignor],
        )
        self.stepped_over = 0
        self._last_read: dict[TopicPartition, float] = {}
        self._strict_probe: KafkaConsumer | None = None

    def subscribe(self, on_released: Callable[[list[TP]], None]) -> None:
        """Join the group for the frames topic; ServiceUnavailable when the topic does not exist.

        Subscribe first, then wait for the topic's metadata, then let the first poll join: an
        assignor that joins without the partitions assigns nothing (and the group may not
        rebalance again until another member comes), and metadata that arrives before the
        subscription leaves the coordinator's snapshot empty, which forces a second join right
        after the first one (kafka-python 3 can hang in that second join).
        """
        self.consumer.subscribe([self.topic], listener=_Listener(on_released))
        try:
            known = self.consumer.partitions_for_topic(self.topic)
        except KafkaError as exc:
            raise ServiceUnavailable(f"cannot read metadata of {self.topic}: {exc}") from exc
        if not known:
            self.consumer.unsubscribe()
            raise ServiceUnavailable(
                f"topic {self.topic} does not exist; create it (LW_CREATE_TOPICS=N or linewatch-producer --create-topics)"
            )

    # -- reading ----------------------------------------------------------------------------------
    def poll(self, timeout_ms: int, max_records: int) -> tuple[list[Any], list[Unreadable]]:
        """Records in partition order, plus the records stepped over because they cannot be parsed."""
        try:
            polled = self.consumer.poll(timeout_ms=timeout_ms, max_records=max_records)
        except (TopicAuthorizationFailedError, GroupAuthorizationFailedError) as exc:
            raise InputRefused(f"kafka refused reading {self.topic}: {type(exc).__name__}: {exc}") from exc
        except Exception as exc:  # noqa: BLE001 - the client raises arbitrary types on unparseable data
            if not is_parse_error(exc):
                raise InputUnavailable(f"{type(exc).__name__}: {exc}") from exc
            return [], self._step_over(exc)
        now = time.monotonic()
        for tp in polled:
            self._last_read[tp] = now
        return [record for records in polled.values() for record in records], []

    def _step_over(self, error: BaseException) -> list[Unreadable]:
        """Find the records the client fails on, step the consumer past each, and return them.

        Every candidate is probed, not only until the first culprit: a partition left at a record
        the client failed on must be moved on before the next poll, or the client spins on it.
        """
        found = []
        for tp, position in self._candidates():
            bad = self._probe(tp, position)
            if bad is not None:
                self.consumer.seek(tp, position + 1)
                found.append(bad)
                log.error("unparseable record stepped over", source=f"{bad.tp[0]}:{bad.tp[1]}:{bad.offset}", detail=bad.detail)
        if not found:
            raise InputBroken(f"the client failed to parse a record and no partition's next record fails: {error!r}")
        self.stepped_over += len(found)
        return found

    def _candidates(self) -> list[tuple[TopicPartition, int]]:
        """Running partitions with unread records, the ones read most recently first."""
        found = []
        for tp in self.consumer.assignment() - self.consumer.paused():
            position = self.consumer.position(tp)
            end = self.consumer.highwater(tp)
            if position is not None and (end is None or position < end):
                found.append((tp, position))
        return sorted(found, key=lambda c: -self._last_read.get(c[0], 0.0))

    def _probe_consumer(self, check_crcs: bool) -> KafkaConsumer:
        return _side_reader(self._client_kwargs, check_crcs, "linewatch-probe", max_poll_records=1)

    def _read_one(self, tp: TopicPartition, offset: int, check_crcs: bool) -> tuple[Any | None, BaseException | None]:
        """The record at `offset` as a separate consumer reads it, or the parse error it raised.

        The strict probe is kept between calls (a fresh consumer costs a bootstrap), except after
        it failed to parse: the client must never poll the same failing position twice.
        """
        probe = self._strict_probe if check_crcs and self._strict_probe is not None else self._probe_consumer(check_crcs)
        keep = check_crcs
        try:
            probe.assign([tp])
            probe.seek(tp, offset)
            for _ in range(_PROBE_ROUNDS):
                try:
                    got = probe.poll(timeout_ms=_PROBE_POLL_MS, max_records=1)
                except Exception as exc:  # noqa: BLE001 - as in poll(): any parse failure counts
                    keep = False
                    if is_parse_error(exc):
                        return None, exc
                    raise
                for records in got.values():
                    return records[0], None
            return None, None
        finally:
            if keep:
                self._strict_probe = probe
            else:
                probe.close(autocommit=False)
                if probe is self._strict_probe:
                    self._strict_probe = None

    def _probe(self, tp: TopicPartition, offset: int) -> Unreadable | None:
        record, failure = self._read_one(tp, offset, check_crcs=True)
        if failure is None:
            return None
        detail = f"kafka client could not parse the record: {type(failure).__name__}: {str(failure)[:200]}"
        if isinstance(failure, CorruptRecordError):  # only the checksum failed: the bytes may still be read
            recovered, _ = self._read_one(tp, offset, check_crcs=False)
            if recovered is not None and recovered.offset == offset:
                return Unreadable((tp.topic, tp.partition), offset, detail, recovered.key, recovered.value or b"",
                                  list(recovered.headers or []), recovered.timestamp)
        return Unreadable((tp.topic, tp.partition), offset, detail + " (nothing recoverable)")

    # -- flow control and commits -----------------------------------------------------------------
    def assignment(self) -> set[TP]:
        return {(tp.topic, tp.partition) for tp in self.consumer.assignment()}

    def pause_all(self) -> bool:
        """Pause every assigned partition (newly assigned ones too); True if any was running."""
        fresh = self.consumer.assignment() - self.consumer.paused()
        if fresh:
            self.consumer.pause(*fresh)
        return bool(fresh)

    def paused(self) -> set[TP]:
        return {(tp.topic, tp.partition) for tp in self.consumer.paused()}

    def resume_all(self) -> bool:
        paused = self.consumer.paused()
        if paused:
            self.consumer.resume(*paused)
        return bool(paused)

    def commit(self, offsets: dict[TP, int]) -> None:
        self.consumer.commit(self._offsets(offsets))

    def commit_async(self, offsets: dict[TP, int], done: Callable[[BaseException | None], None]) -> None:
        """Start a commit; `done(None | exception)` is called from kafka-python's I/O thread."""

        def answered(_offsets: Any, response: Any) -> None:
            done(response if isinstance(response, BaseException) else None)

        try:
            self.consumer.commit_async(self._offsets(offsets), callback=answered)
        except KafkaError as exc:
            done(exc)

    @staticmethod
    def _offsets(offsets: dict[TP, int]) -> dict[TopicPartition, OffsetAndMetadata]:
        return {TopicPartition(*tp): OffsetAndMetadata(off, "", -1) for tp, off in offsets.items()}

    def poll_paused(self) -> None:
        """Poll with every partition paused: completes a rebalance in progress, takes no record."""
        self.consumer.pause(*self.consumer.assignment())
        try:
            self.consumer.poll(timeout_ms=100)
        except Exception as exc:  # noqa: BLE001 - shutting down: a failed poll only means one retry less
            log.warning("poll during final commit failed", error=f"{type(exc).__name__}: {exc}")

    def lag(self) -> dict[TP, int]:
        out = {}
        for tp in self.consumer.assignment():
            end = self.consumer.highwater(tp)
            if end is None:
                continue
            try:
                position = self.consumer.position(tp, timeout_ms=1000)
            except KafkaError:
                continue
            if position is not None:
                out[(tp.topic, tp.partition)] = max(0, end - position)
        return out

    def close(self) -> None:
        if self._strict_probe is not None:
            self._strict_probe.close(autocommit=False)
        # Leaves the group: its partitions move on at once.
        self.consumer.close(autocommit=False, timeout_ms=_CLOSE_TIMEOUT_MS)


def _side_reader(client_kwargs: dict[str, Any], check_crcs: bool, client_id: str, **extra: Any) -> KafkaConsumer:
    """A consumer outside the group, for reading single records again (probes, re-reads)."""
    return KafkaConsumer(**client_kwargs, group_id=None, enable_auto_commit=False, check_crcs=check_crcs,
                         fetch_max_wait_ms=100, client_id=client_id, **extra)


def read_range(client_kwargs: dict[str, Any], tp: TP, start: int, end: int, check_crcs: bool = True,
               timeout_s: float = 10.0) -> list[Any]:
    """Records `start` <= offset < `end` of one partition as kafka-python reads them (header names
    that are not UTF-8 included, kafka_compat); fewer if they do not arrive within `timeout_s`.
    The librdkafka input uses it to re-read what its client could not hand over."""
    kafka_compat.install()
    reader = _side_reader(client_kwargs, check_crcs, "linewatch-reread")
    try:
        partition = TopicPartition(*tp)
        reader.assign([partition])
        reader.seek(partition, start)
        found: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and (reader.position(partition) or start) < end:
            for records in reader.poll(timeout_ms=_PROBE_POLL_MS, max_records=max(1, end - start)).values():
                found.extend(r for r in records if start <= r.offset < end)
        return found
    finally:
        reader.close(autocommit=False)
