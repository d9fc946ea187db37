"""Shadow report and promotion gate: the report's figures, each gate condition, and the CLI on real Redis."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import redis
import torch

from linewatch.contract import SHADOW_FIELDS, VERDICT_CONFIRMED, VERDICT_FALSE_ALARM, RedisKeys
from linewatch.errors import ModelIntegrityError
from model_store.calibration import normals_needed
from model_store.cli import main
from model_store.manifest import Calibration
from model_store.registry import create_model
from model_store.shadow import (
    GatePolicy, ShadowPair, build_report, gate, newest_verdicts, parse_entry, policy_bound,
)
from model_store.store import ModelStore

PROD = "ae@v0001"
CAND = "ae@v0002"


def _frames(camera: str, n: int, seed: int = 0, ng_every: int | None = 10) -> list[ShadowPair]:
    """Production results of one camera: varied scores, every `ng_every`-th frame anomalous (None: none); candidate = production."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        ng = ng_every is not None and i % ng_every == 0
        score = float(rng.uniform(0.6, 0.99) if ng else rng.uniform(0.01, 0.45))
        out.append(ShadowPair(camera, f"0-{i}", i, PROD, score, ng, score, ng, 4.0, 2.0, 0))
    return out


def _policy(**kw) -> GatePolicy:
    return GatePolicy(**{"min_frames": 100, "far_bound": 0.05, "bound_source": "test", **kw})


def _failed(report, policy) -> dict[str, object]:
    passed, failed = gate(report, policy)
    assert passed == (not failed)
    return {f.condition: f for f in failed}


# ---- the report -----------------------------------------------------------------------------------------
def test_identical_candidate_agrees_on_everything_and_passes() -> None:
    pairs = _frames("cam-a", 120) + _frames("cam-b", 130, seed=1)
    r = build_report(pairs, {}, CAND, PROD)
    assert r.frames == {"cam-a": 120, "cam-b": 130} and r.total == 250
    assert r.agreement == 1.0 and r.agreement_per_camera == {"cam-a": 1.0, "cam-b": 1.0}
    assert r.spearman == pytest.approx(1.0)
    assert r.table["ok_ng"] == 0 and r.table["ng_ok"] == 0 and r.table["ng_ng"] == 25
    assert r.normal_frames == 225 and r.alarms_on_normal == 0 and r.alarm_rate == 0.0
    assert r.alarm_interval[0] == 0.0 and r.alarm_upper_bound == pytest.approx(1 - 0.05 ** (1 / 225))
    assert r.compute_ms["candidate"]["mean"] == 4.0 and r.compute_ms["production"]["p95"] == 2.0
    assert gate(r, _policy()) == (True, [])
    text = r.text()
    assert "cam-b" in text and "100.00 %" in text and "Spearman): 1.000" in text
    assert json.loads(json.dumps(r.to_json()))["total_frames"] == 250


def test_damaged_candidate_is_refused_with_the_condition_named() -> None:
    rng = np.random.default_rng(3)
    pairs = []
    for p in _frames("cam-a", 200):  # damaged weights: scores unrelated to production's, alarms on normal frames
        s = float(rng.uniform(0, 1))
        pairs.append(replace(p, candidate_score=s, candidate_ng=s >= 0.5, candidate_ms=9.0))
    r = build_report(pairs, {}, CAND, PROD)
    assert r.agreement < 0.7 and abs(r.spearman) < 0.3
    assert r.alarms_on_normal == r.table["ok_ng"] > 50
    lo, hi = r.alarm_interval
    assert lo < r.alarm_rate < hi and r.alarm_upper_bound < hi  # the one-sided bound is tighter than the two-sided end
    failed = _failed(r, _policy())
    assert set(failed) == {"alarm_rate_bound"}
    assert failed["alarm_rate_bound"].figure == r.alarm_upper_bound and failed["alarm_rate_bound"].bound == 0.05
    assert "alarm_rate_bound" in str(failed["alarm_rate_bound"])


