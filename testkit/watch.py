"""Progress of a consumer group while faults happen: stalls per partition outside deliberate
outages, the workers' memory and Redis's memory over time.

A partition stalls when its committed offset does not move for a while although records wait on
it. Two kinds of window change that: an outage (a service stopped on purpose: not counted, plus
grace to catch up) and a burst (a flood of records being worked off: a partition waiting its turn
is not stalled as long as the group's committed offsets move at all; the group standing still
for as long is)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import redis
from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient

from testkit.workers import WorkerPool, read_rss


class ProgressWatch(threading.Thread):
    """Samples the group's committed offsets, the topic's end offsets and the workers' memory each second."""

    def __init__(self, bootstrap: str, group: str, topic: str, pool: WorkerPool, redis_client: redis.Redis | None = None) -> None:
        super().__init__(name="progress-watch", daemon=True)
        self.bootstrap, self.group, self.topic, self.pool = bootstrap, group, topic, pool
        self.redis = redis_client
        self.stop_event = threading.Event()
        self.outages: list[tuple[float, float]] = []  # deliberate outage windows (monotonic), excluded
        self.bursts: list[tuple[float, float]] = []  # a flood being worked off (monotonic)
        self.longest_stall: dict[int, float] = {}
        self.longest_wait_in_burst = 0.0  # a partition's longest wait for its turn while the group moved
        self._last: dict[int, tuple[int, float]] = {}  # partition -> (committed offset, since when)
        self._waiting_since: dict[int, float] = {}  # in a burst: since when a partition waits
        self._group_total = -1
        self.redis_memory: list[tuple[float, int]] = []
        self.rss: list[tuple[float, int]] = []

    def outage(self, start: float, end: float) -> None:
        self.outages.append((start, end))

    def burst(self, start: float, end: float) -> None:
        """Between `start` and `end` a flood is being worked off: a waiting partition counts as
        stalled only for the time in which no partition's committed offset moved."""
        self.bursts.append((start, end))

    @contextlib.contextmanager
    def working_off(self) -> Iterator[None]:
        """A burst window from now until the block ends (the block sends the flood and waits for it)."""
        start = time.monotonic()
        self.bursts.append((start, float("inf")))
        try:
            yield
        finally:
            self.bursts[self.bursts.index((start, float("inf")))] = (start, time.monotonic())

    def _in_outage(self, t0: float, t1: float) -> bool:
        return any(a <= t1 and t0 <= b + 10 for a, b in self.outages)  # 10 s of grace to catch up

    def _in_burst(self, t: float) -> bool:
        return any(a <= t <= b for a, b in self.bursts)

    def run(self) -> None:
        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap)
        consumer = KafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None)
        try:
            while not self.stop_event.wait(1.0):
                now = time.monotonic()
                self.pool.sample_rss()
                rss = sum(read_rss(w.proc.pid)[0] for w in self.pool.workers.values() if w.proc.poll() is None)
                self.rss.append((now, rss))
                if self.redis is not None:
                    try:
                        self.redis_memory.append((now, int(self.redis.info("memory")["used_memory"])))
                    except redis.RedisError:
                        pass
                try:
                    committed = admin.list_group_offsets(self.group).get(self.group, {})
                    parts = [TopicPartition(self.topic, p) for p in consumer.partitions_for_topic(self.topic) or ()]
                    ends = consumer.end_offsets(parts)
                except Exception:  # noqa: BLE001 - the broker may be down on purpose; try again next second
                    continue
                self.observe(now, {tp.partition: committed[tp].offset if tp in committed else 0 for tp in parts},
                             {tp.partition: ends[tp] for tp in parts})
        finally:
            consumer.close()
            admin.close()

    def observe(self, now: float, committed: dict[int, int], ends: dict[int, int]) -> None:
        """One sample of each partition's committed and end offset (monotonic time `now`)."""
        total = sum(committed.values())
        group_moved, self._group_total = total != self._group_total, total
        for partition, done in committed.items():
            prev = self._last.get(partition)
            if prev is None or done != prev[0] or done >= ends[partition]:
                self._last[partition] = (done, now)
                self._waiting_since.pop(partition, None)
                continue
            if self._in_burst(now):
                since = self._waiting_since.setdefault(partition, prev[1])
                self.longest_wait_in_burst = max(self.longest_wait_in_burst, now - since)
                if group_moved:  # waiting its turn while the group works the flood off
                    self._last[partition] = (done, now)
                    continue
            if not self._in_outage(prev[1], now):
                self.longest_stall[partition] = max(self.longest_stall.get(partition, 0.0), now - prev[1])

    def stalled_partitions(self, limit_s: float = 30.0) -> int:
        return sum(1 for s in self.longest_stall.values() if s >= limit_s)

    def stop(self) -> None:
        self.stop_event.set()
        self.join(10)
