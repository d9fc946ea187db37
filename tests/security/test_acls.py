"""What each user may do on the secured services: the Kafka ACLs and Redis ACL users of
deploy/local/secure_policy.py, tried for real, allowed and refused alike."""

from __future__ import annotations

import logging

import pytest
import redis
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import GroupAuthorizationFailedError, KafkaError, TopicAuthorizationFailedError

from linewatch.connect import redis_client
from linewatch.settings import RedisSettings

from .conftest import Names, Secured, admin_send, role_settings

pytestmark = pytest.mark.integration


def _topic(names: Names, kind: str) -> str:
    return {"frames": f"{names.base}.frames", "alerts": f"{names.base}.alerts", "dead_letter": f"{names.base}.frames.dlq"}[kind]


def _write(secured: Secured, role: str, names: Names, topic: str) -> None:
    producer = KafkaProducer(**role_settings(secured, role, names).kafka_client_kwargs(), max_block_ms=10_000)
    try:
        producer.send(topic, b"probe").get(timeout=10)
    finally:
        producer.close()


def _read(secured: Secured, role: str, names: Names, topic: str) -> int:
    """Records read from partition 0 of `topic` (no group: the topic's own ACL decides)."""
    consumer = KafkaConsumer(**role_settings(secured, role, names).kafka_client_kwargs(), group_id=None,
                             enable_auto_commit=False)
    try:
        consumer.assign([TopicPartition(topic, 0)])
        consumer.seek_to_beginning()
        got = 0
        for _ in range(20):
            got += sum(len(records) for records in consumer.poll(timeout_ms=250).values())
            if got:
                break
        return got
    finally:
        consumer.close()


WRITES = [
    ("producer", "frames", True), ("producer", "alerts", False), ("producer", "dead_letter", False),
    ("worker", "alerts", True), ("worker", "dead_letter", True), ("worker", "frames", False),
    ("alerts", "alerts", False), ("alerts", "frames", False),
]
READS = [
    ("producer", "frames", False), ("producer", "alerts", False),
    ("worker", "frames", True), ("worker", "alerts", False),
    ("alerts", "alerts", True), ("alerts", "frames", False),
]


@pytest.mark.parametrize(("role", "kind", "allowed"), WRITES, ids=[f"{r}-writes-{k}" for r, k, _ in WRITES])
def test_kafka_write_acls(secured: Secured, names: Names, role: str, kind: str, allowed: bool) -> None:
    if allowed:
        _write(secured, role, names, _topic(names, kind))
    else:
        # A user with no WRITE on any topic is refused sooner: its idempotent producer may not
        # even get a producer id (kafka-python wraps that ClusterAuthorizationFailedError).
        with pytest.raises(KafkaError, match="(Topic|Cluster)AuthorizationFailedError"):
            _write(secured, role, names, _topic(names, kind))


@pytest.mark.parametrize(("role", "kind", "allowed"), READS, ids=[f"{r}-reads-{k}" for r, k, _ in READS])
def test_kafka_read_acls(secured: Secured, names: Names, role: str, kind: str, allowed: bool,
                         caplog: pytest.LogCaptureFixture) -> None:
    topic = _topic(names, kind)
    for n in range(4):  # records in partition 0 whatever the partitioner does
        admin_send(secured, topic, f"record {n}".encode())
    if allowed:
        assert _read(secured, role, names, topic) >= 1
        return
    # A user that may DESCRIBE the topic gets its fetch refused; one that may not is not even told
    # the topic's partitions (kafka-python logs that and reads nothing).
    with caplog.at_level(logging.WARNING, logger="kafka"):
        try:
            got = _read(secured, role, names, topic)
        except TopicAuthorizationFailedError:
            return
    assert got == 0
    assert any(f"Topic {topic} is not authorized" in r.getMessage() for r in caplog.records)


GROUPS = [
    ("worker", "worker_group", True), ("worker", "alerts_group", False),
    ("alerts", "alerts_group", True), ("alerts", "worker_group", False),
    ("producer", "worker_group", False),
]


