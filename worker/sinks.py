"""Where results go: Redis (results, previews, alert state) and Kafka (alerts, dead letters).

Redis and Kafka exceptions are translated here and nowhere else, into the three kinds of
PublishError (linewatch/errors.py): OutputUnavailable (transient: retry), OutputRefused
(permanent for every record: say so, give up after a while) and RecordRefused (permanent for
this record: dead-letter it).

A batch's Redis writes are one Lua script call (`_WRITE_FRAMES`), atomic, with each frame written
idempotently: the script first looks the record's source offset up in the dedupe hash
(RedisKeys.seen). A replay changes nothing and returns the alert decision made the first time, so
an alert lost to a crash between the Redis write and the Kafka send is sent again (consumers
deduplicate on camera + frame_id). The debounce window and the last alert time of a camera live in
Redis (RedisKeys.alert_state), updated in the same script, so the next owner of a camera's
partition continues them.

Redis memory stays bounded whatever camera ids senders invent (the budget formula is in
docs/reliability.md):
- a new camera id is on probation (RedisKeys.probation, capped at `probation_max`) until it has
  sent `admit_frames` frames; then it is admitted to the camera index (capped at `cameras_max`).
  A flood of one-frame ids only ever evicts other probation ids, never an admitted camera;
- every per-frame key of a camera (masks, pictures of anomalous frames) is listed in its blobs set
  (RedisKeys.blobs), capped at `blobs_max` per camera (oldest deleted first);
- a camera that leaves either tier is forgotten with all its keys, blobs included. The key names
  come from RedisKeys.camera_key_parts: the script never spells a key name itself.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import redis
from redis import exceptions as rx
from kafka import KafkaAdminClient, KafkaProducer
from kafka.errors import KafkaError, KafkaTimeoutError, MessageSizeTooLargeError
from kafka.errors import TopicAuthorizationFailedError, UnknownTopicOrPartitionError

from linewatch import contract as c
from linewatch.contract import RedisKeys
from linewatch.shifts import HOUR_MS, MINUTE_MS, MINUTES_TTL_S, ShiftCalendar
from linewatch.errors import OutputRefused, OutputUnavailable, PublishError, RecordRefused

SEEN_BUCKET = 128  # offsets per dedupe hash: small hashes stay in Redis's compact listpack encoding

# One script call writes a whole batch. ARGV: the common values below (in this order), then per
# frame the 7 values of _PER_FRAME. The frame's metadata is one JSON array (cheap to pack, decoded
# by Redis's cjson): the names of its keys, computed by RedisKeys in Python, and its result values
# in contract.RESULT_FIELDS order. Each frame runs in pcall: one frame refused (WRONGTYPE on its
# keys) comes back as an error string, the others are written. Keys are named in ARGV, not KEYS:
# a batch touches many, and linewatch runs on a single Redis (not a cluster).
_COMMON = (
    "dedupe_ttl", "history_maxlen", "history_ttl", "result_ttl", "mask_ttl", "frame_ttl", "state_ttl",
    "debounce_n", "debounce_m", "cooldown_ms", "now_ms", "cameras_max", "alerts_maxlen", "camera_parts",
    "camera_index", "alerts", "probation", "probation_frames", "probation_max", "admit_frames", "blobs_max",
)
_PER_FRAME = ("meta", "mask_png", "heat_png", "frame_jpeg", "preview_jpeg", "preview_heat", "alert_json")

_WRITE_FRAMES = "\n".join(f"local {name} = ARGV[{i + 1}]" for i, name in enumerate(_COMMON)) + f"""
local FIELDS = {{{", ".join(repr(f) for f in c.RESULT_FIELDS)}}}
local PARTS = cjson.decode(camera_parts)
local blob_ttl = math.max(tonumber(mask_ttl), tonumber(frame_ttl))

-- A camera known to the index stays there; a new id is on probation until it sent admit_frames frames.
local function admit(cam)
  if redis.call('ZSCORE', camera_index, cam) then
    redis.call('ZADD', camera_index, now_ms, cam)
    return
  end
  if redis.call('HINCRBY', probation_frames, cam, 1) >= tonumber(admit_frames) then
    redis.call('ZREM', probation, cam)
    redis.call('HDEL', probation_frames, cam)
    redis.call('ZADD', camera_index, now_ms, cam)
    return true
  else
    redis.call('ZADD', probation, now_ms, cam)
  end
