"""Per-camera commissioning from the live stream: the raw scores a worker served -> each camera's threshold.

    linewatch-models calibrate REF --from-stream CAM[,CAM...] --frames N [--outliers refuse|exclude|include]

For each camera, the newest N entries of P:history:<camera> that the model version REF resolves to
served (`model_name`, `model_version` of the entry) are the calibration set; their `score_raw` is
what the worker computed. Operator verdicts from P:feedback (newest verdict per camera and
frame_id) adjust it: frames marked `false_alarm` join as normal frames (looked up in the rest of
the history, then in P:alerts, when older than the window) and are exempt from the outlier guard;
frames marked `confirmed` (real defects) are left out. The threshold is fitted for the target
false-alarm rate exactly as offline (model_store.calibration.far_threshold), converted to the
version's normalised scale, and written into that version's camera_thresholds.json; the fit's
details go to camera_calibrations.json beside it.

Outlier guard (a camera's window should hold normal frames only): a frame is an obvious outlier
when its raw score exceeds `median + 3 (q99 - median)` of the window. For the score
distributions seen here (maxima of anomaly maps: Gumbel-like, light tails) a normal frame lands
there about once in 10^5 to 10^6 frames, while a window with up to 1 % defective frames keeps q99,
and with it the fence, where the normals put it. Windows under 100 frames make q99 the largest
score and the guard blind; they are too short to promise much anyway. By default a camera with
outliers is refused (reported, nothing written); `--outliers exclude` fits without them,
`--outliers include` keeps them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import redis
import structlog

from linewatch.contract import VERDICT_CONFIRMED, VERDICT_FALSE_ALARM, Alert, RedisKeys
from linewatch.errors import LinewatchError, ModelIntegrityError, ServiceUnavailable
from model_store.calibration import FarThreshold, far_threshold, shortfall
from model_store.manifest import Calibration
from model_store.store import ModelStore, normalise_scores

log = structlog.get_logger(__name__)

OUTLIER_QUANTILE = 0.99
OUTLIER_REACH = 3.0
READ_CHUNK = 1000  # stream entries per XRANGE / XREVRANGE
NORMALISED_EDGE = 1e-9  # within 20.7 logistic scales of the version's threshold: float64 still resolves 1e-7 scale there

OutlierPolicy = Literal["refuse", "exclude", "include"]


@dataclass(frozen=True, slots=True)
class Served:
    """One frame as the worker served it (a history or alert entry)."""

    frame_id: str
    seq: int
    score_raw: float
    anomalous: bool

    def to_json(self) -> dict[str, Any]:
        return {"frame_id": self.frame_id, "seq": self.seq, "score_raw": self.score_raw}


# ---- pure: the guard and the fit ----------------------------------------------------------------
def outlier_fence(scores: np.ndarray) -> float:
    """median + 3 (q99 - median) of the window's raw scores."""
    s = np.asarray(scores, np.float64)
    med = float(np.median(s))
    return med + OUTLIER_REACH * (float(np.quantile(s, OUTLIER_QUANTILE)) - med)


