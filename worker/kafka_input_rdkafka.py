"""The frames topic read through librdkafka (confluent-kafka): the same interface as FramesInput.

Optional (`LW_KAFKA_CONSUMER=confluent`, the `rdkafka` extra): librdkafka fetches and parses
records on its own C threads, outside the GIL, where kafka-python does both in Python on the
worker's cores. `bench/bench_pipeline.py --consumers kafka-python,confluent` measures the two side
by side. The promises stay those of FramesInput, kept differently:
- A batch failing its checksum: librdkafka reports it (partition, offset) and fetches it again and
  again. The record the partition waits on is stepped over once kafka-python confirms it fails
  too: dead-lettered with its bytes as read without checksums, the partition sought one past it.
- A header name that is not UTF-8: confluent-kafka's `headers()` fails on it. That one record is
  re-read with kafka-python (worker/kafka_compat.py reads such names), and the contract
  dead-letters it with key, value and headers, as with kafka-python.
- Rebalance callbacks and commit answers run inside `consume()`, on the consumer thread; the
  assignment is kept from the callbacks, so readiness (HTTP thread) never calls into the client.
- Asynchronous commits answer through one `on_commit` callback, matched to the commit by offsets.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, NamedTuple

import structlog
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from linewatch.errors import InputRefused, InputUnavailable, ServiceUnavailable
from linewatch.logs import RateLimitedLog
from worker.frames_input import TP, Unreadable
from worker.kafka_input import is_parse_error, read_range  # kafka-python re-reads what librdkafka cannot hand over

log = structlog.get_logger(__name__)
_client_log = logging.getLogger("rdkafka")  # librdkafka's own log lines

_REFUSED = {KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.GROUP_AUTHORIZATION_FAILED}
_PENDING_COMMITS_KEPT = 8
_SECURITY = {  # kafka-python keyword -> librdkafka property
    "security_protocol": "security.protocol", "sasl_mechanism": "sasl.mechanism",
    "sasl_plain_username": "sasl.username", "sasl_plain_password": "sasl.password",
    "ssl_cafile": "ssl.ca.location", "ssl_certfile": "ssl.certificate.location", "ssl_keyfile": "ssl.key.location",
}
_CONSUMER = {
    "group_id": "group.id", "client_id": "client.id", "session_timeout_ms": "session.timeout.ms",
    "heartbeat_interval_ms": "heartbeat.interval.ms", "max_partition_fetch_bytes": "max.partition.fetch.bytes",
    "fetch_max_bytes": "fetch.max.bytes",
}


class Record(NamedTuple):
    """A record as the worker's intake reads it (the attributes of kafka-python's ConsumerRecord)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    timestamp: int


