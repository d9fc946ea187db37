"""One sink's delivery loop: its own consumer group, a bounded window, commit after the sink acknowledged.

    poll <= window records -> read them (unreadable ones: dead-letter topic) -> sink.deliver
    -> retry what failed (back-off; partitions paused, nothing more read) -> commit -> poll again

While the sink is down the window is held and the partitions are paused: the backlog stays in
Kafka, memory holds at most one window, and delivery resumes at the first unacknowledged record.
A crash loses nothing either: uncommitted records are read again (at least once, same
idempotency key). A record the sink refuses `max_attempts` times goes to the dead-letter topic
with the reason, so no record is retried forever.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Protocol

import structlog
from kafka import TopicPartition
from kafka.errors import CommitFailedError, KafkaError

from bridge import metrics
from bridge.dead_letters import DeadLetters
from bridge.records import Envelope, Refused, SinkDown, read_record
from linewatch.errors import FrameRejected, ServiceUnavailable
from linewatch.logs import RateLimitedLog
from linewatch.topics import await_partitions

log = structlog.get_logger(__name__)
Outcome = None | SinkDown | Refused


class Sink(Protocol):
    name: str

    def start(self) -> None: ...

    def deliver(self, batch: list[Envelope]) -> list[Outcome]: ...

    def state(self) -> tuple[bool, str]: ...

    def close(self) -> None: ...


@dataclass
class Delivery:
    """How a runner retries: back-off bounds and the attempt budget of refused records."""

    window: int = 64
    retry_first_s: float = 0.2
    retry_max_s: float = 5.0
    max_attempts: int = 5


class SinkRunner(threading.Thread):
    """Feeds one sink from Kafka; `failure` is set if the thread died (the process must end)."""

    def __init__(self, sink: Sink, consumer_factory: Callable[[str], Any], topics: list[str], results_topic: str,
                 dead_letters: DeadLetters, delivery: Delivery, on_death: Callable[[str, BaseException], None]) -> None:
        super().__init__(name=f"sink-{sink.name}", daemon=True)
        self.sink, self.topics, self.results_topic = sink, topics, results_topic
        self.consumer_factory, self.dead_letters, self.delivery, self.on_death = consumer_factory, dead_letters, delivery, on_death
        self.stopping = threading.Event()
        self.down_reason = ""  # the last delivery failure while it lasts; "" when the sink takes records
        self.ready = threading.Event()  # partitions assigned
        self._log = RateLimitedLog(interval_s=10.0)
        self._consumer: Any = None

    def stop(self) -> None:
        self.stopping.set()

    def state(self) -> tuple[bool, str]:
        up, reason = self.sink.state()
        if not up:
            return False, reason
        if self.down_reason:
            return False, self.down_reason
        return True, ""

    def run(self) -> None:
        try:
            self._consumer = self.consumer_factory(self.sink.name)
            # Every partition, assigned by the bridge itself (offsets still committed in the sink's
            # group): a group subscription left a topic unassigned for minutes when its metadata came
            # late, and one bridge per sink group is the deployment anyway (OPC UA: one server).
            self._consumer.assign(self._partitions())
            self.ready.set()
            while not self.stopping.is_set():
                self._one_window()
        except BaseException as exc:  # noqa: BLE001 - any death of this thread must end the process, named
            self.on_death(self.name, exc)
            raise
        finally:
            if self._consumer is not None:
                self._consumer.close(autocommit=False)

    def _partitions(self, timeout_s: float = 60.0) -> list[TopicPartition]:
        found: list[TopicPartition] = []
        for topic in self.topics:
            parts = await_partitions(self._consumer, topic, self.stopping, timeout_s)
            if not parts:
                raise ServiceUnavailable(f"stopped before topic {topic} was found")
            found += [TopicPartition(topic, p) for p in sorted(parts)]
        return found

    # -- one window -------------------------------------------------------------------------------
    def _one_window(self) -> None:
        polled = self._consumer.poll(timeout_ms=200, max_records=self.delivery.window)
        records = [r for batch in polled.values() for r in batch]
        if not records:
            return
        metrics.INFLIGHT.labels(self.sink.name).set(len(records))
        envelopes: list[Envelope] = []
        for r in records:
            try:
                envelopes.append(read_record(r.topic, r.partition, r.offset, r.value, self.results_topic))
            except FrameRejected as exc:
                if not self._dead_letter(r, exc.reason, exc.detail):
                    return  # stopping: nothing committed, the window is read again next time
        if not self._deliver(envelopes):
            return
        try:
            self._consumer.commit()  # positions = just past everything polled, all of it acknowledged now
            metrics.COMMITTED.labels(self.sink.name).inc()
        except (CommitFailedError, KafkaError) as exc:  # rebalanced meanwhile: the next owner delivers again
            log.warning("commit failed; the window will be delivered again", sink=self.sink.name, error=str(exc))
        metrics.INFLIGHT.labels(self.sink.name).set(0)

    def _deliver(self, envelopes: list[Envelope]) -> bool:
        """Deliver until every record is acknowledged or dead-lettered; False if stopping first."""
        pending = list(range(len(envelopes)))
        attempts = [0] * len(envelopes)
        delay = self.delivery.retry_first_s
        name = self.sink.name
        while pending:
            if self.stopping.is_set():
                return False
            outcomes = self.sink.deliver([envelopes[i] for i in pending])
            retry: list[int] = []
            for i, outcome in zip(pending, outcomes):
                if outcome is None:
                    self._delivered(envelopes[i])
                elif isinstance(outcome, Refused):
                    metrics.FAILURES.labels(name, "refused").inc()
                    attempts[i] += 1
                    if attempts[i] < self.delivery.max_attempts:
                        retry.append(i)
                    elif not self._dead_letter_envelope(envelopes[i], "sink_refused", str(outcome)):
                        return False
                else:
                    metrics.FAILURES.labels(name, "down").inc()
                    self._down(str(outcome))
                    retry.append(i)
            pending = retry
            if pending:
                self._hold(delay)
                delay = min(delay * 2, self.delivery.retry_max_s)
        if self.down_reason:
            log.info("sink is back", sink=name)
        self.down_reason = ""
        metrics.SINK_UP.labels(name).set(1)
        return True

    def _delivered(self, env: Envelope) -> None:
        metrics.DELIVERED.labels(self.sink.name, env.kind).inc()
        if env.capture_ns > 0:
            age = (time.time_ns() - env.capture_ns) / 1e9
            if 0 <= age < 86400:
                metrics.LATENCY.labels(self.sink.name).observe(age)

    def _down(self, reason: str) -> None:
        self.down_reason = reason
        metrics.SINK_UP.labels(self.sink.name).set(0)
        suppressed = self._log.allow("down")
        if suppressed is not None:
            log.warning("sink down; holding its backlog in kafka", sink=self.sink.name, reason=reason, suppressed=suppressed)

    def _hold(self, delay_s: float) -> None:
        """Wait before the next attempt, staying in the group: poll with every partition paused.

        Should this poll return records anyway, their partitions are sought back to where they
        started, never dropped."""
        consumer = self._consumer
        deadline = time.monotonic() + delay_s
        while not self.stopping.is_set():
            consumer.pause(*consumer.assignment())
            got = consumer.poll(timeout_ms=0)
            for tp, recs in got.items():
                consumer.seek(tp, recs[0].offset)
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self.stopping.wait(min(left, 0.5))
        consumer.resume(*consumer.paused())

    # -- dead letters -----------------------------------------------------------------------------
    def _dead_letter(self, record: Any, reason: str, detail: str) -> bool:
        return self._send_dead_letter(record.key, record.value or b"", f"{record.topic}:{record.partition}:{record.offset}", reason, detail)

    def _dead_letter_envelope(self, env: Envelope, reason: str, detail: str) -> bool:
        return self._send_dead_letter(env.camera.encode(), env.body, env.source, reason, detail)

    def _send_dead_letter(self, key: bytes | None, value: bytes, source: str, reason: str, detail: str) -> bool:
        """Send until Kafka confirmed it; False if stopping first."""
        delay = self.delivery.retry_first_s
        while not self.stopping.is_set():
            try:
                self.dead_letters.send(key, value, source, self.sink.name, reason, detail)
            except KafkaError as exc:
                self._down(f"dead-letter topic unavailable: {exc}")
                self.stopping.wait(delay)
                delay = min(delay * 2, self.delivery.retry_max_s)
                continue
            metrics.DEAD_LETTERED.labels(self.sink.name, reason).inc()
            suppressed = self._log.allow(f"dlq:{reason}")
            if suppressed is not None:
                log.warning("record dead-lettered", sink=self.sink.name, reason=reason, detail=detail[:300], source=source, suppressed=suppressed)
            return True
        return False
