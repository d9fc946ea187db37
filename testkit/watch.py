"""Progress of a consumer group while faults happen: stalls per partition outside deliberate
outages, the workers' memory and Redis's memory over time."""

from __future__ import annotations

import threading
import time

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
        self.longest_stall: dict[int, float] = {}
        self.redis_memory: list[tuple[float, int]] = []
        self.rss: list[tuple[float, int]] = []

    def outage(self, start: float, end: float) -> None:
        self.outages.append((start, end))

    def _in_outage(self, t0: float, t1: float) -> bool:
        return any(a <= t1 and t0 <= b + 10 for a, b in self.outages)  # 10 s of grace to catch up

    def run(self) -> None:
        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap)
        consumer = KafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None)
        last: dict[int, tuple[int, float]] = {}
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
                for tp in parts:
                    done = committed[tp].offset if tp in committed else 0
                    prev = last.get(tp.partition)
                    if prev is None or done != prev[0] or done >= ends[tp]:
                        last[tp.partition] = (done, now)
                        continue
                    if not self._in_outage(prev[1], now):
                        self.longest_stall[tp.partition] = max(self.longest_stall.get(tp.partition, 0.0), now - prev[1])
        finally:
            consumer.close()
            admin.close()

    def stalled_partitions(self, limit_s: float = 30.0) -> int:
        return sum(1 for s in self.longest_stall.values() if s >= limit_s)

    def stop(self) -> None:
        self.stop_event.set()
        self.join(10)