def rdkafka_config(client_kwargs: dict[str, Any], consumer_kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
    """librdkafka properties for the kafka-python keyword arguments linewatch's settings build."""
    config: dict[str, Any] = {"bootstrap.servers": ",".join(client_kwargs["bootstrap_servers"])}
    for name, value in {**client_kwargs, **(consumer_kwargs or {})}.items():
        prop = _SECURITY.get(name) or _CONSUMER.get(name)
        if prop is not None and value is not None:
            config[prop] = value
    if "fetch.max.bytes" in config:  # librdkafka insists that a response fits its receive buffer
        config["receive.message.max.bytes"] = max(100_000_000, config["fetch.max.bytes"] + 512)
    return config


class RdkafkaFramesInput:
    """worker/frames_input.FramesInput on librdkafka. Used from the consumer thread only."""

    def __init__(self, topic: str, client_kwargs: dict[str, Any], consumer_kwargs: dict[str, Any]) -> None:
        self.topic = topic
        self._client_kwargs = client_kwargs
        self.consumer = Consumer({
            **rdkafka_config(client_kwargs, consumer_kwargs),
            "enable.auto.commit": False, "enable.auto.offset.store": False, "auto.offset.reset": "earliest",
            "partition.assignment.strategy": "cooperative-sticky", "check.crcs": True,  # as kafka-python
            "on_commit": self._committed, "error_cb": self._error, "logger": _client_log,
        })
        self.stepped_over = 0
        self._paused: set[TP] = set()
        # Kept by the rebalance callbacks: readiness asks from the HTTP thread, and librdkafka's
        # assignment() must not be called while the consumer thread is inside consume().
        self._assigned: set[TP] = set()
        self._pending_commits: list[tuple[dict[TP, int], Callable[[BaseException | None], None]]] = []
        self._refused: str | None = None
        self._next: dict[TP, int] = {}  # per partition, the offset after the last record handed over
        self._log = RateLimitedLog(interval_s=10.0)

    # -- callbacks (run inside consume(), on the consumer thread) ---------------------------------
    def _error(self, error: KafkaError) -> None:
        if error.code() in _REFUSED:
            self._refused = f"kafka refused reading {self.topic}: {error.name()}: {error.str()}"
        elif error.fatal():
            self._refused = f"kafka client failed for good: {error.name()}: {error.str()}"
        else:  # transient: librdkafka reconnects and retries by itself
            suppressed = self._log.allow(f"client:{error.code()}")
            if suppressed is not None:
                log.warning("kafka client error", error=f"{error.name()}: {error.str()}", suppressed=suppressed)

    def _committed(self, error: KafkaError | None, partitions: list[TopicPartition]) -> None:
        answered = {(p.topic, p.partition): p.offset for p in partitions}
        for i, (sent, done) in enumerate(self._pending_commits):
            if sent == answered or not answered:
                del self._pending_commits[i]
                failed = next((p.error for p in partitions if p.error is not None), error)
                done(KafkaException(failed) if failed is not None else None)
                return

    def subscribe(self, on_released: Callable[[list[TP]], None]) -> None:
        """Join the group for the frames topic; ServiceUnavailable when the topic does not exist."""
        try:
            metadata = self.consumer.list_topics(self.topic, timeout=10)
        except KafkaException as exc:
            raise ServiceUnavailable(f"cannot read metadata of {self.topic}: {exc}") from exc
        known = metadata.topics.get(self.topic)
        if known is None or known.error is not None or not known.partitions:
            raise ServiceUnavailable(
                f"topic {self.topic} does not exist; create it (LW_CREATE_TOPICS=N or linewatch-producer --create-topics)"
            )

        def released(_consumer: Consumer, partitions: list[TopicPartition]) -> None:
            gone = [(p.topic, p.partition) for p in partitions]
            self._paused.difference_update(gone)  # a partition assigned again starts unpaused
            self._assigned = self._assigned.difference(gone)
            for tp in gone:
                self._next.pop(tp, None)
            on_released(gone)

        def assigned(_consumer: Consumer, partitions: list[TopicPartition]) -> None:
            self._assigned = self._assigned.union((p.topic, p.partition) for p in partitions)
            log.info("partitions assigned", partitions=[f"{p.topic}:{p.partition}" for p in partitions])

        self.consumer.subscribe([self.topic], on_assign=assigned, on_revoke=released, on_lost=released)

    # -- reading ----------------------------------------------------------------------------------
    def poll(self, timeout_ms: int, max_records: int) -> tuple[list[Any], list[Unreadable]]:
        """Records in the order librdkafka delivered them, plus records it reported as unusable."""
        if self._refused is not None:
            refused, self._refused = self._refused, None
            raise InputRefused(refused)
        try:
            messages = self._take(timeout_ms / 1000, max_records)
        except KafkaException as exc:
            raise InputUnavailable(str(exc)) from exc
        records: list[Any] = []
        unreadable = []
        for message in messages:
            error = message.error()
            if error is None:
                try:
                    records.append(_record(message))
                except (SystemError, UnicodeDecodeError) as exc:  # a header name that is not UTF-8
                    got = self._reread(message, exc)
                    (records if not isinstance(got, Unreadable) else unreadable).append(got)
                self._next[(message.topic(), message.partition())] = message.offset() + 1
            elif error.code() in _REFUSED:
                self._refused = f"kafka refused reading {self.topic}: {error.name()}: {error.str()}"
            else:
                try:
                    bad = self._bad_record(message, error)
                except Exception as exc:  # noqa: BLE001 - never lose the records this call already took
                    log.warning("could not step over an unusable record; the next report retries", error=repr(exc))
                else:
                    if bad is not None:
                        unreadable.append(bad)
        self.stepped_over += len(unreadable)
        return records, unreadable

    def _take(self, timeout_s: float, max_records: int) -> list[Message]:
        """What librdkafka holds now, up to `max_records`; if nothing, wait up to `timeout_s` for the
        first record and take what came with it. (`consume()` with a timeout waits for all
        `max_records`: at 900 frames/s that held each frame ~60 ms.)"""
        messages = self.consumer.consume(num_messages=max_records, timeout=0)
        if messages:
            return messages
        first = self.consumer.poll(timeout_s)
        if first is None:
            return []
        return [first, *self.consumer.consume(num_messages=max_records - 1, timeout=0)] if max_records > 1 else [first]

    def _reread(self, message: Message, error: BaseException) -> Any:
        """A record whose header names confluent-kafka cannot decode, as kafka-python reads it (names
        that are not UTF-8 kept as UndecodableName: the contract dead-letters it with everything
        intact); if that fails, an Unreadable with its key and value."""
        tp, offset = (message.topic(), message.partition()), message.offset()
        try:
            got = read_range(self._client_kwargs, tp, offset, offset + 1)
        except Exception as exc:  # noqa: BLE001 - any failure: dead-letter what librdkafka gave
            got, error = [], exc
        if got:
            return got[0]
        return Unreadable(tp, offset, f"header names cannot be decoded and the record could not be re-read: {error!r}"[:300],
                          message.key(), message.value() or b"", [], _timestamp(message))

    def _start_of(self, tp: TP) -> int:
        """Where this member started reading `tp`: the group's committed offset, else the log start."""
        committed = self.consumer.committed([TopicPartition(*tp)], timeout=10)[0].offset
        return committed if committed >= 0 else self.consumer.get_watermark_offsets(TopicPartition(*tp), timeout=10)[0]

    def _bad_record(self, message: Message, error: KafkaError) -> Unreadable | None:
        """librdkafka's report of a batch it cannot use (its checksum fails). It fetches that batch
        again and again, so the record the partition waits on is stepped over here, once kafka-python
        confirms that this record fails too: dead-lettered with its bytes as a reader without
        checksums sees them, and the partition moved one past it (a batch of several records is
        stepped over one record per report). Any other report (a stale retry of a batch already
        passed, an offset read from garbage) is only logged."""
        tp = (message.topic() or self.topic, message.partition())
        detail = f"kafka client could not use the record: {error.name()}: {error.str()[:200]}"
        offset = message.offset()
        expected = self._next.get(tp) if tp in self._assigned else None
        if expected is None and tp in self._assigned:
            expected = self._next[tp] = self._start_of(tp)
        if expected is None or offset is None or offset < 0 or offset > expected:
            if self._log.allow(f"{tp}:{error.code()}") is not None:
                log.warning("kafka consumer error", source=f"{tp[0]}:{tp[1]}:{offset}", detail=detail)
            return None
        try:
            read_range(self._client_kwargs, tp, expected, expected + 1)
        except Exception as exc:  # noqa: BLE001 - kafka-python's parse errors come in many types
            if not is_parse_error(exc):
                raise
        else:  # the record wanted next reads fine: the report is about one already passed
            if self._log.allow(f"{tp}:stale") is not None:
                log.warning("kafka consumer error on a record already passed", source=f"{tp[0]}:{tp[1]}:{offset}",
                            detail=detail)
            return None
        recovered = read_range(self._client_kwargs, tp, expected, expected + 1, check_crcs=False)
        self.consumer.seek(TopicPartition(tp[0], tp[1], expected + 1))
        self._next[tp] = expected + 1
        log.error("unusable record stepped over", source=f"{tp[0]}:{tp[1]}:{expected}", detail=detail)
        if not recovered:
            return Unreadable(tp, expected, detail + " (nothing recoverable)")
        r = recovered[0]
        return Unreadable(tp, expected, detail, r.key, r.value or b"", list(r.headers or []), r.timestamp)

    # -- flow control and commits -----------------------------------------------------------------
    def assignment(self) -> set[TP]:
        return set(self._assigned)

    def pause_all(self) -> bool:
        """Pause every assigned partition (newly assigned ones too); True if any was running."""
        fresh = self.assignment() - self._paused
        if fresh:
            self.consumer.pause([TopicPartition(*tp) for tp in fresh])
            self._paused |= fresh
        return bool(fresh)

    def paused(self) -> set[TP]:
        return self._paused & self._assigned

    def resume_all(self) -> bool:
        paused = self.paused()
        if paused:
            self.consumer.resume([TopicPartition(*tp) for tp in paused])
        self._paused.clear()
        return bool(paused)

    def commit(self, offsets: dict[TP, int]) -> None:
        try:
            answered = self.consumer.commit(offsets=_partitions(offsets), asynchronous=False)
        except KafkaException as exc:
            raise InputUnavailable(f"commit failed: {exc}") from exc
        failed = [p for p in answered or [] if p.error is not None]
        if failed:
            raise InputUnavailable(f"commit failed for {failed[0].topic}:{failed[0].partition}: {failed[0].error}")

    def commit_async(self, offsets: dict[TP, int], done: Callable[[BaseException | None], None]) -> None:
        """Start a commit; `done(None | exception)` is called from a later poll on this thread."""
        self._pending_commits.append((dict(offsets), done))
        del self._pending_commits[:-_PENDING_COMMITS_KEPT]  # answers that never came (Checkpoint gave up on them)
        try:
            self.consumer.commit(offsets=_partitions(offsets), asynchronous=True)
        except KafkaException as exc:
            self._pending_commits.pop()
            done(exc)

    def poll_paused(self) -> None:
        """Poll with every partition paused: serves callbacks and a rebalance in progress, takes no record."""
        self.pause_all()
        try:
            self.consumer.consume(num_messages=1, timeout=0.1)
        except KafkaException as exc:
            log.warning("poll during final commit failed", error=str(exc))

    def lag(self) -> dict[TP, int]:
        out = {}
        assigned = [TopicPartition(*tp) for tp in self._assigned]
        try:
            positions = self.consumer.position(assigned)
        except KafkaException:
            return out
        for p in positions:
            try:
                _low, high = self.consumer.get_watermark_offsets(p, cached=True)
            except KafkaException:
                continue
            if p.offset >= 0 and high >= 0:
                out[(p.topic, p.partition)] = max(0, high - p.offset)
        return out

    def close(self) -> None:
        self.consumer.close()  # leaves the group: its partitions move on at once


def _record(message: Message) -> Record:
    return Record(message.topic(), message.partition(), message.offset(), message.key(), message.value(),
                  message.headers() or [], _timestamp(message))


def _timestamp(message: Message) -> int:
    """The record's timestamp (ms), -1 when the broker gave none (as kafka-python)."""
    ts_type, ts = message.timestamp()
    return ts if ts_type else -1


def _partitions(offsets: dict[TP, int]) -> list[TopicPartition]:
    return [TopicPartition(topic, partition, offset) for (topic, partition), offset in offsets.items()]
