"""Shadow report and promotion gate: does a candidate version agree with production on the line's frames?

    linewatch-models shadow report CANDIDATE [--against REF] [--cameras CAM,...] [--json]
    linewatch-models promote CANDIDATE --to production --require-shadow

Input: the entries of P:shadow:<candidate>:<camera> (contract SHADOW_FIELDS: one frame scored by
production and by the candidate) and the operators' verdicts from P:feedback (newest verdict per
camera and frame_id). Workers do not write the shadow streams yet (next round); everything below
the Redis section is pure and works on any list of pairs.

The report (build_report):
- frames compared per camera; verdict agreement and the 2x2 table production OK/NG x candidate OK/NG;
- Spearman rank correlation of the two normalised scores (None when fewer than 2 frames or a
  constant score: rank correlation is undefined there);
- the candidate's alarm rate on frames production scored normal: k alarms of n such frames, with
  the two-sided Clopper-Pearson interval at `confidence` (model_store.calibration.clopper_pearson)
  and the one-sided upper bound at `confidence` (calibration.far_upper_bound), the same kind of
  bound a calibration states as `far_bound`, so the gate compares like with like;
- on frames operators marked: the candidate's verdicts on confirmed defects and on false alarms,
  and the confirmed defects production caught that the candidate missed (by frame);
- compute per frame (mean, p50, p95 ms) of candidate and production.

The gate (gate(report, policy)) passes when every condition holds, else names each that failed
with its figure and bound:
- frames_per_camera: every camera (those asked for, else those in the report) has >= min_frames;
- alarm_rate_bound: the candidate's one-sided alarm-rate upper bound <= the production version's
  calibration `far_bound` (its `target_far` when a manifest has no bound, the LW_TARGET_FAR setting
  when it has neither: policy_bound says which);
- missed_confirmed: confirmed defects production caught and the candidate missed <= max_missed_confirmed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import redis
from scipy import stats

from linewatch.contract import VERDICT_CONFIRMED, VERDICT_FALSE_ALARM, RedisKeys
from model_store.calibration import clopper_pearson, far_upper_bound
from model_store.manifest import Calibration
from model_store.settings import DEFAULT_CONFIDENCE

CELLS = ("ok_ok", "ok_ng", "ng_ok", "ng_ng")  # production verdict _ candidate verdict


@dataclass(frozen=True, slots=True)
class ShadowPair:
    """One frame scored by production and by the candidate (a shadow stream entry)."""

    camera: str
    frame_id: str
    seq: int
    production_model: str
    production_score: float
    production_ng: bool
    candidate_score: float
    candidate_ng: bool
    candidate_ms: float
    production_ms: float
    time_ns: int = 0


def parse_entry(fields: Mapping[str, str]) -> ShadowPair | None:
    """A shadow stream entry (SHADOW_FIELDS, strings) as a pair; None when a field is missing or unreadable."""
    try:
        pair = ShadowPair(
            camera=fields["camera"], frame_id=fields["frame_id"], seq=int(fields["seq"]),
            production_model=fields["production_model"], production_score=float(fields["production_score"]),
            production_ng=fields["production_anomalous"] == "1", candidate_score=float(fields["candidate_score"]),
            candidate_ng=fields["candidate_anomalous"] == "1", candidate_ms=float(fields["candidate_ms"]),
            production_ms=float(fields["production_ms"]), time_ns=int(fields.get("time_ns") or 0),
        )
    except (KeyError, ValueError):
        return None
    finite = np.isfinite([pair.production_score, pair.candidate_score, pair.candidate_ms, pair.production_ms]).all()
    return pair if finite else None


def newest_verdicts(feedback: Iterable[Mapping[str, str]]) -> dict[tuple[str, str], str]:
    """(camera, frame_id) -> verdict, from feedback entries oldest first (the newest verdict wins)."""
    out: dict[tuple[str, str], str] = {}
    for fields in feedback:
        if fields.get("verdict") in (VERDICT_CONFIRMED, VERDICT_FALSE_ALARM):
            out[(fields.get("camera", ""), fields.get("frame_id", ""))] = fields["verdict"]
    return out


# ---- the report (pure) ------------------------------------------------------------------------------
@dataclass
class Report:
    """What the shadow showed; every figure is recomputed from the pairs by build_report."""

    candidate: str
    production: str | None
    confidence: float
    frames: dict[str, int]  # camera -> frames compared
    agreement: float | None  # share of frames with the same verdict
    agreement_per_camera: dict[str, float]
    table: dict[str, int]  # CELLS: production OK/NG x candidate OK/NG
    spearman: float | None
    normal_frames: int  # frames production scored normal
    alarms_on_normal: int  # ... of which the candidate called anomalous
    alarm_rate: float | None
    alarm_interval: tuple[float, float] | None  # two-sided Clopper-Pearson at `confidence`
    alarm_upper_bound: float | None  # one-sided at `confidence` (comparable with a calibration's far_bound)
    confirmed: dict[str, Any]  # operator-confirmed defects among the frames
    false_alarms: dict[str, Any]  # operator-marked false alarms among the frames
    compute_ms: dict[str, dict[str, float]]  # candidate / production -> mean, p50, p95
    skipped: dict[str, int] = field(default_factory=dict)  # other_production, unreadable

    @property
    def total(self) -> int:
        return sum(self.frames.values())

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["total_frames"] = self.total
        return out

    def summary(self) -> dict[str, Any]:
        """The figures the gate looks at, small enough for the alias history."""
        return {
            "candidate": self.candidate, "production": self.production, "frames": self.frames,
            "agreement": self.agreement, "spearman": self.spearman, "normal_frames": self.normal_frames,
            "alarms_on_normal": self.alarms_on_normal, "alarm_upper_bound": self.alarm_upper_bound,
            "confidence": self.confidence, "confirmed_missed": len(self.confirmed["missed_production_caught"]),
            "compute_ms_mean": {k: v.get("mean") for k, v in self.compute_ms.items()},
        }

    def text(self) -> str:
        return render_text(self)


def _spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    if a.size < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None  # rank correlation is undefined for a constant score
    return float(stats.spearmanr(a, b).statistic)


def _cost(ms: np.ndarray) -> dict[str, float]:
    if ms.size == 0:
        return {}
    return {"mean": float(ms.mean()), "p50": float(np.percentile(ms, 50)), "p95": float(np.percentile(ms, 95))}


def _marked(pairs: list[ShadowPair], verdicts: Mapping[tuple[str, str], str]) -> tuple[dict[str, Any], dict[str, Any]]:
    conf = [p for p in pairs if verdicts.get((p.camera, p.frame_id)) == VERDICT_CONFIRMED]
    fa = [p for p in pairs if verdicts.get((p.camera, p.frame_id)) == VERDICT_FALSE_ALARM]
    missed = [f"{p.camera}/{p.frame_id}" for p in conf if p.production_ng and not p.candidate_ng]
    confirmed = {
        "marked": len(conf), "candidate_ng": sum(p.candidate_ng for p in conf),
        "production_ng": sum(p.production_ng for p in conf), "missed_production_caught": missed,
    }
    false_alarms = {
        "marked": len(fa), "candidate_ng": sum(p.candidate_ng for p in fa), "production_ng": sum(p.production_ng for p in fa),
    }
    return confirmed, false_alarms


def build_report(
    pairs: Iterable[ShadowPair],
    verdicts: Mapping[tuple[str, str], str],
    candidate: str,
    production: str | None = None,
    confidence: float = DEFAULT_CONFIDENCE,
    skipped: Mapping[str, int] | None = None,
) -> Report:
    """The report over paired results; with `production` (name@version) other production versions' pairs are skipped."""
    skip = {"other_production": 0, "unreadable": 0, **(skipped or {})}
    kept: list[ShadowPair] = []
    for p in pairs:
        if production is not None and p.production_model != production:
            skip["other_production"] += 1  # production moved during the shadow: those frames compare another pair
        else:
            kept.append(p)
    frames: dict[str, int] = {}
    same: dict[str, int] = {}
    table = dict.fromkeys(CELLS, 0)
    for p in kept:
        frames[p.camera] = frames.get(p.camera, 0) + 1
        same[p.camera] = same.get(p.camera, 0) + (p.production_ng == p.candidate_ng)
        table[f"{'ng' if p.production_ng else 'ok'}_{'ng' if p.candidate_ng else 'ok'}"] += 1
    n_normal, k = table["ok_ok"] + table["ok_ng"], table["ok_ng"]
    confirmed, false_alarms = _marked(kept, verdicts)
    return Report(
        candidate=candidate, production=production, confidence=confidence, frames=frames,
        agreement=(table["ok_ok"] + table["ng_ng"]) / len(kept) if kept else None,
        agreement_per_camera={c: same[c] / n for c, n in frames.items()}, table=table,
        spearman=_spearman(np.array([p.production_score for p in kept]), np.array([p.candidate_score for p in kept])),
        normal_frames=n_normal, alarms_on_normal=k, alarm_rate=k / n_normal if n_normal else None,
        alarm_interval=clopper_pearson(k, n_normal, confidence) if n_normal else None,
        alarm_upper_bound=far_upper_bound(n_normal, k, confidence) if n_normal else None,
        confirmed=confirmed, false_alarms=false_alarms,
        compute_ms={"candidate": _cost(np.array([p.candidate_ms for p in kept])),
                    "production": _cost(np.array([p.production_ms for p in kept]))},
        skipped=skip,
    )


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f} %"


