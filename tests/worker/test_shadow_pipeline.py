"""Shadow roll-out on the real stack: workers score a candidate beside production (Kafka, Redis, worker).

Production is `synth@production`; candidates are new versions of it: one with identical weights
(must agree on every frame and pass the gate) and one with damaged but loadable weights (must be
refused by the gate, naming the condition), while production results keep flowing unchanged.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
import redis
from prometheus_client import REGISTRY
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from linewatch.contract import VERDICT_CONFIRMED, RedisKeys
from model_store.cli import main as models_cli
from model_store.shadow import build_report, read_feedback, read_pairs
from model_store.shadow_plans import ShadowBook, ShadowRefused
from model_store.store import ModelStore
from producer.app import produce_synthetic
from tests.worker.helpers import history, running_worker, wait_for_results
from worker.shadow import RolloutWatch
from worker.sinks import Debounce, Retention, ResultWriter

pytestmark = pytest.mark.integration


def _new_version(store: ModelStore, ref: str, damage: float = 0.0) -> str:
    """A new version of `ref`'s model with its weights (times 1 + damage: still loadable, scores differ)."""
    name, version = store.resolve(ref)
    manifest = store.manifest(f"{name}@{version}")
    weights = store.backend.read_bytes(f"{name}/{version}/{manifest.weights_file}")
    if damage:
        state = st_load(weights)
        weights = st_save({k: v * (1 + damage) if v.is_floating_point() else v for k, v in state.items()})
    fields = manifest.model_dump(exclude={"name", "version", "weights_sha256"})
    return store.publish_weights(name, weights, fields).version


def _shadow_count(candidate: str, outcome: str) -> float:
    return REGISTRY.get_sample_value("linewatch_worker_shadow_frames_total", {"candidate": candidate, "outcome": outcome}) or 0.0


@pytest.fixture
def private_store(model_root: Path, tmp_path: Path) -> Path:
    root = tmp_path / "store"
    shutil.copytree(model_root, root)
    return root


