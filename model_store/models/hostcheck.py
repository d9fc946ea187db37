"""A model that costs (almost) nothing: the host-path benchmark's stand-in for a GPU.

On a GPU a paper-size model scores a batch in a millisecond or two; on this CPU every real model
takes longer than the host work around it, so a pipeline benchmark with a real model measures the
model. `hostcheck` keeps the model's interface and outputs (a pixel map and an image score of the
input size, calibrated like any model) at the price of one 1x1 convolution: the map is the
absolute difference between the input and a learned per-channel level, the score its mean.
It is an anomaly model in name only: it flags frames whose brightness differs from the training
frames', nothing more. Used by bench/bench_pipeline.py (`--arch hostcheck`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from model_store.models._common import build_model
from model_store.models.base import AnomalyModel
from model_store.registry import register_model


@dataclass
class HostCheckConfig:
    in_channels: int = 3


class HostCheck(AnomalyModel):
    score_definition = "pixel map: |input - learned level|, channel mean; image score: mean of the map (a host benchmark, not a detector)"

    def __init__(self, cfg: HostCheckConfig) -> None:
        super().__init__()
        self.in_channels = cfg.in_channels
        self.level = nn.Conv2d(cfg.in_channels, cfg.in_channels, 1, groups=cfg.in_channels)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        amap = (x - self.level(torch.zeros_like(x[:, :, :1, :1]))).abs().mean(dim=1)  # [B, H, W]
        return amap, amap.mean(dim=(1, 2))  # [B, H, W], [B]

    def training_step(self, batch: torch.Tensor, optimizers: list[torch.optim.Optimizer], step: int) -> dict[str, float]:
        (opt,) = optimizers
        level = self.level(torch.zeros_like(batch[:, :, :1, :1]))  # [1..B, C, 1, 1]
        loss = F.l1_loss(level.expand_as(batch), batch)  # the level that fits normal frames best
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"loss": loss.item()}


@register_model
def hostcheck(**kwargs) -> HostCheck:
    """Near-zero-cost stand-in for benchmarking the host path."""
    return build_model(HostCheck, HostCheckConfig(), kwargs)