def render_text(r: Report) -> str:
    """The report as a readable table for a terminal."""
    lines = [f"shadow report: candidate {r.candidate} against production {r.production or '(any)'}", ""]
    lines.append(f"{'camera':<24}{'frames':>8}{'agreement':>12}")
    for cam in sorted(r.frames):
        lines.append(f"{cam:<24}{r.frames[cam]:>8}{_pct(r.agreement_per_camera[cam]):>12}")
    lines.append(f"{'all':<24}{r.total:>8}{_pct(r.agreement):>12}")
    t = r.table
    lines += ["", f"{'':<16}{'candidate OK':>14}{'candidate NG':>14}",
              f"{'production OK':<16}{t['ok_ok']:>14}{t['ok_ng']:>14}",
              f"{'production NG':<16}{t['ng_ok']:>14}{t['ng_ng']:>14}", ""]
    rho = "-" if r.spearman is None else f"{r.spearman:.3f}"
    lines.append(f"score rank correlation (Spearman): {rho}")
    ci = "-" if r.alarm_interval is None else f"[{_pct(r.alarm_interval[0])}, {_pct(r.alarm_interval[1])}]"
    lines.append(f"candidate alarms on production-normal frames: {r.alarms_on_normal} of {r.normal_frames} "
                 f"= {_pct(r.alarm_rate)}, {r.confidence:.0%} interval {ci}, one-sided bound {_pct(r.alarm_upper_bound)}")
    c, f = r.confirmed, r.false_alarms
    lines.append(f"operator-confirmed defects: {c['marked']}, candidate NG on {c['candidate_ng']}, production NG on "
                 f"{c['production_ng']}, missed by the candidate where production caught: {len(c['missed_production_caught'])}")
    lines.append(f"operator-marked false alarms: {f['marked']}, candidate NG on {f['candidate_ng']}, "
                 f"production NG on {f['production_ng']}")
    for who in ("candidate", "production"):
        cost = r.compute_ms.get(who) or {}
        if cost:
            lines.append(f"compute per frame, {who}: mean {cost['mean']:.2f} ms, p50 {cost['p50']:.2f}, p95 {cost['p95']:.2f}")
    if any(r.skipped.values()):
        lines.append(f"skipped entries: {r.skipped}")
    return "\n".join(lines)