def test_candidates_scored_beside_production_and_gated(
    kafka_bootstrap, topic_base, redis_url, redis_prefix, redis_client, worker_settings, private_store, capsys, monkeypatch
) -> None:
    store = ModelStore(private_store)
    _, prod = store.resolve("synth@production")
    same, damaged = _new_version(store, "synth@production"), _new_version(store, "synth@production", damage=0.6)
    book = ShadowBook(store.backend, resolve=store.resolve)
    book.start(f"synth@{same}", "synth@production", [], 1.0, "test")
    book.start(f"synth@{damaged}", "synth@production", ["cam-*"], 1.0, "test")
    with pytest.raises(ShadowRefused, match="compares nothing"):
        book.start("synth@production", "synth@production", [], 1.0, "test")

    cams, frames = ["cam-1", "cam-2"], 40
    with running_worker(worker_settings(model_root=private_store, shadow_poll_s=0.2, shadow_queue_batches=64)) as worker:
        deadline = time.monotonic() + 60
        while len(worker.shadow.loaded()) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert worker.shadow.loaded() == sorted([f"synth@{same}", f"synth@{damaged}"])
        sent = produce_synthetic({"kafka_bootstrap": kafka_bootstrap, "topic_base": topic_base}, cameras=2,
                                 frames_per_camera=frames, fps=5)
        assert wait_for_results(redis_client, redis_prefix, cams, sent.sent) == sent.sent
        keys = RedisKeys(redis_prefix)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            written = sum(redis_client.xlen(keys.shadow(f"synth@{same}", c)) for c in cams)
            offered = written + _shadow_count(f"synth@{same}", "shed")
            if offered >= sent.sent:
                break
            time.sleep(0.2)

    # Production: every frame once, in order, by the production version, whatever the shadows did.
    for cam in cams:
        entries = history(redis_client, redis_prefix, cam)
        assert [int(e["seq"]) for e in entries] == list(range(frames))
        assert {e["model_version"] for e in entries} == {prod}

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    pairs, unreadable = read_pairs(client, keys, f"synth@{same}", cams, 1000)
    assert unreadable == 0 and min(sum(p.camera == c for p in pairs) for c in cams) >= 10
    print(f"\nidentical candidate: {len(pairs)} of {sent.sent} frames shadowed, "
          f"{_shadow_count(f'synth@{same}', 'shed'):.0f} shed")
    produced = {(e["camera"], e["frame_id"]): e for cam in cams for e in history(redis_client, redis_prefix, cam)}
    for p in pairs:
        e = produced[(p.camera, p.frame_id)]
        assert p.production_model == f"synth@{prod}" and p.production_score == pytest.approx(float(e["score"]), abs=1e-6)
        assert p.candidate_score == pytest.approx(p.production_score, abs=1e-4)  # same weights, same pixels
    report = build_report(pairs, {}, f"synth@{same}", f"synth@{prod}")
    assert report.agreement == 1.0

    # An operator's verdict on a shadowed frame enters the report.
    marked = pairs[0]
    client.xadd(keys.feedback, {"camera": marked.camera, "frame_id": marked.frame_id, "verdict": VERDICT_CONFIRMED,
                                "note": "", "time_ns": "1", "user": "op"})
    bad_pairs, _ = read_pairs(client, keys, f"synth@{damaged}", cams, 1000)
    bad = build_report(bad_pairs, read_feedback(client, keys), f"synth@{damaged}", f"synth@{prod}")
    assert bad.confirmed["marked"] == (1 if any(p.frame_id == marked.frame_id and p.camera == marked.camera for p in bad_pairs) else 0)
    assert bad.alarms_on_normal > 0  # damaged weights reconstruct worse: alarms on frames production called normal
    client.close()

    monkeypatch.setenv("LW_SHADOW_MIN_FRAMES", "10")
    base = ["--store", str(private_store)]
    flags = ["--redis-url", redis_url, "--redis-prefix", redis_prefix]
    capsys.readouterr()
    assert models_cli([*base, "promote", f"synth@{damaged}", "--to", "production", "--require-shadow", *flags]) == 3
    err = capsys.readouterr().err
    assert "alarm_rate_bound" in err and store.resolve("synth@production") == ("synth", prod)
    assert models_cli([*base, "promote", f"synth@{same}", "--to", "production", "--require-shadow", *flags]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["gate"]["passed"] is True and out["shadow_stopped"] == f"synth@{same}"
    assert store.resolve("synth@production") == ("synth", same)
    assert store.alias_evidence("synth")[-1]["shadow"]["agreement"] == 1.0
    assert set(book.plans().plans) == {f"synth@{damaged}"}
    assert models_cli([*base, "shadow", "stop", f"synth@{damaged}"]) == 0
    assert book.plans().plans == {}


def test_shadow_work_is_shed_first_under_overload(
    kafka_bootstrap, topic_base, redis_prefix, redis_client, worker_settings, private_store
) -> None:
    store = ModelStore(private_store)
    _, prod = store.resolve("synth@production")
    candidate = f"synth@{_new_version(store, 'synth@production')}"
    ShadowBook(store.backend, resolve=store.resolve).start(candidate, "synth@production", [], 1.0, "test")
    shed_before, scored_before = _shadow_count(candidate, "shed"), _shadow_count(candidate, "scored")
    cams, frames = ["cam-1", "cam-2"], 150
    with running_worker(worker_settings(model_root=private_store, shadow_poll_s=0.2, shadow_queue_batches=1,
                                        shadow_max_batch=2, max_batch=4)) as worker:
        deadline = time.monotonic() + 60
        while not worker.shadow.loaded() and time.monotonic() < deadline:
            time.sleep(0.1)
        sent = produce_synthetic({"kafka_bootstrap": kafka_bootstrap, "topic_base": topic_base}, cameras=2,
                                 frames_per_camera=frames)  # as fast as the producer goes: a burst
        assert wait_for_results(redis_client, redis_prefix, cams, sent.sent) == sent.sent
        time.sleep(1.0)
    shed = _shadow_count(candidate, "shed") - shed_before
    scored = _shadow_count(candidate, "scored") - scored_before
    keys = RedisKeys(redis_prefix)
    written = sum(redis_client.xlen(keys.shadow(candidate, c)) for c in cams)
    print(f"\nburst of {sent.sent} frames: shadow scored {scored:.0f}, shed {shed:.0f}")
    assert shed > 0 and written == scored and scored + shed <= sent.sent
    for cam in cams:  # production untouched: every frame once, by production
        entries = history(redis_client, redis_prefix, cam)
        assert [int(e["seq"]) for e in entries] == list(range(frames))
        assert {e["model_version"] for e in entries} == {prod}


class _Evidence:
    """The store's alias evidence only (pure logic under test; Redis is real)."""

    def __init__(self, records: list[dict]) -> None:
        self.records = records

    def alias_evidence(self, name: str, alias: str) -> list[dict]:
        return self.records


def test_rollout_watch_raises_one_event_when_alarms_exceed_the_prediction(redis_client, redis_prefix) -> None:
    keys = RedisKeys(redis_prefix)
    evidence = [{"version": "v0002", "shadow": {"alarm_upper_bound": 0.02}}]
    writer = ResultWriter(redis_client, keys, Retention(alerts_maxlen=50), Debounce())
    watch = RolloutWatch(_Evidence(evidence), writer.recalibrate_events, frames=200, alpha=0.001, worker_id="w")
    assert watch.observe("m", "v0001", [("cam-1", True)] * 50) == []  # no gated promotion of v0001: no watch
    assert watch.observe("m", "v0002", [("cam-1", i % 10 == 0) for i in range(40)]) == []  # 4 of 40 at 2 %: p ~ 0.009
    events = watch.observe("m", "v0002", [("cam-1", i % 5 == 0) for i in range(40)])  # 12 of 80: clearly above
    assert [e["camera"] for e in events] == ["cam-1"] and events[0]["signal"] == "rollout"
    assert watch.observe("m", "v0002", [("cam-1", True)] * 40) == []  # once per camera and version
    assert watch.observe("m", "v0002", [("cam-2", False)] * 200) == []  # a camera in line with the prediction
    stored = redis_client.xrange(keys.recalibrate)
    assert len(stored) == 1 and stored[0][1][b"signal"] == b"rollout" and stored[0][1][b"model"] == b"m@v0002"


def test_a_plan_picks_by_recipe_camera_and_fraction() -> None:
    from model_store.shadow_plans import Plan

    plan = Plan(candidate="m@v2", against="m@production", production_model="m", cameras=("press-*",), recipes=("press",))
    assert plan.covers("press-1", "press") and not plan.covers("press-1", "weld") and not plan.covers("press-1")
    assert not plan.covers("weld-1", "press")
    anywhere = Plan(candidate="m@v2", against="m@production", production_model="m")
    assert anywhere.covers("any", None) and anywhere.covers("any", "weld")
    half = Plan(candidate="m@v2", against="m@production", production_model="m", fraction=0.5)
    picked = sum(half.picks(seq) for seq in range(10_000))
    assert 4_700 < picked < 5_300 and [half.picks(s) for s in range(50)] == [half.picks(s) for s in range(50)]
