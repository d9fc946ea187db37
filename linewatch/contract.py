"""The wire contract between cameras, workers and alert consumers.

Everything both sides must agree on lives here and nowhere else: topic roles, frame headers,
the alert message, dead-letter headers and Redis key names. Producers call `frame_headers`,
workers call `parse_frame_record`; both raise or return the same `FrameMeta`.

Frame record on the frames topic
    key     camera id (UTF-8), required, so one camera's frames stay ordered in one partition
    value   encoded image: JPEG (default), PNG, or raw uint8 pixels (row-major, BGR or gray)
    headers lw-schema, lw-camera, lw-seq, lw-capture-ns, lw-encoding, lw-width, lw-height,
            lw-channels (all ASCII, each at most once); optional lw-part: the part id (serial, lot,
            trigger id) the frame shows, printable, 1..MAX_PART_ID chars; records without it stay
            valid and their results carry part "" (results, history entries and alerts carry `part`)

Alert record on the alerts topic: key = camera id, value = `Alert.to_json()`.
Result record on the results topic (LW_RESULTS_TOPIC): key = camera id, value =
`FrameVerdict.to_json()`, one per scored frame (OK and NG), for line integrations (bridge/).
Dead-letter record: the original key, value and headers plus lw-dlq-* headers.

Frame identity does not trust clocks
    A frame is identified by where the broker put it: `frame_id(partition, offset)` of its record
    in the frames topic. Senders control their headers, so anything taken from them (capture
    clock, sequence number) can be zero, a year ahead, step back with NTP or repeat; an identity or
    an ordering built on them turns one bad value into a blocked partition or a camera whose later
    frames all look like duplicates. The broker's offset is unique within a partition and the same
    on every replay, so:
    - history entries get IDs chosen by Redis (XADD *): any clock value is accepted, the stream is
      in the order results were written;
    - a replay (the same record read again after a crash or a rebalance) is recognised by a dedupe
      entry keyed by topic, partition and offset (RedisKeys.seen, with a TTL), which also stores
      the record's broker timestamp and sequence: a *different* record at the same offset (the
      topic was deleted and recreated) is not mistaken for a replay;
    - capture time stays data: it is published as it came, `clock_ok` says whether it was
      plausible (not zero, not ahead of the worker's clock by more than the allowed skew, not older
      than the allowed age), and only plausible capture times feed latency and alert cool-downs.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Iterable, Sequence

from linewatch.errors import FrameRejected

FRAME_SCHEMA_VERSION = 1
ALERT_SCHEMA_VERSION = 1
RESULT_SCHEMA_VERSION = 1
VERDICT_OK, VERDICT_NG = "OK", "NG"

ENCODINGS = ("jpeg", "png", "raw")

H_SCHEMA = "lw-schema"
H_CAMERA = "lw-camera"
H_SEQ = "lw-seq"
H_CAPTURE_NS = "lw-capture-ns"
H_ENCODING = "lw-encoding"
H_WIDTH = "lw-width"
H_HEIGHT = "lw-height"
H_CHANNELS = "lw-channels"
H_PART = "lw-part"  # optional

H_DLQ_REASON = "lw-dlq-reason"
H_DLQ_DETAIL = "lw-dlq-detail"
H_DLQ_SOURCE = "lw-dlq-source"  # "<topic>:<partition>:<offset>" of the rejected record

# Reason codes carried by FrameRejected and the lw-dlq-reason header.
R_MISSING_HEADER = "missing_header"
R_BAD_HEADER = "bad_header"
R_UNKNOWN_SCHEMA = "unknown_schema"
R_OVERSIZE = "oversize"
R_UNDECODABLE = "undecodable"
R_WRONG_DIMENSIONS = "wrong_dimensions"
R_KEY_MISMATCH = "key_mismatch"
R_MISSING_KEY = "missing_key"
R_UNPARSEABLE = "unparseable"  # the Kafka client could not parse the record (headers, batch, checksum)
R_PUBLISH_REJECTED = "publish_rejected"  # Redis refused this one frame's result for good
# Recipes (model_store/recipes.py, worker/routing.py): the line's table routes no recipe to the
# frame's camera (no assignment, no `default`), or the model its recipe names loads in no version.
R_NO_RECIPE = "no_recipe"
R_MODEL_UNAVAILABLE = "model_unavailable"

MAX_DIMENSION = 16384  # beyond any industrial camera; guards allocations from a bad header
MAX_CAMERA_ID = 128
MAX_PART_ID = 160  # room for "<camera id>-<seq>" (the producer's counter part ids)

Headers = Sequence[tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class FrameMeta:
    """What a frame's headers say about it."""

    camera: str
    seq: int
    capture_ns: int
    encoding: str
    width: int
    height: int
    channels: int = 3
    schema: int = FRAME_SCHEMA_VERSION
    part: str = ""  # "" = the record has no lw-part