# ---- the gate (pure) --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class GatePolicy:
    """What a shadow report must show before a promotion (ModelsSettings shadow_* and the production calibration)."""

    min_frames: int
    far_bound: float  # the production calibration's bound the candidate's alarm-rate bound must not exceed
    bound_source: str  # where far_bound came from (see policy_bound)
    max_missed_confirmed: int = 0
    cameras: tuple[str, ...] = ()  # cameras the report must cover (empty: those it has)


@dataclass(frozen=True, slots=True)
class Failure:
    """One gate condition that failed: its figure against its bound."""

    condition: str
    figure: float
    bound: float
    detail: str

    def __str__(self) -> str:
        return f"{self.condition}: {self.detail} ({self.figure:g} against {self.bound:g})"


def policy_bound(cal: Calibration | None, target_far: float) -> tuple[float, str]:
    """(bound, source): the production calibration's far_bound, else its target_far, else the setting's target."""
    if cal is not None and cal.far_bound is not None:
        return cal.far_bound, "production calibration far_bound"
    if cal is not None and cal.target_far is not None:
        return cal.target_far, "production calibration target_far (manifest has no far_bound)"
    return target_far, "LW_TARGET_FAR (production manifest states no false-alarm promise)"


def gate(report: Report, policy: GatePolicy) -> tuple[bool, list[Failure]]:
    """(passed, failed conditions); every condition is checked, so all reasons are given at once."""
    failed: list[Failure] = []
    cameras = policy.cameras or tuple(sorted(report.frames)) or ("(none)",)
    for cam in cameras:
        n = report.frames.get(cam, 0)
        if n < policy.min_frames:
            failed.append(Failure("frames_per_camera", n, policy.min_frames, f"camera {cam} has {n} shadow frames"))
    bound = report.alarm_upper_bound
    if bound is None or bound > policy.far_bound:
        failed.append(Failure(
            "alarm_rate_bound", 1.0 if bound is None else bound, policy.far_bound,
            f"candidate alarm-rate upper bound ({report.alarms_on_normal} alarms on {report.normal_frames} "
            f"production-normal frames) is above the {policy.bound_source}",
        ))
    missed = report.confirmed["missed_production_caught"]
    if len(missed) > policy.max_missed_confirmed:
        failed.append(Failure("missed_confirmed", len(missed), policy.max_missed_confirmed,
                              f"confirmed defects production caught and the candidate missed: {', '.join(missed[:10])}"))
    return not failed, failed


