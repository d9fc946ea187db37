"""Plain convolutional autoencoder: the baseline every anomaly model must beat.

Trained on normal images to reproduce them (L2 + SSIM loss); anomalies reconstruct badly. Pixel
map = 1 - SSIM(recon, input) on gray (setting `map_kind="ssim"`) or the squared residual
(`"l2"`); image score = max of the map after a k x k mean filter (the same scoring as DRAEM, so
the two differ only in what produces the map). See ../shared/docs/models.md "Baseline".
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from model_store.models._common import (
    MAP_KINDS, InputNorm, build_model, conv_bn_relu, init_weights, mean_filter, residual_map, ssim_loss,
)
from model_store.models.base import AnomalyModel, TrainConfig
from model_store.registry import register_model


@dataclass
class AEConfig:
    in_channels: int = 3
    width: int = 32  # channels of the first stage; doubles per stage
    depth: int = 4  # stride-2 stages; input size must be divisible by 2**depth
    latent: int = 128  # bottleneck channels: small enough that the net cannot copy its input
    map_kind: str = "ssim"  # "ssim": 1 - SSIM on gray; "l2": squared residual
    score_kernel: int = 11  # mean filter before the max
    smooth_map: bool = False  # publish the mean-filtered map: masks then match what the score saw
    input_norm: str = "none"  # "gain" / "standardise": take global lighting out of the input (_common.InputNorm)


class ConvAutoencoder(AnomalyModel):
    score_definition = "pixel map: 1 - SSIM (or squared residual) of input vs reconstruction; image score: max of k x k mean-filtered map"

    def __init__(self, cfg: AEConfig) -> None:
        super().__init__()
        if cfg.map_kind not in MAP_KINDS:
            raise ValueError(f"map_kind must be one of {MAP_KINDS}, got {cfg.map_kind!r}")
        self.cfg = cfg
        self.in_channels = cfg.in_channels
        widths = [cfg.width * 2**i for i in range(cfg.depth)]
        enc: list[nn.Module] = []
        cin = cfg.in_channels
        for w in widths:  # each stage halves H and W
            enc += [nn.Conv2d(cin, w, 4, stride=2, padding=1), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
            enc += conv_bn_relu(w, w)
            cin = w
        enc += [nn.Conv2d(cin, cfg.latent, 1)]
        self.encoder = nn.Sequential(*enc)
        dec: list[nn.Module] = [nn.Conv2d(cfg.latent, cin, 1), nn.ReLU(inplace=True)]
        for w in reversed(widths[:-1] + [cfg.width]):
            dec += [nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)]
            dec += conv_bn_relu(cin, w) + conv_bn_relu(w, w)
            cin = w
        dec += [nn.Conv2d(cin, cfg.in_channels, 3, padding=1), nn.Sigmoid()]
        self.decoder = nn.Sequential(*dec)
        self.apply(init_weights)
        self.norm = InputNorm(cfg.input_norm)
        self.score_definition = type(self).score_definition + self.norm.words()

    def on_train_start(self, images: torch.Tensor, cfg: TrainConfig) -> None:
        self.norm.fit(images)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))  # [B, C, H, W]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.norm(x)
        amap = residual_map(x, self.reconstruct(x), self.cfg.map_kind)  # [B, 1, H, W]
        smoothed = mean_filter(amap, self.cfg.score_kernel)
        score = smoothed.amax(dim=(1, 2, 3))  # [B]
        # A raw residual map is dominated by thin edge errors; smoothed, blobs stand out in masks.
        return (smoothed if self.cfg.smooth_map else amap)[:, 0], score

    def configure_optimizers(self, cfg) -> list[torch.optim.Optimizer]:
        # 1e-3: a plain AE converges in minutes at this lr; the baseline gets the same wall clock as DRAEM.
        lr = cfg.lr if cfg.lr is not None else 1e-3
        return [torch.optim.Adam(self.parameters(), lr=lr, weight_decay=cfg.weight_decay)]

    def training_step(self, batch: torch.Tensor, optimizers: list[torch.optim.Optimizer], step: int) -> dict[str, float]:
        (opt,) = optimizers
        batch = self.norm(batch)
        recon = self.reconstruct(batch)
        l2 = F.mse_loss(recon, batch)
        ss = ssim_loss(recon, batch)
        loss = l2 + ss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"loss": loss.item(), "l2": l2.item(), "ssim": ss.item()}


@register_model
def autoencoder(**kwargs) -> ConvAutoencoder:
    """Baseline autoencoder, width 32, 4 stages, 128-channel bottleneck."""
    return build_model(ConvAutoencoder, AEConfig(), kwargs)