def valid_camera_id(camera: str) -> bool:
    """The rule for camera ids: 1-MAX_CAMERA_ID printable characters, no ':' (it separates the parts
    of Redis key names, so an id can never name another key)."""
    return 0 < len(camera) <= MAX_CAMERA_ID and camera.isprintable() and ":" not in camera


def frame_headers(meta: FrameMeta) -> list[tuple[str, bytes]]:
    """Headers for a frame record, validated the way a worker will read them."""
    headers = [
        (H_SCHEMA, str(meta.schema).encode()),
        (H_CAMERA, meta.camera.encode()),
        (H_SEQ, str(meta.seq).encode()),
        (H_CAPTURE_NS, str(meta.capture_ns).encode()),
        (H_ENCODING, meta.encoding.encode()),
        (H_WIDTH, str(meta.width).encode()),
        (H_HEIGHT, str(meta.height).encode()),
        (H_CHANNELS, str(meta.channels).encode()),
    ]
    if meta.part:
        headers.append((H_PART, meta.part.encode()))
    parse_frame_record(meta.camera.encode(), headers)
    return headers


def valid_part(part: str) -> bool:
    """A part id as lw-part carries it: printable ASCII, 1..MAX_PART_ID characters."""
    return 0 < len(part) <= MAX_PART_ID and part.isascii() and part.isprintable()


def _shown(raw: object, limit: int = 40) -> str:
    """A sender-controlled value, cut short and repr'd for a detail message."""
    text = repr(raw)
    return text if len(text) <= limit else f"{text[:limit]}...({len(text)} chars)"


class UndecodableName(str):
    """A header name whose bytes are not UTF-8, as the worker's record reader hands it over
    (worker/kafka_compat.py): the text shows the bad bytes escaped (``lw-\\xff``), `raw` keeps them."""

    raw: bytes

    def __new__(cls, raw: bytes) -> "UndecodableName":
        obj = super().__new__(cls, raw.decode("utf-8", "backslashreplace"))
        obj.raw = raw
        return obj


def _utf8(name: object) -> bool:
    return isinstance(name, str) and not isinstance(name, UndecodableName)


def _header_map(headers: Iterable[tuple[str, bytes | None]]) -> dict[str, str]:
    """Our headers (lw-*) as text; foreign headers are ignored, a repeated one of ours is refused."""
    found: dict[str, str] = {}
    for name, raw in headers or ():
        if not isinstance(name, str) or not name.startswith("lw-") or name.startswith("lw-dlq-"):
            continue
        if name in found:
            raise FrameRejected(R_BAD_HEADER, f"{_shown(name)} appears more than once")
        if raw is None:
            continue
        try:
            found[name] = raw.decode("ascii") if isinstance(raw, bytes) else str(raw)
        except UnicodeDecodeError as exc:
            raise FrameRejected(R_BAD_HEADER, f"{_shown(name)} is not ASCII") from exc
    return found


