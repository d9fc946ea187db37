"""Recipes in the worker, on real Kafka and Redis: cameras routed to their own models, a changeover
mid-stream, more models than may be loaded, a model that loads in no version, a camera with no recipe."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from linewatch import contract as c
from model_store.quick import train_quick
from model_store.recipes import Recipe, RecipeBook, Region
from model_store.store import ModelStore
from producer.app import produce_synthetic
from producer.synthetic import SyntheticCamera
from testkit.topics import read_topic
from tests.worker.helpers import history, running_worker, wait_for_results

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def line_store(model_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's store (synth@production, 'weld' parts) plus `press`, a second model trained on other
    synthetic parts at another input size, and `broken`, whose only version's weights are damaged."""
    root = tmp_path_factory.mktemp("line") / "store"
    shutil.copytree(model_root, root)
    parts = [SyntheticCamera(seed=s, defect_rate=0.0).render(seq)[0] for s in (7, 8) for seq in range(8)]
    train_quick(parts, root, "press", input_size=48, seconds=60, steps=3)
    _, bad = train_quick(parts, root, "broken", input_size=48, seconds=60, steps=1)
    weights = next((root / "broken" / bad).glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:-16] + b"\x00" * 16)
    return root


@pytest.fixture
def store(line_store: Path, tmp_path: Path) -> Path:
    """A copy per test, so each writes its own recipe table."""
    root = tmp_path / "store"
    shutil.copytree(line_store, root)
    return root


def _book(root: Path) -> RecipeBook:
    models = ModelStore(root)
    return RecipeBook(models.backend, resolve=models.resolve)


def _produce(kafka_bootstrap: str, topic_base: str, cameras: int, frames: int, fps: float = 0.0) -> int:
    return produce_synthetic({"kafka_bootstrap": kafka_bootstrap, "topic_base": topic_base}, cameras=cameras,
                             frames_per_camera=frames, defect_rate=0.0, fps=fps).sent


def test_each_camera_is_scored_by_its_recipes_model(kafka_bootstrap, topic_base, redis_prefix, redis_client,
                                                    worker_settings, store) -> None:
    book = _book(store)
    book.set_recipe(Recipe(name="weld", model="synth@production"), "test")
    book.set_recipe(Recipe(name="press", model="press@production", regions=(Region(x=32, y=40, w=160, h=120),),
                           threshold=0.7, debounce=(1, 1)), "test")
    book.set_recipe(Recipe(name="cover", model="broken@production"), "test")
    for camera, recipe in (("cam-1", "weld"), ("cam-2", "press"), ("cam-3", "weld"), ("cam-4", "cover")):
        book.assign(camera, recipe, "test")
    # cam-5 has no assignment and the table no `default`: no_recipe
    assert _produce(kafka_bootstrap, topic_base, cameras=5, frames=8) == 40
    with running_worker(worker_settings(model_root=store, results_topic=True)) as worker:
        assert wait_for_results(redis_client, redis_prefix, ["cam-1", "cam-2", "cam-3"], 24) == 24
        dead = read_topic(kafka_bootstrap, f"{topic_base}.frames.dlq", 16, timeout_s=30)
        ready, detail = worker.readiness()
    for camera, (model, recipe) in {"cam-1": ("synth", "weld"), "cam-2": ("press", "press"), "cam-3": ("synth", "weld")}.items():
        entries = history(redis_client, redis_prefix, camera)
        assert [int(e["seq"]) for e in entries] == list(range(8))
        assert {(e["model_name"], e["recipe"]) for e in entries} == {(model, recipe)}
    assert {e["threshold"] for e in history(redis_client, redis_prefix, "cam-2")} == {"0.700000"}  # the recipe's
    assert {e["threshold"] for e in history(redis_client, redis_prefix, "cam-1")} == {"0.500000"}
    reasons = {}
    for record in dead:
        reasons.setdefault(record.key.decode(), set()).add(dict(record.headers)[c.H_DLQ_REASON].decode())
    assert reasons == {"cam-4": {c.R_MODEL_UNAVAILABLE}, "cam-5": {c.R_NO_RECIPE}}
    assert len(dead) == 16
    assert redis_client.xlen(f"{redis_prefix}:history:cam-4") == 0
    # Only cam-4 is affected: the worker stays ready and names the model and the camera.
    assert ready, detail
    assert set(detail["models"]) == {"synth@production", "press@production"}
    assert detail["models_failing"]["broken@production"]["cameras"] == ["cam-4"]
    press_frames = REGISTRY.get_sample_value("linewatch_worker_model_frames_total", {"model": "press"})
    assert press_frames is not None and press_frames >= 8  # /metrics per model
    verdicts = read_topic(kafka_bootstrap, f"{topic_base}.results", 24, timeout_s=30)
    assert {(v.key.decode(), c.FrameVerdict.from_json(v.value).recipe) for v in verdicts} == {
        ("cam-1", "weld"), ("cam-2", "press"), ("cam-3", "weld")}


