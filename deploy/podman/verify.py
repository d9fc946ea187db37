"""What deploy/podman/check.sh asks of a running stack, answered from inside its network.

Runs in the producer image (it has kafka-python, redis and linewatch) on the stack's network:

    verify.py state                  one JSON line: frames per partition, which offsets were scored,
                                     alerts, the worker group's lag and members
    verify.py wait-scored N TIMEOUT  wait until more than N distinct frames are scored; print the
                                     JSON state plus the seconds it took (exit 1 on timeout)
    verify.py wait-drained TIMEOUT   wait until the group has no lag and every frame is scored
    verify.py plaintext-refused      the secured stack: a client without TLS and login gets no
                                     answer from Kafka or Redis (exit 1 when either answers)

A frame is scored when its offset is in the worker's dedupe hashes (RedisKeys.seen), which the
worker writes with the result in one transaction, so "every offset of every partition is there"
means nothing was lost, whatever was killed on the way.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from typing import Any
from urllib.parse import urlsplit

import redis
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from linewatch.contract import RedisKeys
from linewatch.settings import KafkaSettings, RedisSettings

SEEN_BUCKET = 128  # worker/sinks.py: offsets per dedupe hash


def _ends(consumer: KafkaConsumer, topic: str) -> dict[int, int]:
    parts = consumer.partitions_for_topic(topic) or set()
    tps = [TopicPartition(topic, p) for p in sorted(parts)]
    return {tp.partition: off for tp, off in consumer.end_offsets(tps).items()}


def _scored(r: redis.Redis, keys: RedisKeys, topic: str, partition: int, end: int) -> int:
    """How many of offsets 0..end-1 of a partition are scored (its dedupe hashes, bucket by bucket)."""
    count = 0
    for bucket in range(0, (end + SEEN_BUCKET - 1) // SEEN_BUCKET):
        fields = r.hkeys(keys.seen(topic, partition, bucket))
        count += sum(1 for f in fields if int(f) < end)
    return count


def _partitions_of(obj: Any, topic: str) -> list[int]:
    """The partitions of `topic` in a decoded member assignment, whatever its nesting (kafka-python
    returns protocol objects turned into dicts and lists)."""
    if hasattr(obj, "to_dict"):
        obj = obj.to_dict()
    if isinstance(obj, dict):
        if obj.get("topic") == topic and isinstance(obj.get("partitions"), list):
            return sorted(obj["partitions"])
        return sorted(p for v in obj.values() for p in _partitions_of(v, topic))
    if isinstance(obj, (list, tuple)):
        if len(obj) == 2 and obj[0] == topic and isinstance(obj[1], list):
            return sorted(obj[1])
        return sorted(p for v in obj for p in _partitions_of(v, topic))
    return []


def _group(admin: KafkaAdminClient, group: str, topic: str, ends: dict[int, int]) -> dict[str, Any]:
    committed = admin.list_group_offsets(group).get(group, {})
    lag = 0
    for p, end in ends.items():
        meta = committed.get(TopicPartition(topic, p))
        lag += end - (meta.offset if meta is not None and meta.offset >= 0 else 0)
    desc = admin.describe_groups([group]).get(group, {})
    members = [{"client_host": m.get("client_host"), "partitions": _partitions_of(m.get("member_assignment"), topic)}
               for m in desc.get("members", [])]
    return {"lag": lag, "members": members}


def state() -> dict[str, Any]:
    kafka, rs = KafkaSettings(), RedisSettings()
    topics, keys = kafka.topics, rs.keys
    # The programs' own connection settings, so the secured stack (SASL_SSL, TLS Redis) works too.
    r = redis.Redis.from_url(rs.redis_url, **rs.redis_client_kwargs())
    consumer = KafkaConsumer(**kafka.kafka_client_kwargs())
    admin = KafkaAdminClient(**kafka.kafka_client_kwargs())
    try:
        ends = _ends(consumer, topics.frames)
        scored = {p: _scored(r, keys, topics.frames, p, end) for p, end in ends.items()}
        alert_ends = _ends(consumer, topics.alerts)
        group = _group(admin, os.environ.get("LW_GROUP_ID", "linewatch-workers"), topics.frames, ends)
        return {
            "frames": sum(ends.values()),
            "scored": sum(scored.values()),
            "unscored": {p: ends[p] - scored[p] for p in ends if ends[p] != scored[p]},
            "alerts_kafka": sum(alert_ends.values()),
            "alerts_redis": r.xlen(keys.alerts),
            "lag": group["lag"],
            "members": group["members"],
            "cameras": sorted(m.decode() for m in r.zrange(keys.camera_index, 0, -1)),
        }
    finally:
        consumer.close()
        admin.close()
        r.close()


def _try_state() -> dict[str, Any] | None:
    """The state, or None while Kafka or Redis do not answer yet (the stack is still starting)."""
    try:
        return state()
    except (KafkaError, redis.RedisError, OSError) as exc:
        print(f"verify: not yet: {exc}", file=sys.stderr)
        return None


# A Kafka ApiVersions request (v0, correlation id 1, no client id): a plaintext listener answers it.
_API_VERSIONS = bytes.fromhex("0000000a" "00120000" "00000001" "ffff")


def _answer(host: str, port: int, hello: bytes) -> bytes:
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(hello)
        try:
            return sock.recv(64)
        except OSError:  # reset: refused as well
            return b""


def plaintext_refused() -> dict[str, Any]:
    """What Kafka and Redis say to a plaintext client: nothing, or a TLS alert record (0x15)."""
    kafka_host, kafka_port = KafkaSettings().kafka_bootstrap.split(",")[0].rsplit(":", 1)
    url = urlsplit(RedisSettings().redis_url)
    answers = {"kafka": _answer(kafka_host, int(kafka_port), _API_VERSIONS),
               "redis": _answer(url.hostname or "redis", url.port or 6379, b"PING\r\n")}
    refused = all(not got or got[:1] == b"\x15" for got in answers.values())
    return {"refused": refused, **{k: got.hex()[:24] for k, got in answers.items()}}


def main(argv: list[str]) -> int:
    cmd = argv[0] if argv else "state"
    t0 = time.monotonic()
    if cmd == "state":
        print(json.dumps(state()))
        return 0
    if cmd == "plaintext-refused":
        result = plaintext_refused()
        print(json.dumps(result))
        return 0 if result["refused"] else 1
    if cmd == "wait-scored":
        above, timeout = int(argv[1]), float(argv[2])
        while True:
            s = _try_state() or {"scored": -1}
            if s["scored"] > above:
                print(json.dumps({**s, "waited_s": round(time.monotonic() - t0, 1)}))
                return 0
            if time.monotonic() - t0 > timeout:
                print(json.dumps({**s, "timeout": True}))
                return 1
            time.sleep(0.5)
    if cmd == "wait-drained":
        timeout = float(argv[1])
        while True:
            s = _try_state() or {"frames": 0}
            if s["frames"] > 0 and s["lag"] == 0 and not s["unscored"]:
                print(json.dumps({**s, "waited_s": round(time.monotonic() - t0, 1)}))
                return 0
            if time.monotonic() - t0 > timeout:
                print(json.dumps({**s, "timeout": True}))
                return 1
            time.sleep(1)
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