def _int_header(found: dict[str, str], name: str, low: int, high: int) -> int:
    if name not in found:
        raise FrameRejected(R_MISSING_HEADER, name)
    text = found[name]
    if len(text) > 20 or not text.lstrip("-").isdigit():
        raise FrameRejected(R_BAD_HEADER, f"{name}={_shown(text)} is not an integer")
    value = int(text)
    if not low <= value <= high:
        raise FrameRejected(R_BAD_HEADER, f"{name}={value} outside [{low}, {high}]")
    return value


def parse_frame_record(key: bytes | None, headers: Headers | None) -> FrameMeta:
    """Validate a frame record's key and headers; raise FrameRejected (with a reason) if bad."""
    for name, _ in headers or ():
        if isinstance(name, UndecodableName):  # the record format itself is broken: say so first
            raise FrameRejected(R_UNPARSEABLE, f"header name {_shown(name.raw)} is not UTF-8")
    found = _header_map(headers or ())
    if H_SCHEMA not in found:
        raise FrameRejected(R_MISSING_HEADER, H_SCHEMA)
    schema = _int_header(found, H_SCHEMA, 0, 1 << 16)
    if schema != FRAME_SCHEMA_VERSION:
        raise FrameRejected(R_UNKNOWN_SCHEMA, f"schema {schema}, this build reads {FRAME_SCHEMA_VERSION}")
    camera = found.get(H_CAMERA, "")
    if not camera:
        raise FrameRejected(R_MISSING_HEADER, H_CAMERA)
    if not valid_camera_id(camera):
        raise FrameRejected(R_BAD_HEADER, f"camera id {_shown(camera)} (printable, no ':', <= {MAX_CAMERA_ID})")
    if key is None:
        raise FrameRejected(R_MISSING_KEY, f"record without a key; the key must be the camera id {camera!r}")
    if key != camera.encode():
        raise FrameRejected(R_KEY_MISMATCH, f"key {_shown(key)} != camera {camera!r}")
    encoding = found.get(H_ENCODING, "")
    if encoding not in ENCODINGS:
        raise FrameRejected(R_BAD_HEADER if encoding else R_MISSING_HEADER, f"{H_ENCODING}={_shown(encoding)}")
    part = found.get(H_PART, "")
    if H_PART in found and not valid_part(part):
        raise FrameRejected(R_BAD_HEADER, f"part id {_shown(part)} (printable, 1..{MAX_PART_ID} chars)")
    return FrameMeta(
        camera=camera,
        seq=_int_header(found, H_SEQ, 0, (1 << 63) - 1),
        capture_ns=_int_header(found, H_CAPTURE_NS, 0, (1 << 63) - 1),
        encoding=encoding,
        width=_int_header(found, H_WIDTH, 1, MAX_DIMENSION),
        height=_int_header(found, H_HEIGHT, 1, MAX_DIMENSION),
        channels=_int_header(found, H_CHANNELS, 1, 4) if H_CHANNELS in found else 3,
        schema=schema,
        part=part,
    )


def dead_letter_headers(
    headers: Headers | None, reason: str, detail: str, source: str
) -> list[tuple[str, bytes]]:
    """The rejected record's own headers plus why and where it was rejected.

    Headers whose name is not UTF-8 cannot be written by a Kafka client; they are left out and
    named in the detail (their bytes, escaped)."""
    kept = []
    for k, v in headers or ():
        if not isinstance(k, str) or k.startswith("lw-dlq-") or v is None:
            continue
        if _utf8(k):
            kept.append((k, v))
        else:
            detail += f" [header {_shown(getattr(k, 'raw', k))} left out: its name is not UTF-8]"
    return kept + [
        (H_DLQ_REASON, reason.encode()),
        (H_DLQ_DETAIL, detail[:512].encode("utf-8", "replace")),
        (H_DLQ_SOURCE, source.encode()),
    ]