def test_a_changeover_mid_stream_switches_once_and_loses_nothing(kafka_bootstrap, topic_base, redis_prefix,
                                                                 redis_client, worker_settings, store) -> None:
    book = _book(store)
    book.set_recipe(Recipe(name="a", model="synth@production"), "test")
    book.set_recipe(Recipe(name="b", model="press@production"), "test")
    book.assign("cam-*", "a", "test")
    frames, result = 60, {}
    with running_worker(worker_settings(model_root=store, recipe_poll_ms=200)):
        producing = threading.Thread(target=lambda: result.setdefault("sent", _produce(
            kafka_bootstrap, topic_base, cameras=2, frames=frames, fps=10)))
        producing.start()
        wait_for_results(redis_client, redis_prefix, ["cam-1"], 15)
        book.assign("cam-1", "b", "line")  # the changeover, while frames stream in
        producing.join(60)
        assert wait_for_results(redis_client, redis_prefix, ["cam-1", "cam-2"], 2 * frames) == 2 * frames
    assert result["sent"] == 2 * frames
    entries = history(redis_client, redis_prefix, "cam-1")
    assert [int(e["seq"]) for e in entries] == list(range(frames))  # none lost, none twice, in order
    used = [(e["recipe"], e["model_name"]) for e in entries]
    switch = used.index(("b", "press"))
    assert 15 <= switch < frames  # routed at intake: after the 15 scored by `a`, before the stream ended
    assert set(used[:switch]) == {("a", "synth")} and set(used[switch:]) == {("b", "press")}  # one clean switch
    assert {e["recipe"] for e in history(redis_client, redis_prefix, "cam-2")} == {"a"}


def test_more_recipes_than_loaded_models_scores_every_frame(kafka_bootstrap, topic_base, redis_prefix, redis_client,
                                                            worker_settings, store) -> None:
    models = ModelStore(store)
    refs = ["synth@production", f"synth@{models.resolve('synth@production')[1]}", "press@production",
            f"press@{models.resolve('press@production')[1]}"]  # four references: four models to the worker
    book = _book(store)
    for i, ref in enumerate(refs, start=1):
        book.set_recipe(Recipe(name=f"r{i}", model=ref), "test")
        book.assign(f"cam-{i}", f"r{i}", "test")
    cams = [f"cam-{i}" for i in range(1, 5)]
    loads_before = REGISTRY.get_sample_value("linewatch_worker_model_loads_total", {"outcome": "ok"}) or 0.0
    with running_worker(worker_settings(model_root=store, max_loaded_models=2)) as worker:
        seen_loaded: list[int] = []
        stop = threading.Event()
        sampler = threading.Thread(target=lambda: [seen_loaded.append(len(worker.registry.loaded())) or time.sleep(0.05)
                                                   for _ in iter(stop.is_set, True)], daemon=True)
        sampler.start()
        assert _produce(kafka_bootstrap, topic_base, cameras=4, frames=10) == 40
        assert wait_for_results(redis_client, redis_prefix, cams, 40) == 40
        stop.set()
        sampler.join(5)
    assert seen_loaded and max(seen_loaded) <= 2
    loads = REGISTRY.get_sample_value("linewatch_worker_model_loads_total", {"outcome": "ok"}) - loads_before
    assert loads >= 4  # each reference loaded at least once, the least recently used unloaded to make room
    for i, camera in enumerate(cams, start=1):
        entries = history(redis_client, redis_prefix, camera)
        assert [int(e["seq"]) for e in entries] == list(range(10))
        assert {e["recipe"] for e in entries} == {f"r{i}"}
        assert {e["model_name"] for e in entries} == {refs[i - 1].split("@")[0]}