def test_feedback_verdicts_enter_the_report() -> None:
    pairs = _frames("cam-a", 120)
    pairs[0] = replace(pairs[0], candidate_ng=False, candidate_score=0.2)  # confirmed, production caught, candidate missed
    pairs[1] = replace(pairs[1], candidate_ng=True, candidate_score=0.7)  # a false alarm the candidate raises
    feedback = [
        {"camera": "cam-a", "frame_id": "0-0", "verdict": VERDICT_CONFIRMED},
        {"camera": "cam-a", "frame_id": "0-10", "verdict": VERDICT_FALSE_ALARM},
        {"camera": "cam-a", "frame_id": "0-10", "verdict": VERDICT_CONFIRMED},  # the newest verdict wins
        {"camera": "cam-a", "frame_id": "0-1", "verdict": VERDICT_FALSE_ALARM},
        {"camera": "cam-b", "frame_id": "0-20", "verdict": VERDICT_CONFIRMED},  # another camera's frame
        {"camera": "cam-a", "frame_id": "0-30", "verdict": "maybe"},  # not a verdict
    ]
    verdicts = newest_verdicts(feedback)
    assert verdicts[("cam-a", "0-10")] == VERDICT_CONFIRMED and ("cam-a", "0-30") not in verdicts
    r = build_report(pairs, verdicts, CAND, PROD)
    assert r.confirmed == {"marked": 2, "candidate_ng": 1, "production_ng": 2, "missed_production_caught": ["cam-a/0-0"]}
    assert r.false_alarms == {"marked": 1, "candidate_ng": 1, "production_ng": 0}
    failed = _failed(r, _policy())
    assert set(failed) == {"missed_confirmed"} and "cam-a/0-0" in failed["missed_confirmed"].detail
    assert gate(r, _policy(max_missed_confirmed=1))[0]


def test_pairs_against_another_production_version_are_skipped() -> None:
    pairs = _frames("cam-a", 10) + [replace(p, production_model="ae@v0000") for p in _frames("cam-a", 5)]
    r = build_report(pairs, {}, CAND, PROD, skipped={"unreadable": 2})
    assert r.frames == {"cam-a": 10} and r.skipped == {"other_production": 5, "unreadable": 2}
    assert build_report(pairs, {}, CAND, None).frames == {"cam-a": 15}


# ---- the gate, one condition at a time ---------------------------------------------------------------
def test_gate_frames_per_camera() -> None:
    r = build_report(_frames("cam-a", 120) + _frames("cam-b", 99), {}, CAND, PROD)
    failed = _failed(r, _policy())
    assert set(failed) == {"frames_per_camera"} and (failed["frames_per_camera"].figure, failed["frames_per_camera"].bound) == (99, 100)
    assert "cam-b" in failed["frames_per_camera"].detail
    assert gate(r, _policy(min_frames=99))[0]
    failed = _failed(r, _policy(min_frames=99, cameras=("cam-a", "cam-c")))  # a camera asked for with no shadow at all
    assert set(failed) == {"frames_per_camera"} and failed["frames_per_camera"].figure == 0
    assert {f.condition for f in gate(build_report([], {}, CAND, PROD), _policy())[1]} == {"frames_per_camera", "alarm_rate_bound"}


def test_gate_alarm_bound_at_the_edge() -> None:
    # no candidate alarm on n production-normal frames: bound 1 - 0.05^(1/n), at most 0.05 from n_needed frames on
    n = normals_needed(0.05, 0.95)
    at_edge = build_report(_frames("cam-a", n, ng_every=None), {}, CAND, PROD)
    short = build_report(_frames("cam-a", n - 1, ng_every=None), {}, CAND, PROD)
    assert at_edge.normal_frames == n and at_edge.alarm_upper_bound <= 0.05 < short.alarm_upper_bound
    assert gate(at_edge, _policy(min_frames=1))[0]
    assert set(_failed(short, _policy(min_frames=1))) == {"alarm_rate_bound"}


def test_policy_bound_says_where_it_came_from() -> None:
    cal = _calibration(far_bound=0.02, target_far=0.01)
    assert policy_bound(cal, 0.001) == (0.02, "production calibration far_bound")
    bound, source = policy_bound(cal.model_copy(update={"far_bound": None}), 0.001)
    assert bound == 0.01 and "target_far" in source
    bound, source = policy_bound(cal.model_copy(update={"far_bound": None, "target_far": None}), 0.001)
    assert bound == 0.001 and "LW_TARGET_FAR" in source
    assert policy_bound(None, 0.003)[0] == 0.003


