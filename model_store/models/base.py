"""The interface every anomaly model implements, and the training settings passed to it.

Contract the worker relies on (worker/serving.py, worker/engine.py):
- input  x: float32 [B, C, H, W] in [0, 1], RGB order (C = `in_channels`, 1 for gray models);
  no mean/std normalisation: a model that wants it does it inside `forward`.
- output (amap, score): amap [B, H, W] pixel anomaly map at input size, score [B] raw image
  score; higher means more anomalous. Calibration (model_store/calibration.py) maps raw scores to
  [0, 1] with the threshold at 0.5, so the raw scale may be anything.
- training: the generic trainer (model_store/training.py) feeds batches of *normal* images and
  calls `training_step`, which does its own forward, backward and optimizer steps (adversarial
  models need more than one optimizer). Models that simulate anomalies do it inside the step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class TrainConfig:
    """Settings the trainer passes to `configure_optimizers` and hooks."""

    lr: float | None = None  # None: the model's own default (e.g. DRAEM's paper 1e-4)
    weight_decay: float = 0.0
    batch_size: int = 8
    max_steps: int | None = None  # at least one of max_steps / time_budget_s / cpu_budget_s bounds a run
    time_budget_s: float | None = None  # wall-clock seconds: depends on the machine's load
    cpu_budget_s: float | None = None  # CPU seconds of the training process: reproducible under load
    seed: int = 0
    photometric: float = 0.0  # lighting augmentation of the normal batches (model_store/lighting.augment); 0 = off


class AnomalyModel(nn.Module):
    """Base class: subclasses set `in_channels` and implement forward and training_step."""

    in_channels: int = 3
    # One sentence for the manifest: what the pixel map and the image score are.
    score_definition: str = "unspecified"

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def score_components(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Named image scores [B] that make up the model's score (for measurements, not serving).

        Models that add several scores (DAAD, DDR-ID) return each raw part and their combination;
        the default is the one score.
        """
        return {"score": self(x)[1]}

    def configure_optimizers(self, cfg: TrainConfig) -> list[torch.optim.Optimizer]:
        """Default: one Adam over all parameters at cfg.lr (or 1e-4)."""
        lr = cfg.lr if cfg.lr is not None else 1e-4
        return [torch.optim.Adam(self.parameters(), lr=lr, weight_decay=cfg.weight_decay)]

    def training_step(
        self, batch: torch.Tensor, optimizers: list[torch.optim.Optimizer], step: int
    ) -> dict[str, float]:
        """One update on a batch of normal images [B, C, H, W] in [0, 1]; returns loss values."""
        raise NotImplementedError

    def on_train_start(self, images: torch.Tensor, cfg: TrainConfig) -> None:
        """Called once before training with a sample of training images [N, C, H, W] in [0, 1].

        DRAEM builds its part-derived anomaly textures here. Default: nothing.
        """

    def on_calibration(self, images: torch.Tensor) -> None:
        """Called once after training with the held-out calibration normals [N, C, H, W] in [0, 1], in eval mode,
        before their scores set the threshold. DAAD fits its score weights here; default: nothing."""

    def lr_factor(self, progress: float) -> float:
        """Learning-rate multiplier at `progress` in [0, 1] of the run (steps, wall or CPU budget).

        The trainer applies it to every param group's initial lr, so step schedules defined in
        epochs (DRAEM: x0.1 at 400/700 and 600/700) survive time-budgeted runs. Default: 1.
        """
        return 1.0