end

local function del_all(keys)
  for i = 1, #keys, 500 do redis.call('DEL', unpack(keys, i, math.min(i + 499, #keys))) end
end

-- Every key of a camera, its per-frame blobs included (PARTS[#PARTS] is the blobs set).
local function forget(cam)
  local blobs = PARTS[#PARTS][1] .. cam .. PARTS[#PARTS][2]
  del_all(redis.call('ZRANGE', blobs, 0, -1))
  for _, part in ipairs(PARTS) do redis.call('DEL', part[1] .. cam .. part[2]) end
end

-- Scores order blobs by write, also within one call's millisecond (1024 steps fit a double exactly).
local written = 0
local function keep_blob(blobs, key)
  written = math.min(written + 1, 1023)
  redis.call('ZADD', blobs, tonumber(now_ms) + written / 1024, key)
  redis.call('EXPIRE', blobs, blob_ttl)
  local excess = redis.call('ZCARD', blobs) - tonumber(blobs_max)
  if excess > 0 then
    del_all(redis.call('ZRANGE', blobs, 0, excess - 1))
    redis.call('ZREMRANGEBYRANK', blobs, 0, excess - 1)
  end
end

-- Counts per shift and minute (linewatch/shifts.py). Called after the replay check, so a record counts
-- once. Only admitted cameras count (a flood of made-up ids on probation writes no counts); the frame
-- that admits a camera also counts its frames on probation, from its history (this frame is the newest
-- entry). A shift counts at most cameras_max cameras.
local function count_frame(ct, cam, an, admitted_now, history)
  if not redis.call('ZSCORE', camera_index, cam) then return end
  if redis.call('SISMEMBER', ct.cams, cam) == 0 then
    if redis.call('SCARD', ct.cams) >= tonumber(cameras_max) then return end
    redis.call('SADD', ct.cams, cam)
  end
  redis.call('EXPIRE', ct.cams, ct.ttl)
  local frames, ng = 1, (an == '1') and 1 or 0
  if admitted_now then
    frames, ng = 0, 0
    for _, entry in ipairs(redis.call('XREVRANGE', history, '+', '-', 'COUNT', tonumber(admit_frames))) do
      frames = frames + 1
      local f = entry[2]
      for i = 1, #f - 1, 2 do if f[i] == 'anomalous' and f[i + 1] == '1' then ng = ng + 1 end end
    end
  end
  redis.call('HINCRBY', ct.shift, 'frames', frames)
  redis.call('HINCRBY', ct.shift, 'ok', frames - ng)
  redis.call('HINCRBY', ct.shift, 'ng', ng)
  redis.call('HSETNX', ct.shift, 'first_ms', now_ms)
  redis.call('HSET', ct.shift, 'last_ms', now_ms)
  redis.call('EXPIRE', ct.shift, ct.ttl)
  redis.call('HINCRBY', ct.min, ct.m .. ':f', frames)
  if ng > 0 then redis.call('HINCRBY', ct.min, ct.m .. ':ng', ng) end
  redis.call('EXPIRE', ct.min, ct.min_ttl)
end

local function write_frame(meta, mask_png, heat_png, frame_jpeg, preview_jpeg, preview_heat, alert_json)
  local k = meta.keys
  local seen = redis.call('HGET', k.seen, meta.field)
  if seen then
    local fp, decided = string.match(seen, '^(.*)|(%d)$')
    if fp == meta.fp then return {{0, tonumber(decided)}} end
  end
  local admitted_now = admit(meta.cam)
  local state = redis.call('HMGET', k.alert_state, 'recent', 'last_alert_ms')
  local recent = (state[1] or '') .. meta.an
  local dn, dm = tonumber(meta.dn or debounce_n), tonumber(meta.dm or debounce_m)  -- a recipe's override
  if #recent > dm then recent = string.sub(recent, -dm) end
  local alert = 0
  if meta.an == '1' and alert_json ~= '' then
    local _, count = string.gsub(recent, '1', '')
    local last = tonumber(state[2])
    if count >= dn and (not last or math.abs(meta.ev - last) >= tonumber(cooldown_ms)) then
      alert = 1
      redis.call('HSET', k.alert_state, 'last_alert_ms', meta.ev)
    end
  end
  redis.call('HSET', k.alert_state, 'recent', recent)
  redis.call('EXPIRE', k.alert_state, state_ttl)
  local fields = {{}}
  for i, name in ipairs(FIELDS) do fields[2 * i - 1] = name; fields[2 * i] = meta.values[i] end
  redis.call('XADD', k.history, 'MAXLEN', '~', history_maxlen, '*', unpack(fields))
  redis.call('EXPIRE', k.history, history_ttl)
  redis.call('HSET', k.latest, unpack(fields))
  if preview_jpeg ~= '' then
    redis.call('SET', k.preview_frame, preview_jpeg, 'EX', result_ttl)
    redis.call('SET', k.preview_heat, preview_heat, 'EX', result_ttl)
    redis.call('HSET', k.latest, '{c.PREVIEW_FIELD}', meta.fid)
  end
  redis.call('EXPIRE', k.latest, result_ttl)
  if mask_png ~= '' then redis.call('SET', k.mask, mask_png, 'EX', mask_ttl); keep_blob(k.blobs, k.mask) end
  if heat_png ~= '' then redis.call('SET', k.heat_at, heat_png, 'EX', frame_ttl); keep_blob(k.blobs, k.heat_at) end
  if frame_jpeg ~= '' then redis.call('SET', k.frame_at, frame_jpeg, 'EX', frame_ttl); keep_blob(k.blobs, k.frame_at) end
  if alert == 1 then redis.call('XADD', alerts, 'MAXLEN', '~', alerts_maxlen, '*', 'alert', alert_json) end
  if meta.count then count_frame(meta.count, meta.cam, meta.an, admitted_now, k.history) end
  redis.call('HSET', k.seen, meta.field, meta.fp .. '|' .. alert)
  redis.call('EXPIRE', k.seen, dedupe_ttl)
  return {{1, alert}}
end

-- Beyond `cap`, forget the least recently seen members of a tier with their keys.
local function trim(tier, cap, counts)
  local excess = redis.call('ZCARD', tier) - tonumber(cap)
  if excess <= 0 then return end
  for _, gone in ipairs(redis.call('ZRANGE', tier, 0, excess - 1)) do
    forget(gone)
    if counts then redis.call('HDEL', counts, gone) end
  end
  redis.call('ZREMRANGEBYRANK', tier, 0, excess - 1)
end

local out = {{}}
for base = {len(_COMMON)}, #ARGV - 1, {len(_PER_FRAME)} do
  local ok, res = pcall(write_frame, cjson.decode(ARGV[base + 1]), ARGV[base + 2], ARGV[base + 3], ARGV[base + 4],
                        ARGV[base + 5], ARGV[base + 6], ARGV[base + 7])
  if ok then
    out[#out + 1] = res
  elseif type(res) == 'table' and res.err then
    out[#out + 1] = res.err
  else
    out[#out + 1] = tostring(res)
  end
end
-- Cameras silent for result_ttl leave both tiers (their keys expire by their own TTLs).
local idle = '(' .. (tonumber(now_ms) - 1000 * tonumber(result_ttl))
redis.call('ZREMRANGEBYSCORE', camera_index, '-inf', idle)
local quiet = redis.call('ZRANGEBYSCORE', probation, '-inf', idle)
if #quiet > 0 then
  redis.call('HDEL', probation_frames, unpack(quiet))
  redis.call('ZREMRANGEBYSCORE', probation, '-inf', idle)
end
trim(camera_index, cameras_max, nil)
trim(probation, probation_max, probation_frames)
return out
"""


# The drift hash's baseline is written once, by whichever worker summarises a camera first; every
# summary returns the baseline in force (deleting it, as recommissioning does, starts a new one).
_DRIFT_SIGNALS = ("score_median", "score_p95", "brightness", "contrast")
_RECORD_DRIFT = """
if redis.call('HEXISTS', KEYS[1], 'baseline_brightness') == 0 then
  for i = 1, #ARGV - 3, 2 do redis.call('HSET', KEYS[1], 'baseline_' .. ARGV[i + 3], ARGV[i + 4]) end
  redis.call('HSET', KEYS[1], 'baseline_ms', ARGV[2])
end
for i = 1, #ARGV - 3, 2 do redis.call('HSET', KEYS[1], ARGV[i + 3], ARGV[i + 4]) end
redis.call('HSET', KEYS[1], 'summary_ms', ARGV[2], 'worker', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[1])
return redis.call('HMGET', KEYS[1], 'baseline_score_median', 'baseline_score_p95', 'baseline_brightness', 'baseline_contrast')
"""


@dataclass(frozen=True, slots=True)
class Retention:
    """How long what the worker writes lives, and how big it may grow."""

    result_ttl_s: int = 3600
    history_ttl_s: int = 86400
    history_maxlen: int = 10000
    mask_ttl_s: int = 600
    frame_ttl_s: int = 6 * 3600
    dedupe_ttl_s: int = 86400
    alerts_maxlen: int = 10000
    cameras_max: int = 1000
    probation_max: int = 1000  # camera ids not admitted yet, kept at once
    admit_frames: int = 3  # frames a new camera id sends before it is admitted to the index
    blobs_max: int = 2000  # per-frame keys (masks, pictures) kept per camera


@dataclass(frozen=True, slots=True)
class Debounce:
    """N anomalous frames among a camera's last M, then no new alert for `cooldown_s`."""

    n: int = 3
    m: int = 5
    cooldown_s: float = 30.0

    def __post_init__(self) -> None:
        if not 1 <= self.n <= self.m:
            raise ValueError(f"debounce needs 1 <= n <= m, got n={self.n}, m={self.m}")


@dataclass(frozen=True, slots=True)
class Counting:
    """Counts per shift and minute: the shift by the frame's time (plausible capture time, else the
    worker's clock), minutes and frames/s by the worker's clock (when it was scored)."""

    calendar: ShiftCalendar
    ttl_s: int

    def keys(self, k: RedisKeys, w: "FrameWrite") -> dict[str, str]:
        shift = self.calendar.at(w.event_ms).id
        now = int(w.fields["published_ms"])
        return {"shift": k.counts(w.camera, shift), "cams": k.shift_cameras(shift), "ttl": str(self.ttl_s),
                "min": k.minutes(w.camera, now // HOUR_MS), "m": str(now // MINUTE_MS), "min_ttl": str(MINUTES_TTL_S)}


@dataclass(slots=True)
class FrameWrite:
    """Everything one frame's Redis script needs."""

    tp: tuple[str, int]
    offset: int
    fingerprint: str  # Item.fingerprint: tells a replay from another record at the same offset
    camera: str
    frame_id: str
    anomalous: bool
    event_ms: int  # the frame's time for the cool-down: plausible capture time, else the worker's clock
    fields: dict[str, str]
    mask_png: bytes = b""
    heat_png: bytes = b""
    frame_jpeg: bytes = b""
    preview_jpeg: bytes = b""
    preview_heat: bytes = b""
    alert_json: bytes = b""  # the alert to record if the debounce decides this frame raises one
    debounce: tuple[int, int] | None = None  # (n, m) of the frame's recipe; None: the worker's Debounce


@dataclass(frozen=True, slots=True)
class Written:
    fresh: bool  # False: a replay, nothing changed
    alert: bool  # this frame raised an alert (decided now, or the first time for a replay)


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def redis_error(exc: redis.RedisError) -> PublishError:
    """Translate a Redis failure into the kind of PublishError it is."""
    text = str(exc)
    if isinstance(exc, (rx.ConnectionError, rx.TimeoutError, rx.BusyLoadingError, rx.TryAgainError)):
        return OutputUnavailable(f"redis: {text}")
    if isinstance(exc, (rx.AuthenticationError, rx.AuthorizationError, rx.NoPermissionError)):
        return OutputRefused(f"redis refused this worker: {text}")
    if isinstance(exc, rx.OutOfMemoryError) or "OOM command not allowed" in text:
        return OutputRefused(f"redis is out of memory (maxmemory reached): {text}")
    if "NOPERM" in text or "NOAUTH" in text:
        return OutputRefused(f"redis refused this worker: {text}")
    if text.startswith(("BUSY", "LOADING", "MASTERDOWN", "READONLY")) or "BUSY" in text[:40]:
        return OutputUnavailable(f"redis busy: {text}")
    if isinstance(exc, rx.ResponseError):
        return RecordRefused(c.R_PUBLISH_REJECTED, f"redis refused this frame's result: {text[:300]}")
    return OutputUnavailable(f"redis: {text}")


class ResultWriter:
    """Writes a batch of frames to Redis in one round trip: one script call for the batch."""

    def __init__(self, client: redis.Redis, keys: RedisKeys, retention: Retention, debounce: Debounce,
                 counting: Counting | None = None) -> None:
        self.client = client
        self.counting = counting
        self.keys = keys
        self.retention = retention
        self.debounce = debounce
        self._camera_parts = json.dumps(keys.camera_key_parts())
        # SHA1 of the scripts, computed here; loaded into Redis on the first NOSCRIPT answer.
        self._batch_sha = hashlib.sha1(_WRITE_FRAMES.encode()).hexdigest()
        self._drift_sha = hashlib.sha1(_RECORD_DRIFT.encode()).hexdigest()

    def _frame_args(self, w: FrameWrite) -> list[Any]:
        k = self.keys
        topic, partition = w.tp
        keys = {
            "seen": k.seen(topic, partition, w.offset // SEEN_BUCKET), "history": k.history(w.camera),
            "latest": k.latest(w.camera), "alert_state": k.alert_state(w.camera), "mask": k.mask(w.camera, w.frame_id),
            "heat_at": k.heat_at(w.camera, w.frame_id), "frame_at": k.frame_at(w.camera, w.frame_id),
            "preview_frame": k.frame(w.camera), "preview_heat": k.heat(w.camera), "blobs": k.blobs(w.camera),
        }
        meta = {
            "keys": keys, "field": str(w.offset), "fp": w.fingerprint, "cam": w.camera, "fid": w.frame_id,
            "an": "1" if w.anomalous else "0", "ev": w.event_ms, "values": [w.fields[f] for f in c.RESULT_FIELDS],
        }
        if self.counting:
            meta["count"] = self.counting.keys(k, w)
        if w.debounce is not None:
            meta["dn"], meta["dm"] = w.debounce
        return [json.dumps(meta, separators=(",", ":")), w.mask_png, w.heat_png, w.frame_jpeg, w.preview_jpeg,
                w.preview_heat, w.alert_json]

    def _common_args(self, now_ms: str) -> list[Any]:
        r, d, k = self.retention, self.debounce, self.keys
        state_ttl = max(r.result_ttl_s, int(2 * d.cooldown_s) + 1)
        return [
            r.dedupe_ttl_s, r.history_maxlen, r.history_ttl_s, r.result_ttl_s, r.mask_ttl_s, r.frame_ttl_s, state_ttl,
            d.n, d.m, int(d.cooldown_s * 1000), now_ms, r.cameras_max, r.alerts_maxlen, self._camera_parts,
            k.camera_index, k.alerts, k.probation, k.probation_frames, r.probation_max, r.admit_frames, r.blobs_max,
        ]

    def write(self, frames: list[FrameWrite], drift: list[tuple[str, dict[str, float], int, str]] = ()) -> tuple[
        list[Written | PublishError], list[dict[str, float] | PublishError]
    ]:
        """Write a batch in one round trip: one outcome per frame (Written, or the PublishError of that
        frame) and, per drift summary given, the baseline in force (see _drift_args).

        A failure of the round trip itself (connection, timeout) raises OutputUnavailable for the
        whole batch: nothing can be said about any frame, and retrying all of them is safe.
        """
        if not frames and not drift:
            return [], []
        for attempt in range(2):  # a second time when Redis lost its script cache (a restart)
            pipe = self.client.pipeline(transaction=False)
            if frames:
                args = self._common_args(frames[0].fields["published_ms"])
                for w in frames:
                    args += self._frame_args(w)
                pipe.evalsha(self._batch_sha, 0, *args)
            for camera, summary, now_ms, worker in drift:
                pipe.evalsha(self._drift_sha, 1, self.keys.drift(camera), *self._drift_args(summary, now_ms, worker))
            try:
                replies = pipe.execute(raise_on_error=False)
            except redis.RedisError as exc:
                raise redis_error(exc) from exc
            if not any(isinstance(r, rx.NoScriptError) for r in replies) or attempt:
                break
            self._load_scripts()
        frame_replies = replies[0] if frames else []
        if isinstance(frame_replies, redis.RedisError):  # the script as a whole failed: every frame did
            outcomes: list[Written | PublishError] = [redis_error(frame_replies)] * len(frames)
        else:
            outcomes = [
                Written(r[0] == 1, r[1] == 1) if isinstance(r, list) else redis_error(rx.ResponseError(_text(r)))
                for r in frame_replies
            ]
        baselines = [
            redis_error(r) if isinstance(r, redis.RedisError) else {s: float(v) for s, v in zip(_DRIFT_SIGNALS, r)}
            for r in replies[1 if frames else 0:]
        ]
        return outcomes, baselines

    def _load_scripts(self) -> None:
        try:
            self._batch_sha = self.client.script_load(_WRITE_FRAMES)
            self._drift_sha = self.client.script_load(_RECORD_DRIFT)
        except redis.RedisError as exc:
            raise redis_error(exc) from exc

    def _drift_args(self, summary: dict[str, float], now_ms: int, worker: str) -> list[Any]:
        """A camera's drift summary is stored with the batch; the script returns the baseline in force
        (this summary when there was none yet)."""
        args: list[Any] = [self.retention.history_ttl_s, now_ms, worker]
        for signal in _DRIFT_SIGNALS:
            args += [signal, f"{summary[signal]:.6g}"]
        return args

    def recalibrate_events(self, events: list[dict[str, str]]) -> None:
        pipe = self.client.pipeline(transaction=False)
        for fields in events:
            pipe.xadd(self.keys.recalibrate, fields, maxlen=self.retention.alerts_maxlen, approximate=True)
        try:
            pipe.execute()
        except redis.RedisError as exc:
            raise redis_error(exc) from exc

    def _seen(self, tp: tuple[str, int], offset: int) -> tuple[str, str]:
        return self.keys.seen(tp[0], tp[1], offset // SEEN_BUCKET), str(offset)

    def dead_lettered(self, records: list[tuple[tuple[str, int], int, str]]) -> list[bool]:
        """For each (tp, offset, fingerprint): was this very record dead-lettered already?"""
        pipe = self.client.pipeline(transaction=False)
        for tp, offset, _ in records:
            pipe.hget(*self._seen(tp, offset))
        try:
            found = pipe.execute()
        except redis.RedisError as exc:
            raise redis_error(exc) from exc
        return [v is not None and v.decode(errors="replace") == f"{fp}|d" for v, (_, _, fp) in zip(found, records)]

    def mark_dead_lettered(self, records: list[tuple[tuple[str, int], int, str]]) -> None:
        pipe = self.client.pipeline(transaction=False)
        for tp, offset, fp in records:
            key, field = self._seen(tp, offset)
            pipe.hset(key, field, f"{fp}|d")
            pipe.expire(key, self.retention.dedupe_ttl_s)
        try:
            pipe.execute()
        except redis.RedisError as exc:
            raise redis_error(exc) from exc

    def runtime_thresholds(self) -> dict[str, float]:
        """Per-camera threshold overrides set at runtime (HSET <prefix>:thresholds cam 0.7)."""
        try:
            raw = self.client.hgetall(self.keys.thresholds)
        except redis.RedisError as exc:
            raise redis_error(exc) from exc
        found: dict[str, float] = {}
        for cam, value in raw.items():
            try:
                found[cam.decode("utf-8", "replace")] = min(max(float(value), 0.0), 1.0)
            except ValueError:
                continue  # a malformed override is ignored, the camera keeps its configured threshold
        return found


@dataclass(slots=True)
class OutRecord:
    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.key) + len(self.value) + sum(len(k) + len(v) for k, v in self.headers)


TopicCheck = Callable[[str], bool | None]  # True: exists, False: missing, None: cannot tell


class KafkaTopicCheck:
    """Asks the cluster whether a topic exists (a missing topic looks like a timeout to a producer)."""

    def __init__(self, client_kwargs: dict[str, Any]) -> None:
        self._client_kwargs = client_kwargs
        self._admin: KafkaAdminClient | None = None

    def __call__(self, topic: str) -> bool | None:
        try:
            if self._admin is None:
                self._admin = KafkaAdminClient(**self._client_kwargs, client_id="linewatch-topic-check", request_timeout_ms=5000)
            return topic in self._admin.list_topics()
        except KafkaError:
            return None

    def close(self) -> None:
        if self._admin is not None:
            self._admin.close()


def topic_missing(topic: str) -> OutputRefused:
    return OutputRefused(f"kafka: topic {topic} does not exist (or this worker may not describe it)")


def kafka_error(exc: KafkaError, topic: str, topic_exists: TopicCheck) -> PublishError:
    """Translate a failed send to `topic` into the kind of PublishError it is."""
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, MessageSizeTooLargeError) or "MESSAGE_TOO_LARGE" in text or "RecordTooLarge" in text:
        return RecordRefused("too_large", f"kafka refused the record as too large ({text[:200]})")
    if isinstance(exc, TopicAuthorizationFailedError) or "AUTHORIZATION" in text.upper():
        return OutputRefused(f"kafka: not authorised to write topic {topic} ({text[:200]})")
    if isinstance(exc, (KafkaTimeoutError, UnknownTopicOrPartitionError)):
        # A missing topic and an unreachable broker both look like a timeout here: a send to a topic
        # deleted after its metadata was cached times out in the record's future, not in metadata.
        if topic_exists(topic) is False:
            return topic_missing(topic)
        return OutputUnavailable(f"kafka: {text[:200]}")
    if getattr(exc, "retriable", False) or isinstance(exc, KafkaTimeoutError):
        return OutputUnavailable(f"kafka: {text[:200]}")
    return OutputRefused(f"kafka: {text[:200]}")


class KafkaSender:
    """Sends alert and dead-letter records and waits until the broker acknowledged them.

    A record for a topic deleted after its metadata was cached is not refused by the client: it
    waits in the producer until `timeout_s`. So records still unanswered after `name_after_s` have
    their topics looked up, and those of a topic the cluster no longer lists are refused then
    (`topic ... does not exist`), not after the whole timeout: readiness names the cause sooner."""

    def __init__(self, producer: KafkaProducer, topic_exists: TopicCheck, timeout_s: float = 15.0,
                 name_after_s: float = 5.0) -> None:
        self.producer = producer
        self.topic_exists = topic_exists
        self.timeout_s = timeout_s
        self.name_after_s = name_after_s

    def send_all(self, records: list[OutRecord]) -> list[PublishError | None]:
        """One outcome per record: None when acknowledged, else its PublishError."""
        outcomes: list[PublishError | None] = [None] * len(records)
        futures: list[tuple[int, Any]] = []
        for i, r in enumerate(records):
            try:
                futures.append((i, self.producer.send(r.topic, key=r.key, value=r.value, headers=r.headers)))
            except KafkaError as exc:
                outcomes[i] = kafka_error(exc, r.topic, self.topic_exists)
        # One deadline for the whole call: waiting `timeout_s` per record let a batch whose topic had
        # vanished hold the publish thread for minutes (records x timeout) after the topic was back.
        deadline = time.monotonic() + self.timeout_s
        if futures and self.name_after_s < self.timeout_s:
            self._flush(self.name_after_s)
            futures = self._refuse_missing_topics(records, futures, outcomes)
        if futures:
            self._flush(max(0.0, deadline - time.monotonic()))
        for i, future in futures:
            try:
                future.get(timeout=max(0.0, deadline - time.monotonic()))
            except KafkaError as exc:
                outcomes[i] = kafka_error(exc, records[i].topic, self.topic_exists)
        return outcomes

    def _flush(self, timeout_s: float) -> None:
        try:
            self.producer.flush(timeout=timeout_s)
        except KafkaError:
            pass  # each future says what happened to its record

    def _refuse_missing_topics(self, records: list[OutRecord], futures: list[tuple[int, Any]],
                               outcomes: list[PublishError | None]) -> list[tuple[int, Any]]:
        """Refuse the unanswered records of topics the cluster does not list; the others go on waiting.
        (A refused record may still reach a topic created again meanwhile: at least once.)"""
        waiting = {records[i].topic for i, f in futures if not f.is_done}
        missing = {t for t in waiting if self.topic_exists(t) is False}
        for i, f in futures:
            if records[i].topic in missing and not f.is_done:
                outcomes[i] = topic_missing(records[i].topic)
        return [(i, f) for i, f in futures if outcomes[i] is None]


def boxes_json(boxes: list[tuple[int, int, int, int]]) -> str:
    return json.dumps([list(b) for b in boxes], separators=(",", ":"))
