"""Where results go: Redis (latest, history, mask) and Kafka (alerts, dead letters).

Redis and Kafka exceptions are translated to PublishError here and nowhere else. A frame's
Redis writes are one Lua script, so they are atomic and idempotent: the history entry's ID is
the frame's `frame_id`, and a replayed frame (same ID) or a stale one (older ID) changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import redis
from kafka import KafkaProducer
from kafka.errors import KafkaError

from linewatch.contract import FrameMeta, RedisKeys
from linewatch.errors import PublishError
from worker.scoring import Mask

_WRITE_RESULT = """
local fields = {}
for i = 7, #ARGV do fields[#fields + 1] = ARGV[i] end
local added = redis.pcall('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], ARGV[1], unpack(fields))
if type(added) == 'table' and added.err then
  if string.find(added.err, 'equal or smaller', 1, true) then return 0 end
  return redis.error_reply(added.err)
end
redis.call('HSET', KEYS[2], unpack(fields))
redis.call('EXPIRE', KEYS[2], ARGV[3])
if ARGV[5] ~= '' then redis.call('SET', KEYS[3], ARGV[5], 'EX', ARGV[4]) end
local now = redis.call('TIME')
redis.call('ZADD', KEYS[4], now[1] * 1000 + math.floor(now[2] / 1000), ARGV[6])
return 1
"""


@dataclass(slots=True)
class FrameResult:
    """One scored frame, ready to publish."""

    meta: FrameMeta
    score_raw: float
    score: float
    threshold: float
    anomalous: bool
    model_name: str
    model_version: str
    latency_ms: float
    mask: Mask | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def fields(self, keys: RedisKeys, worker_id: str) -> dict[str, str]:
        m = self.meta
        return {
            "camera": m.camera,
            "seq": str(m.seq),
            "frame_id": m.frame_id,
            "capture_ns": str(m.capture_ns),
            "score_raw": f"{self.score_raw:.6g}",
            "score": f"{self.score:.6f}",
            "threshold": f"{self.threshold:.6f}",
            "anomalous": "1" if self.anomalous else "0",
            "model_name": self.model_name,
            "model_version": self.model_version,
            "latency_ms": f"{self.latency_ms:.2f}",
            "mask_key": keys.mask(m.camera, m.frame_id) if self.mask else "",
            "worker": worker_id,
            **self.extra,
        }


class ResultWriter:
    """Writes a batch of results to Redis in one round trip."""

    def __init__(
        self, client: redis.Redis, keys: RedisKeys, worker_id: str, result_ttl_s: int, mask_ttl_s: int, history_maxlen: int
    ) -> None:
        self.client = client
        self.keys = keys
        self.worker_id = worker_id
        self.result_ttl_s = result_ttl_s
        self.mask_ttl_s = mask_ttl_s
        self.history_maxlen = history_maxlen
        self._script = client.register_script(_WRITE_RESULT)

    def write(self, results: list[FrameResult]) -> list[bool]:
        """True for each result written, False for one already there (a replay). PublishError on failure."""
        if not results:
            return []
        pipe = self.client.pipeline(transaction=False)
        for r in results:
            cam, fid = r.meta.camera, r.meta.frame_id
            flat: list[Any] = []
            for k, v in r.fields(self.keys, self.worker_id).items():
                flat += [k, v]
            self._script(
                keys=[self.keys.history(cam), self.keys.latest(cam), self.keys.mask(cam, fid), self.keys.camera_index],
                args=[fid, self.history_maxlen, self.result_ttl_s, self.mask_ttl_s, r.mask.png if r.mask else b"", cam, *flat],
                client=pipe,
            )
        try:
            replies = pipe.execute()
        except redis.RedisError as exc:
            raise PublishError(f"redis: {exc}") from exc
        return [reply == 1 for reply in replies]

    def runtime_thresholds(self) -> dict[str, float]:
        """Per-camera threshold overrides set at runtime (HSET <prefix>:thresholds cam 0.7)."""
        try:
            raw = self.client.hgetall(self.keys.thresholds)
        except redis.RedisError as exc:
            raise PublishError(f"redis: {exc}") from exc
        found: dict[str, float] = {}
        for cam, value in raw.items():
            try:
                found[cam.decode()] = min(max(float(value), 0.0), 1.0)
            except ValueError:
                continue  # a malformed override is ignored, the camera keeps its configured threshold
        return found


@dataclass(slots=True)
class OutRecord:
    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]] = field(default_factory=list)


class KafkaSender:
    """Sends alert and dead-letter records and waits until the broker acknowledged all of them."""

    def __init__(self, producer: KafkaProducer, timeout_s: float = 15.0) -> None:
        self.producer = producer
        self.timeout_s = timeout_s

    def send_all(self, records: list[OutRecord]) -> None:
        if not records:
            return
        try:
            futures = [self.producer.send(r.topic, key=r.key, value=r.value, headers=r.headers) for r in records]
            self.producer.flush(timeout=self.timeout_s)
            for future in futures:
                future.get(timeout=self.timeout_s)
        except KafkaError as exc:
            raise PublishError(f"kafka: {exc}") from exc