@dataclass
class CameraResult:
    """What commissioning did for one camera, and why."""

    camera: str
    requested: int
    status: Literal["calibrated", "refused"] = "refused"
    reason: str | None = None
    window: list[Served] = field(default_factory=list)  # newest frames served by the version
    false_alarms_added: list[Served] = field(default_factory=list)  # operator-marked, from outside the window
    false_alarms_missing: list[str] = field(default_factory=list)  # marked, but their scores are gone
    confirmed_excluded: list[str] = field(default_factory=list)
    outliers: list[Served] = field(default_factory=list)
    fence: float | None = None
    fit: FarThreshold | None = None
    threshold: float | None = None  # normalised, what camera_thresholds.json holds
    other_versions: int = 0  # entries of other model versions met while reading
    unreadable: int = 0

    def to_json(self, policy: OutlierPolicy) -> dict[str, Any]:
        fit = self.fit
        return {
            "camera": self.camera, "status": self.status, "reason": self.reason,
            "threshold": self.threshold, "raw_threshold": fit.threshold if fit else None,
            "n": fit.n if fit else 0, "exceedances": fit.exceedances if fit else None,
            "far_bound": fit.bound if fit else None, "target_far": fit.target if fit else None,
            "confidence": fit.confidence if fit else None, "n_needed": fit.n_needed if fit else None,
            "frames_requested": self.requested, "frames_read": len(self.window),
            "served_anomalous": sum(f.anomalous for f in self.window),
            "false_alarms_added": [f.to_json() for f in self.false_alarms_added],
            "false_alarms_missing": self.false_alarms_missing, "confirmed_excluded": self.confirmed_excluded,
            "outlier_policy": policy, "outlier_fence": self.fence, "outliers": [f.to_json() for f in self.outliers],
            "other_versions_skipped": self.other_versions, "unreadable_entries": self.unreadable,
            "window_seq": [self.window[-1].seq, self.window[0].seq] if self.window else None,
            "warning": shortfall(fit) if fit else None,
            "calibrated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }


def fit_camera(
    result: CameraResult, verdicts: dict[str, str], cal: Calibration, target: float, confidence: float, policy: OutlierPolicy
) -> CameraResult:
    """Guard the window, fit the threshold, convert it to the normalised scale (fills `result`)."""
    normal = [f for f in result.window if verdicts.get(f.frame_id) != VERDICT_CONFIRMED]
    result.confirmed_excluded = [f.frame_id for f in result.window if verdicts.get(f.frame_id) == VERDICT_CONFIRMED]
    vouched = {f.frame_id for f in normal if verdicts.get(f.frame_id) == VERDICT_FALSE_ALARM}
    if len(normal) >= 2:
        result.fence = outlier_fence(np.array([f.score_raw for f in normal]))
        result.outliers = [f for f in normal if f.score_raw > result.fence and f.frame_id not in vouched]
    if result.outliers and policy == "refuse":
        result.reason = (f"{len(result.outliers)} frame(s) score above the outlier fence {result.fence:.6g} "
                         "(median + 3 (q99 - median)); look at them, then rerun with --outliers exclude or include")
        return result
    if policy == "exclude":
        dropped = {f.frame_id for f in result.outliers}
        normal = [f for f in normal if f.frame_id not in dropped]
    scores = np.array([f.score_raw for f in normal + result.false_alarms_added])
    if scores.size < 2:
        result.reason = f"{scores.size} usable frame(s) served by this model version; need at least 2"
        return result
    result.fit = far_threshold(scores, target, confidence)
    normalised = float(normalise_scores(np.array([result.fit.threshold]), cal)[0])
    if not NORMALISED_EDGE < normalised < 1 - NORMALISED_EDGE:
        result.reason = (f"the camera's raw threshold {result.fit.threshold:.6g} lies beyond what this version's "
                         f"normalised scale expresses ({normalised}); calibrate the version on this camera's frames instead")
        return result
    result.threshold, result.status = normalised, "calibrated"
    return result


# ---- Redis: reading what the workers and operators wrote -------------------------------------------
def _text(value: str | bytes) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _entries(client: redis.Redis, key: str, newest_first: bool) -> Iterator[tuple[str, dict[str, str]]]:
    """All entries of a stream in chunks, newest or oldest first, as text whatever the client decodes."""
    cursor = "+" if newest_first else "-"
    while True:
        if newest_first:
            chunk = client.xrevrange(key, max=cursor, min="-", count=READ_CHUNK)
        else:
            chunk = client.xrange(key, min=cursor, max="+", count=READ_CHUNK)
        if not chunk:
            return
        yield from ((_text(entry_id), {_text(k): _text(v) for k, v in fields.items()}) for entry_id, fields in chunk)
        last = _text(chunk[-1][0])
        cursor = f"({last}"
        if len(chunk) < READ_CHUNK:
            return


def read_verdicts(client: redis.Redis, keys: RedisKeys, camera: str) -> dict[str, str]:
    """frame_id -> the newest operator verdict on one of the camera's frames."""
    verdicts: dict[str, str] = {}
    for _, fields in _entries(client, keys.feedback, newest_first=False):
        if fields.get("camera") == camera and fields.get("verdict") in (VERDICT_CONFIRMED, VERDICT_FALSE_ALARM):
            verdicts[fields.get("frame_id", "")] = fields["verdict"]
    return verdicts


def _served(fields: dict[str, str]) -> Served | None:
    """A history entry as Served; None when unreadable."""
    try:
        score = float(fields["score_raw"])
        entry = Served(fields["frame_id"], int(fields.get("seq", -1)), score, fields.get("anomalous") == "1")
    except (KeyError, ValueError):
        return None
    return entry if np.isfinite(score) else None


def read_window(
    client: redis.Redis, keys: RedisKeys, result: CameraResult, name: str, version: str, wanted: set[str]
) -> dict[str, Served]:
    """Fill result.window (newest first) from the history; return the `wanted` frames met beyond it."""
    beyond: dict[str, Served] = {}
    pending = set(wanted)
    for _, fields in _entries(client, keys.history(result.camera), newest_first=True):
        full = len(result.window) >= result.requested
        if full and not pending:
            break
        if (fields.get("model_name"), fields.get("model_version")) != (name, version):
            result.other_versions += 1
            continue
        entry = _served(fields)
        if entry is None:
            result.unreadable += 1
        elif not full:
            result.window.append(entry)
            pending.discard(entry.frame_id)
        elif entry.frame_id in pending:
            beyond[entry.frame_id] = entry
            pending.discard(entry.frame_id)
    return beyond


def read_alerted(client: redis.Redis, keys: RedisKeys, camera: str, name: str, version: str, wanted: set[str]) -> dict[str, Served]:
    """Frames in `wanted` found in the alerts stream (they outlive the history of busy cameras)."""
    found: dict[str, Served] = {}
    for _, fields in _entries(client, keys.alerts, newest_first=True):
        if not wanted - found.keys():
            break
        try:
            alert = Alert.from_json(fields.get("alert", "").encode())
        except (LinewatchError, ValueError, TypeError, KeyError):
            continue  # not ours to judge here; the alert consumer reports unreadable alerts
        if (alert.camera, alert.model_name, alert.model_version) == (camera, name, version) and alert.frame_id in wanted:
            found[alert.frame_id] = Served(alert.frame_id, alert.frame_seq, alert.score_raw, True)
    return found


# ---- the command ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class StreamRequest:
    ref: str
    cameras: list[str]
    frames: int
    target: float
    confidence: float
    outliers: OutlierPolicy = "refuse"


def commission(store: ModelStore, client: redis.Redis, keys: RedisKeys, req: StreamRequest) -> dict[str, Any]:
    """Fit and store each camera's threshold; returns the JSON report (refused cameras included)."""
    name, version = store.resolve(req.ref)
    cal = store.manifest(f"{name}@{version}").calibration
    if cal is None:
        raise ModelIntegrityError(f"{name}@{version} has no calibration to put camera thresholds on")
    results = []
    try:
        for camera in req.cameras:
            result = CameraResult(camera, req.frames)
            verdicts = read_verdicts(client, keys, camera)
            marked = {fid for fid, v in verdicts.items() if v == VERDICT_FALSE_ALARM}
            beyond = read_window(client, keys, result, name, version, marked)
            in_window = {f.frame_id for f in result.window}
            missing = marked - in_window - beyond.keys()
            beyond |= read_alerted(client, keys, camera, name, version, missing) if missing else {}
            result.false_alarms_added = [beyond[fid] for fid in sorted(beyond)]
            result.false_alarms_missing = sorted(marked - in_window - beyond.keys())
            results.append(fit_camera(result, verdicts, cal, req.target, req.confidence, req.outliers))
    except redis.RedisError as exc:
        raise ServiceUnavailable(f"Redis: {exc}") from exc
    fitted = {r.camera: r.threshold for r in results if r.threshold is not None}
    thresholds = store.camera_thresholds(name, version)
    if fitted:
        thresholds |= fitted
        store.set_camera_thresholds(f"{name}@{version}", thresholds)
        # A camera commissioned anew is normal as it is now: its drift baseline is learned afresh.
        try:
            client.delete(*(keys.drift(camera) for camera in fitted))
        except redis.RedisError as exc:
            raise ServiceUnavailable(f"Redis: {exc}") from exc
    reports = [r.to_json(req.outliers) for r in results]
    store.record_camera_calibrations(name, version, {r["camera"]: r for r in reports if r["status"] == "calibrated"})
    warnings = [f"{r['camera']}: refused: {r['reason']}" for r in reports if r["status"] == "refused"]
    warnings += [f"{r['camera']}: {r['warning']}" for r in reports if r["warning"]]
    warnings += [f"{r['camera']}: only {r['frames_read']} of {r['frames_requested']} frames served by {name}@{version}"
                 for r in reports if r["frames_read"] < r["frames_requested"]]
    for text in warnings:
        log.warning("commissioning", detail=text)
    return {"model": name, "version": version, "cameras": reports, "camera_thresholds": thresholds, "warnings": warnings}