def test_entries_parse_in_the_contract_shape() -> None:
    entry = _entry(_frames("cam-a", 1)[0])
    assert set(entry) == set(SHADOW_FIELDS)
    pair = parse_entry(entry)
    assert pair == _frames("cam-a", 1)[0]
    assert parse_entry({k: v for k, v in entry.items() if k != "candidate_score"}) is None
    assert parse_entry({**entry, "candidate_score": "nan"}) is None
    assert parse_entry({**entry, "seq": "x"}) is None


def test_shadow_key_names() -> None:
    keys = RedisKeys("lw")
    assert keys.shadow("ae@v0002", "cam-1") == "lw:shadow:ae@v0002:cam-1"
    assert keys.shadow_pattern("ae@v0002") == "lw:shadow:ae@v0002:*"
    for bad in ("ae:x@v0002", "ae"):
        with pytest.raises(ValueError):
            keys.shadow(bad, "cam-1")


# ---- the alias file keeps evidence, old files still read -----------------------------------------------
def test_alias_evidence_survives_rollback_and_old_files_read(tmp_path: Path) -> None:
    store = _store(tmp_path)
    alias_file = tmp_path / "store" / "ae" / "aliases" / "production.json"
    assert "evidence" not in json.loads(alias_file.read_text())  # a promotion without evidence writes the old shape
    store.promote("ae", "v0002", evidence={"shadow": {"agreement": 1.0}})
    assert store.alias_evidence("ae")[-1]["shadow"] == {"agreement": 1.0}
    assert store.alias_evidence("ae")[-1]["version"] == "v0002" and store.alias_evidence("ae")[-1]["previous"] == "v0001"
    assert store.rollback("ae") == "v0001" and len(store.alias_evidence("ae")) == 1
    alias_file.write_text(json.dumps({"version": "v0001", "history": []}))  # an old alias file
    assert store.resolve("ae@production") == ("ae", "v0001") and store.alias_evidence("ae") == []
    alias_file.write_text(json.dumps({"version": "v0001", "history": [], "evidence": ["x"]}))
    with pytest.raises(ModelIntegrityError, match="evidence"):
        store.resolve("ae@production")