@pytest.mark.parametrize(("role", "group", "allowed"), GROUPS, ids=[f"{r}-in-{g}" for r, g, _ in GROUPS])
def test_kafka_group_acls(secured: Secured, names: Names, role: str, group: str, allowed: bool) -> None:
    """Offsets of a group: only the worker's and the alert consumer's own."""
    readable = _topic(names, "alerts" if role == "alerts" else "frames")
    consumer = KafkaConsumer(**role_settings(secured, role, names).kafka_client_kwargs(),
                             group_id=getattr(names, group), enable_auto_commit=False)
    try:
        if allowed:
            assert consumer.committed(TopicPartition(readable, 0)) is None  # nothing committed yet
        else:
            with pytest.raises(GroupAuthorizationFailedError):
                consumer.committed(TopicPartition(readable, 0))
    finally:
        consumer.close()


def _redis(secured: Secured, role: str, names: Names) -> redis.Redis:
    return redis_client(role_settings(secured, role, names, cls=RedisSettings), socket_timeout=5)


def test_redis_worker_writes_only_under_its_prefix(secured: Secured, names: Names) -> None:
    worker = _redis(secured, "worker", names)
    p = names.prefix
    worker.hset(f"{p}:latest:cam-1", mapping={"score": "0.1"})
    worker.xadd(f"{p}:history:cam-1", {"score": "0.1"})
    assert worker.eval("return redis.call('SET', KEYS[1], ARGV[1])", 1, f"{p}:scripted", "1") == b"OK"
    for key in (f"{p}x:latest:cam-1", "lw:latest:cam-1", f"other:{p}:latest:cam-1"):
        with pytest.raises(redis.exceptions.NoPermissionError):
            worker.set(key, "1")
        with pytest.raises(redis.exceptions.NoPermissionError):  # nor through a script
            worker.eval("return redis.call('SET', KEYS[1], ARGV[1])", 1, key, "1")
    for command in (("FLUSHALL",), ("CONFIG", "GET", "*"), ("KEYS", "*"), ("ACL", "LIST")):
        with pytest.raises(redis.exceptions.NoPermissionError):
            worker.execute_command(*command)


def test_redis_reader_only_reads(secured: Secured, names: Names) -> None:
    _redis(secured, "worker", names).hset(f"{names.prefix}:latest:cam-1", mapping={"score": "0.1"})
    reader = _redis(secured, "reader", names)
    assert reader.hgetall(f"{names.prefix}:latest:cam-1") == {b"score": b"0.1"}
    for write in (lambda: reader.hset(f"{names.prefix}:latest:cam-1", "score", "0.9"),
                  lambda: reader.xadd(f"{names.prefix}:feedback", {"verdict": "confirmed"}),
                  lambda: reader.delete(f"{names.prefix}:latest:cam-1")):
        with pytest.raises(redis.exceptions.NoPermissionError):
            write()
    with pytest.raises(redis.exceptions.NoPermissionError):
        reader.get("lw:latest:cam-1")  # outside its prefix


def test_redis_view_writes_only_its_feedback_stream(secured: Secured, names: Names) -> None:
    p = names.prefix
    _redis(secured, "worker", names).hset(f"{p}:latest:cam-1", mapping={"score": "0.9"})
    view = _redis(secured, "view", names)
    assert view.hgetall(f"{p}:latest:cam-1") == {b"score": b"0.9"}
    view.xadd(f"{p}:feedback", {"camera": "cam-1", "verdict": "false_alarm"})
    assert [fields[b"verdict"] for _, fields in view.xrange(f"{p}:feedback")] == [b"false_alarm"]
    for write in (lambda: view.xadd(f"{p}:history:cam-1", {"score": "0"}),
                  lambda: view.hset(f"{p}:latest:cam-1", "score", "0"),
                  lambda: view.hset(f"{p}:thresholds", "cam-1", "0.9"),
                  lambda: view.delete(f"{p}:feedback")):
        with pytest.raises(redis.exceptions.NoPermissionError):
            write()


def test_redis_has_no_anonymous_user(secured: Secured, names: Names) -> None:
    settings = role_settings(secured, "reader", names, cls=RedisSettings, redis_username=None, redis_password=None)
    with pytest.raises(redis.AuthenticationError):
        redis_client(settings, socket_timeout=5).ping()
