"""The trainer's CPU budget: it counts the process's CPU time, not the wall clock, and resumes it.

A fake clock stands in for `time` inside model_store.training so the checks are exact: every
training step costs 1 CPU second and 10 wall seconds (a machine four times oversubscribed, say).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import model_store.training as training
from model_store.models.autoencoder import ConvAutoencoder
from model_store.models.base import TrainConfig
from model_store.training import load_checkpoint, train_model

from model_store_helpers import synthetic_frames

KW = {"width": 4, "latent": 8, "depth": 2}


class FakeClock:
    """Stands in for the `time` module: process_time / monotonic advance only when a step runs."""

    def __init__(self) -> None:
        self.cpu = 100.0
        self.wall = 5000.0

    def process_time(self) -> float:
        return self.cpu

    def monotonic(self) -> float:
        return self.wall

    def step(self) -> None:
        self.cpu += 1.0
        self.wall += 10.0


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(training, "time", fake)
    orig = ConvAutoencoder.training_step

    def ae_step(self, batch, optimizers, step):  # each autoencoder step costs 1 fake CPU second
        fake.step()
        return orig(self, batch, optimizers, step)

    monkeypatch.setattr(ConvAutoencoder, "training_step", ae_step)
    return fake


def _u8(n: int) -> torch.Tensor:
    return torch.from_numpy(np.stack(synthetic_frames(n, 32, 32))).permute(0, 3, 1, 2).contiguous()


def test_cpu_budget_counts_cpu_seconds_not_wall(clock: FakeClock) -> None:
    res = train_model("autoencoder", KW, _u8(8), TrainConfig(batch_size=4, cpu_budget_s=5.0), show_progress=False)
    assert res.steps == 5  # 5 CPU seconds = 5 steps, although 50 wall seconds went by
    assert res.cpu_seconds == pytest.approx(5.0) and res.seconds == pytest.approx(50.0)


def test_wall_budget_keeps_its_meaning(clock: FakeClock) -> None:
    res = train_model("autoencoder", KW, _u8(8), TrainConfig(batch_size=4, time_budget_s=30.0), show_progress=False)
    assert res.steps == 3


def test_cpu_budget_resumes_where_the_checkpoint_left_it(clock: FakeClock, tmp_path: Path) -> None:
    ck = tmp_path / "ck.safetensors"
    first = train_model("autoencoder", KW, _u8(8), TrainConfig(batch_size=4, cpu_budget_s=3.0), checkpoint=ck, show_progress=False)
    assert first.steps == 3
    model = first.module
    assert load_checkpoint(ck, model, model.configure_optimizers(TrainConfig()), "cpu")["cpu_elapsed"] == pytest.approx(3.0)
    second = train_model("autoencoder", KW, _u8(8), TrainConfig(batch_size=4, cpu_budget_s=7.0), checkpoint=ck,
                         resume=True, show_progress=False)
    assert second.steps == 7 and second.cpu_seconds == pytest.approx(7.0)


def test_some_budget_is_required() -> None:
    with pytest.raises(ValueError, match="cpu_budget_s"):
        train_model("autoencoder", KW, _u8(8), TrainConfig(batch_size=4), show_progress=False)