@dataclass(slots=True)
class Alert:
    """One alert: a camera's score crossed its threshold often enough to pass the debounce."""

    camera: str
    frame_seq: int
    capture_ns: int
    score_raw: float
    score: float  # normalised to [0, 1]; the model's calibrated threshold sits at 0.5
    threshold: float  # normalised threshold in force for this camera
    model_name: str
    model_version: str
    mask_key: str  # Redis key of the PNG mask (model resolution; expires with its TTL)
    mask_size: tuple[int, int]  # (width, height) of the mask, the frame boxes scale from
    boxes: list[tuple[int, int, int, int]] = field(default_factory=list)  # x, y, w, h in mask pixels
    frame_id: str = ""
    emitted_ns: int = 0
    schema: int = ALERT_SCHEMA_VERSION
    part: str = ""  # the frame's lw-part; "" when it had none (alerts written before it existed read as "")
    recipe: str = ""  # the recipe the frame was routed by; "" when the line has no recipes (worker/routing.py)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> "Alert":
        data = json.loads(raw)
        if data.get("schema") != ALERT_SCHEMA_VERSION:
            raise FrameRejected(R_UNKNOWN_SCHEMA, f"alert schema {data.get('schema')!r}")
        data["mask_size"] = tuple(data["mask_size"])
        data["boxes"] = [tuple(b) for b in data.get("boxes", [])]
        return cls(**data)


@dataclass(slots=True)
class FrameVerdict:
    """One scored frame's compact verdict on the results topic: what a line (PLC, MES) acts on.

    (camera, frame_id) identifies it; a redelivery carries the same pair, so consumers deduplicate
    by it. `recipe` and `part` are empty until the frame carries them."""

    camera: str
    frame_id: str
    seq: int
    capture_ns: int
    verdict: str  # VERDICT_OK or VERDICT_NG
    score: float  # normalised to [0, 1]
    threshold: float  # normalised threshold in force; NG when score >= threshold
    model_name: str
    model_version: str
    boxes: list[tuple[int, int, int, int]] = field(default_factory=list)  # x, y, w, h in mask pixels
    emitted_ns: int = 0
    recipe: str = ""
    part: str = ""
    schema: int = RESULT_SCHEMA_VERSION

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> "FrameVerdict":
        data = json.loads(raw)
        if not isinstance(data, dict) or data.get("schema") != RESULT_SCHEMA_VERSION:
            raise FrameRejected(R_UNKNOWN_SCHEMA, f"result schema {data.get('schema') if isinstance(data, dict) else None!r}")
        data["boxes"] = [tuple(b) for b in data.get("boxes", [])]
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}  # newer optional fields: ignored
        verdict = cls(**known)
        if verdict.verdict not in (VERDICT_OK, VERDICT_NG) or not verdict.camera or not verdict.frame_id:
            raise FrameRejected(R_BAD_HEADER, f"result with verdict {verdict.verdict!r}, camera {verdict.camera!r}")
        return verdict


@dataclass(frozen=True, slots=True)
class Topics:
    """Kafka topic names, derived from one base name so deployments stay consistent."""

    frames: str
    alerts: str
    dead_letter: str
    results: str = ""  # per-frame verdicts (LW_RESULTS_TOPIC); from_base always names it

    @classmethod
    def from_base(cls, base: str) -> "Topics":
        return cls(frames=f"{base}.frames", alerts=f"{base}.alerts", dead_letter=f"{base}.frames.dlq",
                   results=f"{base}.results")


