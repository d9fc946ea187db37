"""Models from the store in the worker: every architecture is served, and versions hot-swap under load."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from linewatch.errors import ModelIntegrityError

from model_store.quick import train_quick
from model_store.registry import list_models
from model_store.store import ModelStore
from producer.app import produce_synthetic
from producer.synthetic import SyntheticCamera
from tests.worker.helpers import history, running_worker, wait_for_results
from worker.engine import Engine, pick_device
from worker.serving import ModelHolder

pytestmark = pytest.mark.integration

SERVED_ARCHITECTURES = ["autoencoder", "draem_small", "daad_small", "utad_small", "ddrid_small", "hostcheck"]


def _normal_frames(n_per_camera: int = 12) -> list:
    return [SyntheticCamera(seed=s, defect_rate=0.0).render(seq)[0] for s in (1, 2) for seq in range(n_per_camera)]


def test_every_seed_architecture_is_registered() -> None:
    assert set(SERVED_ARCHITECTURES) <= set(list_models())


@pytest.mark.parametrize("arch", SERVED_ARCHITECTURES)
def test_architecture_trained_stored_and_served(arch, kafka_bootstrap, topic_base, redis_prefix, redis_client, worker_settings, tmp_path) -> None:
    name, version = train_quick(_normal_frames(), tmp_path, arch, arch=arch, input_size=64, seconds=120, steps=3)
    sent = produce_synthetic({"kafka_bootstrap": kafka_bootstrap, "topic_base": topic_base}, cameras=2, frames_per_camera=6)
    with running_worker(worker_settings(model=f"{name}@production", model_root=tmp_path)):
        assert wait_for_results(redis_client, redis_prefix, ["cam-1", "cam-2"], sent.sent) == sent.sent
    for cam in ("cam-1", "cam-2"):
        entries = history(redis_client, redis_prefix, cam)
        assert [int(e["seq"]) for e in entries] == list(range(6))
        assert {(e["model_name"], e["model_version"]) for e in entries} == {(arch, version)}
        assert all(0.0 <= float(e["score"]) <= 1.0 for e in entries)


@pytest.fixture
def private_store(model_root: Path, tmp_path: Path) -> Path:
    """A copy of the session's store, free to be changed by one test."""
    root = tmp_path / "store"
    shutil.copytree(model_root, root)
    return root


def test_hot_swap_under_load_loses_nothing(kafka_bootstrap, topic_base, redis_prefix, redis_client, worker_settings, private_store) -> None:
    store = ModelStore(private_store)
    _, old = store.resolve("synth@production")
    _, new = train_quick(_normal_frames(), private_store, "synth", seconds=60, steps=10, alias=None)
    cams, frames = ["cam-1", "cam-2"], 80
    result: dict = {}
    with running_worker(worker_settings(model_root=private_store, model_poll_s=0.2)) as worker:
        producing = threading.Thread(target=lambda: result.setdefault("sent", produce_synthetic(
            {"kafka_bootstrap": kafka_bootstrap, "topic_base": topic_base}, cameras=2, frames_per_camera=frames, fps=20)))
        producing.start()
        wait_for_results(redis_client, redis_prefix, cams, 20)
        store.promote("synth", new)  # the alias moves while frames stream in
        producing.join(60)
        assert wait_for_results(redis_client, redis_prefix, cams, 2 * frames) == 2 * frames
        assert worker.holder.current.version == new
    for cam in cams:
        entries = history(redis_client, redis_prefix, cam)
        assert [int(e["seq"]) for e in entries] == list(range(frames))  # nothing lost, nothing twice
        versions = [e["model_version"] for e in entries]
        assert versions[0] == old and versions[-1] == new
        switch = versions.index(new)
        assert set(versions[:switch]) == {old} and set(versions[switch:]) == {new}  # one clean switch


def _tampered_version(private_store: Path) -> str:
    _, bad = train_quick(_normal_frames(), private_store, "synth", seconds=60, steps=2, alias=None)
    weights = next((private_store / "synth" / bad).glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:-16] + b"\x00" * 16)  # damaged after publishing
    return bad


def _holder(store: ModelStore, poll_s: float = 0) -> ModelHolder:
    device = pick_device("cpu")
    return ModelHolder(store, "synth@production", lambda m, spec: Engine(m, spec, device), poll_s=poll_s)


def test_promote_refuses_a_version_that_does_not_load(private_store) -> None:
    store = ModelStore(private_store)
    _, old = store.resolve("synth@production")
    bad = _tampered_version(private_store)
    with pytest.raises(ModelIntegrityError, match="sha256"):
        store.promote("synth", bad)
    assert store.resolve("synth@production") == ("synth", old)


def test_a_worker_starts_on_the_last_good_version_when_the_target_does_not_load(private_store) -> None:
    store = ModelStore(private_store)
    _, old = store.resolve("synth@production")
    bad = _tampered_version(private_store)
    store.promote("synth", bad, verify=False)  # as if the file was damaged after promotion
    holder = _holder(store)
    holder.load_initial()
    assert holder.current.version == old
    assert holder.fallback and bad in holder.fallback and "sha256" in holder.fallback
    assert REGISTRY.get_sample_value("linewatch_worker_model_fallback") == 1


def test_a_version_that_fails_to_load_leaves_the_old_one_serving(private_store) -> None:
    store = ModelStore(private_store)
    _, old = store.resolve("synth@production")
    holder = _holder(store)
    holder.load_initial()
    bad = _tampered_version(private_store)
    store.promote("synth", bad, verify=False)
    assert holder.check_once() is False  # the damaged version is not staged ...
    assert holder.take_update() is None and holder.current.version == old  # ... the old one keeps serving
    loads = REGISTRY.get_sample_value("linewatch_worker_model_loads_total", {"outcome": "failed"})
    assert holder.check_once() is False  # and it is not reloaded on every poll (back-off)
    assert REGISTRY.get_sample_value("linewatch_worker_model_loads_total", {"outcome": "failed"}) == loads


def test_the_model_watcher_survives_a_malformed_alias_file(private_store) -> None:
    store = ModelStore(private_store)
    holder = _holder(store)
    holder.load_initial()
    alias = private_store / "synth" / "aliases" / "production.json"
    good = alias.read_text()
    alias.write_text("{not json")
    holder.poll_once()  # logs and carries on: the served model stays
    assert holder.current is not None
    alias.write_text(good)
    assert holder.check_once() is False


def test_camera_thresholds_are_picked_up_without_a_restart(private_store) -> None:
    store = ModelStore(private_store)
    holder = _holder(store)
    holder.load_initial()
    store.set_camera_thresholds("synth@production", {"cam-7": 0.7})
    holder.poll_once()
    assert holder.current.camera_thresholds == {"cam-7": 0.7}
