"""Fixtures of the pipeline tests: a real small model, workers in-process or as real processes."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Any, Callable

import pytest

from linewatch.demo import DEMO_AE
from producer.synthetic import SyntheticCamera
from worker.settings import WorkerSettings


@pytest.fixture(scope="session")
def model_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model store holding `synth@production`: a small autoencoder really trained on synthetic normal frames."""
    from model_store.quick import train_quick

    root = tmp_path_factory.mktemp("models")
    cache = os.environ.get("LINEWATCH_TEST_MODEL_CACHE")  # a developer's shortcut: train once, reuse
    if cache and (Path(cache) / "synth").is_dir():
        shutil.copytree(cache, root, dirs_exist_ok=True)
        return root
    frames = [SyntheticCamera(seed=s, defect_rate=0.0).render(seq)[0] for s in (1, 2, 3, 4) for seq in range(500, 560)]
    # steps, not seconds: the same model on any machine; smoothed L2 map so masks outline the defect
    train_quick(frames, root, "synth", seconds=3600, steps=150, seed=0, kwargs=DEMO_AE)
    if cache:
        shutil.copytree(root, cache, dirs_exist_ok=True)
    return root


@pytest.fixture
def worker_settings(kafka_bootstrap: str, redis_url: str, topic_base: str, redis_prefix: str, model_root: Path) -> Callable[..., WorkerSettings]:
    """Builds WorkerSettings on the test's topics and keys; keyword arguments override."""
    group = f"g-{uuid.uuid4().hex[:8]}"

    def make(**overrides: Any) -> WorkerSettings:
        base: dict[str, Any] = dict(
            kafka_bootstrap=kafka_bootstrap, topic_base=topic_base, redis_url=redis_url, redis_prefix=redis_prefix,
            model="synth@production", model_root=model_root, group_id=group, http_port=0, max_wait_ms=5,
            threshold_refresh_s=0.2, model_poll_s=0.5, log_json=False, log_level="warning", drain_timeout_s=30,
        )
        base.update(overrides)
        return WorkerSettings(**base)

    return make