# ---- Redis: reading the shadow streams and the feedback -----------------------------------------------
def shadow_cameras(client: redis.Redis, keys: RedisKeys, candidate: str) -> list[str]:
    """Cameras with a shadow stream of `candidate` (name@version)."""
    head = keys.shadow(candidate, "")
    found = (k.decode() if isinstance(k, bytes) else k for k in client.scan_iter(match=keys.shadow_pattern(candidate), count=1000))
    return sorted(k[len(head):] for k in found)


def read_pairs(client: redis.Redis, keys: RedisKeys, candidate: str, cameras: Iterable[str], frames: int) -> tuple[list[ShadowPair], int]:
    """(pairs, unreadable entries): the newest `frames` entries of each camera's shadow stream."""
    pairs: list[ShadowPair] = []
    unreadable = 0
    for cam in cameras:
        for _, raw in client.xrevrange(keys.shadow(candidate, cam), count=frames):
            fields = {(k.decode() if isinstance(k, bytes) else k): (v.decode("utf-8", "replace") if isinstance(v, bytes) else v)
                      for k, v in raw.items()}
            pair = parse_entry(fields)
            if pair is None or pair.camera != cam:
                unreadable += 1
            else:
                pairs.append(pair)
    return pairs, unreadable


def read_feedback(client: redis.Redis, keys: RedisKeys) -> dict[tuple[str, str], str]:
    """(camera, frame_id) -> the newest operator verdict (the feedback stream is capped by the view)."""
    from model_store.commissioning import _entries  # the one chunked stream reader

    return newest_verdicts(fields for _, fields in _entries(client, keys.feedback, newest_first=False))