@dataclass(frozen=True, slots=True)
class RedisKeys:
    """Redis key names under one prefix. Cameras never contain ':' (checked in the headers).

    Written by workers:
    latest(camera)           hash: the newest result of a camera (TTL result_ttl_s)
    history(camera)          stream: one entry per scored frame; entry IDs chosen by Redis (TTL history_ttl_s)
    mask(camera, frame_id)   PNG bytes of the anomaly mask at model resolution (TTL mask_ttl_s)
    heat_at(camera, frame_id)  PNG, 8-bit anomaly heatmap at model resolution, 128 = pixel threshold
    frame(camera), heat(camera)  the camera's preview: JPEG of a recent frame (downscaled) and its
                             heatmap, refreshed at most every preview_interval_ms; the latest hash's
                             `preview_frame_id` says which frame it is (TTL result_ttl_s)
    frame_at(camera, frame_id)  JPEG of an anomalous frame, downscaled (TTL frame_ttl_s)
    alerts                   stream: every alert sent to Kafka, as `alert` = Alert.to_json() (MAXLEN ~)
    alert_state(camera)      hash: debounce window and last alert time, so the next owner of the
                             camera's partition continues them (TTL)
    seen(topic, partition, bucket)  hash: dedupe of scored records by source offset (TTL dedupe_ttl_s)
    camera_index             sorted set: admitted camera -> last result time (ms); trimmed by age and count
    probation                sorted set: camera ids not admitted yet -> last result time (ms), capped
    probation_frames         hash: camera on probation -> frames it has sent so far
    blobs(camera)            sorted set: every per-frame key written for the camera (mask, heat_at,
                             frame_at) -> write time (ms), capped per camera; deleted with the camera
    drift(camera)            hash: the camera's drift baseline and rolling summary
    recalibrate              stream: drift events (a camera's scores or image statistics left their band)
    counts(camera, shift)    hash: frames, ok, ng, first_ms, last_ms of a camera in a shift (linewatch/shifts.py)
    minutes(camera, hour)    hash: <minute>:f, <minute>:ng frame and NG counts per minute (TTL two hours)
    shift_cameras(shift)     set: the cameras counted in a shift (at most cameras_max)
    shadow(candidate, camera)  stream: one entry per frame a shadow candidate scored beside production
                             (SHADOW_FIELDS; MAXLEN ~ SHADOW_MAXLEN, TTL); written by workers while
                             a shadow plan runs (worker/shadow.py), read by
                             `linewatch-models shadow report` / `promote --require-shadow`
    Read by workers, written by people and tools:
    thresholds               hash: camera -> normalised threshold override, read by workers at runtime
    feedback                 stream: operator verdicts on alerts (FEEDBACK_FIELDS), written by linewatch-view
    """

    prefix: str

    def latest(self, camera: str) -> str:
        return f"{self.prefix}:latest:{camera}"

    def history(self, camera: str) -> str:
        return f"{self.prefix}:history:{camera}"

    def mask(self, camera: str, frame_id: str) -> str:
        return f"{self.prefix}:mask:{camera}:{frame_id}"

    def frame(self, camera: str) -> str:
        return f"{self.prefix}:frame:{camera}"

    def frame_at(self, camera: str, frame_id: str) -> str:
        return f"{self.prefix}:frame:{camera}:{frame_id}"

    def heat(self, camera: str) -> str:
        return f"{self.prefix}:heat:{camera}"

    def heat_at(self, camera: str, frame_id: str) -> str:
        return f"{self.prefix}:heat:{camera}:{frame_id}"

    def alert_state(self, camera: str) -> str:
        return f"{self.prefix}:alertstate:{camera}"

    def seen(self, topic: str, partition: int, bucket: int) -> str:
        return f"{self.prefix}:seen:{topic}:{partition}:{bucket}"

    def drift(self, camera: str) -> str:
        return f"{self.prefix}:drift:{camera}"

    def counts(self, camera: str, shift: str) -> str:
        return f"{self.prefix}:counts:{camera}:{shift}"

    def minutes(self, camera: str, hour: int) -> str:
        return f"{self.prefix}:minutes:{camera}:{hour}"

    def shift_cameras(self, shift: str) -> str:
        return f"{self.prefix}:shiftcams:{shift}"

    def blobs(self, camera: str) -> str:
        return f"{self.prefix}:blobs:{camera}"

    def camera_key_parts(self) -> list[tuple[str, str]]:
        """(head, tail) of every per-camera key, so a key is head + camera + tail: how the worker's
        Lua script names the keys of a camera it forgets (the names stay defined here only). The
        blobs set comes last: its members are deleted before it."""
        per_camera = (self.latest, self.history, self.alert_state, self.frame, self.heat, self.drift, self.blobs)
        return [tuple(make("\0").split("\0")) for make in per_camera]  # type: ignore[misc]

    def shadow(self, candidate: str, camera: str) -> str:
        """The shadow stream of one candidate (`name@version`, resolved: never an alias, so one stream
        holds one version) on one camera. The candidate is written as it is: the model store's names
        and versions ([A-Za-z0-9_.-], v0001) never contain ':', and one that does is refused here, so
        the name splits back into prefix, candidate and camera at the ':'s."""
        if ":" in candidate or "@" not in candidate:
            raise ValueError(f"shadow candidate must be name@version without ':', got {candidate!r}")
        return f"{self.prefix}:shadow:{candidate}:{camera}"

    def shadow_pattern(self, candidate: str) -> str:
        """SCAN pattern of every camera's shadow stream of a candidate (the camera is the part after it)."""
        return self.shadow(candidate, "*")

    @property
    def alerts(self) -> str:
        return f"{self.prefix}:alerts"

    @property
    def camera_index(self) -> str:
        return f"{self.prefix}:index:cameras"

    @property
    def probation(self) -> str:
        return f"{self.prefix}:index:probation"

    @property
    def probation_frames(self) -> str:
        return f"{self.prefix}:index:probation-frames"

    @property
    def recalibrate(self) -> str:
        return f"{self.prefix}:recalibrate"

    @property
    def thresholds(self) -> str:
        return f"{self.prefix}:thresholds"

    @property
    def feedback(self) -> str:
        return f"{self.prefix}:feedback"