# ---- the CLI on real Redis ---------------------------------------------------------------------------------
def test_shadow_report_and_gated_promote_on_redis(
    tmp_path: Path, redis_url: str, redis_prefix: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _store(tmp_path)
    store.promote("ae", "v0003", alias="staging")  # a third version: the damaged candidate
    monkeypatch.setenv("LW_SHADOW_MIN_FRAMES", "60")
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    keys = RedisKeys(redis_prefix)
    base = ["--store", str(tmp_path / "store")]
    flags = ["--redis-url", redis_url, "--redis-prefix", redis_prefix]
    capsys.readouterr()  # the set-up's log lines

    def write(candidate: str, pairs: list[ShadowPair]) -> None:
        for p in pairs:
            client.xadd(keys.shadow(candidate, p.camera), _entry(p))

    def run(*args: str) -> tuple[int, str, str]:
        status = main([*base, *args, *flags])
        out = capsys.readouterr()
        return status, out.out, out.err

    write(CAND, _frames("cam-a", 70) + _frames("cam-b", 40, seed=1))
    client.xadd(keys.shadow(CAND, "cam-b"), {"camera": "cam-b", "frame_id": "broken"})  # unreadable: counted, skipped
    client.xadd(keys.feedback, {"camera": "cam-a", "frame_id": "0-0", "verdict": VERDICT_CONFIRMED, "note": "", "time_ns": "1", "user": "op"})

    status, out, _ = run("shadow", "report", CAND, "--json")
    report = json.loads(out)
    assert status == 0 and report["frames"] == {"cam-a": 70, "cam-b": 40} and report["agreement"] == 1.0
    assert report["production"] == PROD and report["skipped"]["unreadable"] == 1 and report["confirmed"]["marked"] == 1
    assert report["gate"]["passed"] is False and report["gate"]["policy"]["far_bound"] == 0.06
    assert "far_bound of ae@v0001" in report["gate"]["policy"]["bound_source"]
    status, out, _ = run("shadow", "report", CAND, "--cameras", "cam-a")
    assert status == 0 and "cam-a" in out and "cam-b" not in out and "promotion gate" in out and "passes" in out

    status, out, err = run("promote", CAND, "--to", "production", "--require-shadow")
    assert status == 3 and json.loads(out)["refused"] is True
    assert "frames_per_camera" in err and "cam-b has 40 shadow frames" in err
    assert store.resolve("ae@production") == ("ae", "v0001") and store.alias_evidence("ae") == []

    write(CAND, _frames("cam-b", 30, seed=2))
    status, out, _ = run("promote", CAND, "production", "--require-shadow")  # today's positional alias still works
    assert status == 0 and json.loads(out)["gate"]["passed"] is True
    assert store.resolve("ae@production") == ("ae", "v0002")
    evidence = store.alias_evidence("ae")[-1]
    assert evidence["version"] == "v0002" and evidence["shadow"]["frames"] == {"cam-a": 70, "cam-b": 70}
    assert evidence["gate"]["passed"] is True
    assert main([*base, "show", "ae"]) == 0
    assert json.loads(capsys.readouterr().out)["alias_evidence"]["production"][-1]["version"] == "v0002"

    # the damaged candidate, shadowed against the new production, alarms on normal frames
    damaged = [replace(p, production_model=CAND, candidate_ng=i % 3 == 0) for i, p in enumerate(_frames("cam-a", 80))]
    write("ae@v0003", damaged)
    status, _, err = run("promote", "ae@staging", "--to", "production", "--require-shadow")
    assert status == 3 and "alarm_rate_bound" in err and "frames_per_camera" not in err
    assert store.resolve("ae@production") == ("ae", "v0002")

    assert main([*base, "rollback", "ae"]) == 0
    assert store.resolve("ae@production") == ("ae", "v0001") and len(store.alias_evidence("ae")) == 1
    status, _, _ = run("promote", "ae@v0003", "staging")  # without --require-shadow: as before (no Redis read)
    assert status == 0
    client.close()


def test_unreachable_redis_is_a_reason_not_a_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _store(tmp_path)
    argv = ["--store", str(tmp_path / "store"), "promote", CAND, "--require-shadow", "--redis-url", "redis://127.0.0.1:1/0"]
    assert main(argv) == 2
    assert "ServiceUnavailable" in capsys.readouterr().err
    assert ModelStore(tmp_path / "store").resolve("ae@production") == ("ae", "v0001")


# ---- helpers ---------------------------------------------------------------------------------------------
def _entry(p: ShadowPair) -> dict[str, str]:
    """A shadow stream entry as a worker will write it (contract SHADOW_FIELDS)."""
    return {
        "camera": p.camera, "frame_id": p.frame_id, "seq": str(p.seq), "production_model": p.production_model,
        "production_score": repr(p.production_score), "production_anomalous": "1" if p.production_ng else "0",
        "candidate_score": repr(p.candidate_score), "candidate_anomalous": "1" if p.candidate_ng else "0",
        "candidate_ms": repr(p.candidate_ms), "production_ms": repr(p.production_ms), "time_ns": str(p.time_ns),
    }


def _calibration(**kw) -> Calibration:
    base = {"threshold": 0.5, "scale": 0.1, "normal_median": 0.1, "method": "order_statistic", "pixel_threshold": 0.5,
            "n_normal": 100, "flagged_normal_fraction": 0.0, "target_far": 0.05, "confidence": 0.95,
            "far_bound": 0.06, "exceedances": 0, "n_needed": 59}
    return Calibration(**{**base, **kw})


def _store(tmp_path: Path) -> ModelStore:
    """ae@v0001 (production, calibrated: far_bound 0.06), v0002 and v0003: tiny autoencoders."""
    store = ModelStore(tmp_path / "store")
    kwargs = {"width": 4, "latent": 8, "depth": 2}
    for seed in range(3):
        torch.manual_seed(seed)
        module = create_model("autoencoder", **kwargs)
        store.publish("ae", module, {"architecture": "autoencoder", "kwargs": kwargs, "input_size": (32, 32),
                                     "channels": module.in_channels, "score_definition": module.score_definition,
                                     "calibration": _calibration()})
    store.promote("ae", "v0001")
    assert math.isclose(store.manifest(PROD).calibration.far_bound, 0.06)
    return store
