"""Topics of a test's or a scenario's own: made, deleted, read back, and the group's progress on them."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient

from linewatch.settings import KafkaSettings
from linewatch.topics import ensure_topics


def new_names() -> tuple[str, str, str]:
    """(topic base, redis prefix, group) of a scenario of its own."""
    tag = uuid.uuid4().hex[:10]
    return f"faults-{tag}", f"faults:{tag}", f"faults-{tag}"


def create_topics(bootstrap: str, base: str, partitions: int) -> None:
    ensure_topics(KafkaSettings(kafka_bootstrap=bootstrap, topic_base=base), partitions)


def delete_topics(bootstrap: str, base: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.delete_topics([f"{base}.frames", f"{base}.alerts", f"{base}.frames.dlq", f"{base}.results"],
                            raise_errors=False)
    finally:
        admin.close()


def wait_committed(bootstrap: str, group: str, topic: str, timeout_s: float) -> bool:
    """Wait until the group committed every partition up to its end offset."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            try:
                parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
                ends = consumer.end_offsets(parts)
                committed = admin.list_group_offsets(group).get(group, {})
                if parts and all((committed[tp].offset if tp in committed else 0) >= ends[tp] for tp in parts):
                    return True
            except Exception:  # noqa: BLE001 - broker restarting: keep waiting
                pass
            time.sleep(0.5)
        return False
    finally:
        consumer.close()
        admin.close()


def read_topic(client: str | Mapping[str, Any], topic: str, expected: int | None = None, timeout_s: float = 300.0,
               idle_s: float = 3.0, **consumer_kwargs: Any) -> list[Any]:
    """The records of `topic` from its beginning, all partitions, without a group: until `expected`
    of them came, or, without `expected`, until none came for `idle_s` (the topic is complete);
    never longer than `timeout_s`. `client`: a bootstrap address or a client's keyword arguments
    (e.g. a settings object's kafka_client_kwargs(), for a secured broker)."""
    kwargs: dict[str, Any] = {"bootstrap_servers": client} if isinstance(client, str) else dict(client)
    # Room for the largest records the harness sends (bombs, mutants with 100 KB keys).
    kwargs |= {"auto_offset_reset": "earliest", "group_id": None, "enable_auto_commit": False,
               "fetch_max_bytes": 64 * 1024 * 1024, "max_partition_fetch_bytes": 32 * 1024 * 1024}
    consumer = KafkaConsumer(topic, **(kwargs | consumer_kwargs))
    records: list[Any] = []
    quiet_since = time.monotonic()
    deadline = quiet_since + timeout_s
    try:
        while time.monotonic() < deadline:
            if expected is not None and len(records) >= expected:
                break
            if expected is None and time.monotonic() - quiet_since >= idle_s:
                break
            got = consumer.poll(timeout_ms=500)
            if got:
                quiet_since = time.monotonic()
                for batch in got.values():
                    records.extend(batch)
    finally:
        consumer.close()
    return records


def committed_total(bootstrap: str, group: str) -> int:
    """Sum of the group's committed offsets over all its partitions (= records done, on topics that
    start at offset 0)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        return sum(meta.offset for meta in admin.list_group_offsets(group).get(group, {}).values())
    finally:
        admin.close()