def frame_id(partition: int, offset: int) -> str:
    """A frame's identity: where the broker put its record (`<partition>-<offset>` in the frames
    topic). Assigned by Kafka, never by the sender, and the same on every replay."""
    return f"{partition}-{offset}"


# Fields of the latest hash and of each history entry (strings in Redis).
RESULT_FIELDS = (
    "camera", "seq", "frame_id", "capture_ns", "clock_ok", "score_raw", "score", "threshold", "anomalous",
    "model_name", "model_version", "latency_ms", "published_ms", "mask_key", "heat_key", "frame_key", "boxes",
    "worker", "part", "recipe",
)
# Extra field of the latest hash only: the frame whose preview is in frame(camera) / heat(camera).
PREVIEW_FIELD = "preview_frame_id"

# Fields of each feedback entry: an operator's verdict on an alert (or on any frame).
FEEDBACK_FIELDS = ("camera", "frame_id", "verdict", "note", "time_ns", "user")
VERDICT_CONFIRMED = "confirmed"
VERDICT_FALSE_ALARM = "false_alarm"
# Acknowledged: an operator saw the alarm (it stops flashing), no judgement on the frame; model tools
# (commissioning, calibrate --from-stream) read only the two judgements above.
VERDICT_ACKNOWLEDGED = "acknowledged"
JUDGEMENTS = (VERDICT_CONFIRMED, VERDICT_FALSE_ALARM)
VERDICTS = (*JUDGEMENTS, VERDICT_ACKNOWLEDGED)

# Fields of each shadow entry (strings in Redis): one frame scored by production and by a candidate.
# production_model / candidate scores are normalised scores (0.5 = each model's own threshold in
# force for the camera); *_anomalous are "1" / "0" as in RESULT_FIELDS; *_ms the model compute time
# per frame (the batch's forward pass divided by its frames); time_ns when the candidate finished.
SHADOW_FIELDS = (
    "camera", "frame_id", "seq", "production_model", "production_score", "production_anomalous",
    "candidate_score", "candidate_anomalous", "candidate_ms", "production_ms", "time_ns",
)
SHADOW_MAXLEN = 50_000  # entries per candidate and camera (MAXLEN ~): a day of one frame every 2 s

# Fields of each recalibrate (drift) event.
DRIFT_FIELDS = ("camera", "signal", "value", "low", "high", "baseline", "time_ns", "worker")
