"""DRAEM: a discriminatively trained reconstruction embedding for surface anomaly detection.

Zavrtanik, Kristan, Skocaj, ICCV 2021 (arXiv 2108.07610); recipe as in ../shared/docs/models.md.
A reconstructive sub-network learns to turn images with *simulated* anomalies back into the clean
image; a discriminative U-Net sees (reconstruction, input) stacked and segments where they differ
for an anomalous reason. At test time its softmax "anomalous" channel is the pixel map and the
image score is the max of that map after a k x k mean filter (k = 21 at 256 px).

Paper defaults (`draem`): widths w = 128 / v = 64, 256 px, Adam 1e-4, lr x0.1 at 400/700 and
600/700 of training, batch 8, DTD textures (`texture_dir`). Knobs the paper leaves open or that we
add are settings with the default named here:
- texture_dir=None: textures from the training images themselves + 25 % smooth noise, gray when
  the data is gray (see _simulation.py);
- line_prob: share of masks that are thin polylines (crack-like), 0 in `draem`, 0.25 in
  `draem_small`;
- score_kernel: 21 for 256 px; `draem_small` (128 px) uses 11, the same share of the image.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from model_store.models._common import InputNorm, build_model, conv_bn_relu, focal_loss, image_score, init_weights, ssim_loss
from model_store.models._simulation import AnomalySimulator
from model_store.models.base import AnomalyModel, TrainConfig
from model_store.registry import register_model


@dataclass
class DraemConfig:
    in_channels: int = 3
    base_width: int = 128  # w: reconstructive widths w, 2w, 4w, 8w, 8w
    disc_width: int = 64  # v: discriminative widths v, 2v, 4v, 8v, 8v, 8v
    score_kernel: int = 21  # mean filter before the image max (paper: 21 at 256 px)
    texture_dir: str | None = None  # DTD-like folder; None = part-derived / noise textures
    line_prob: float = 0.0  # share of thin line masks among simulated anomalies
    clean_prob: float = 0.5  # share of training samples left without anomaly (paper: half)
    shade_prob: float = 0.0  # share of anomalies that are soft low-frequency brightness changes (ours)
    input_norm: str = "none"  # "gain" / "standardise": take global lighting out of the input (_common.InputNorm)
    noise_texture_prob: float = 0.25  # without texture_dir: share of smooth-noise (foreign) textures; rest part-derived
    lr_milestones: list[float] = field(default_factory=lambda: [400 / 700, 600 / 700])


def _stage(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(*conv_bn_relu(cin, cout), *conv_bn_relu(cout, cout))


def _up(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True), *conv_bn_relu(cin, cout))


class Reconstructive(nn.Module):
    """Encoder-decoder without skips: it must re-draw the image from a 16x-downsampled code."""

    def __init__(self, cin: int, w: int) -> None:
        super().__init__()
        widths = [w, 2 * w, 4 * w, 8 * w, 8 * w]
        self.enc = nn.ModuleList([_stage(cin, widths[0])] + [_stage(a, b) for a, b in zip(widths, widths[1:])])
        # decoder: (upsample + conv) then two convs, each stage halving the width: 8w, 4w, 2w, w, w
        self.dec = nn.Sequential(
            _up(8 * w, 8 * w), *conv_bn_relu(8 * w, 8 * w), *conv_bn_relu(8 * w, 4 * w),
            _up(4 * w, 4 * w), *conv_bn_relu(4 * w, 4 * w), *conv_bn_relu(4 * w, 2 * w),
            _up(2 * w, 2 * w), *conv_bn_relu(2 * w, 2 * w), *conv_bn_relu(2 * w, w),
            _up(w, w), *conv_bn_relu(w, w), *conv_bn_relu(w, w),
            nn.Conv2d(w, cin, 3, padding=1),  # the last conv: no BN / ReLU
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, stage in enumerate(self.enc):
            x = stage(F.max_pool2d(x, 2) if i else x)  # [B, 8w, H/16, W/16] after the last
        return self.dec(x)  # [B, C, H, W]


class Discriminative(nn.Module):
    """U-Net on (reconstruction, input) stacked; 2 output logits (normal, anomalous)."""

    def __init__(self, cin: int, v: int) -> None:
        super().__init__()
        widths = [v, 2 * v, 4 * v, 8 * v, 8 * v, 8 * v]
        self.enc = nn.ModuleList([_stage(cin, widths[0])] + [_stage(a, b) for a, b in zip(widths, widths[1:])])
        # up-stage: upsample + conv, concat the skip, two convs; widths 8v, 4v, 2v, v, v
        skips = list(reversed(widths[:-1]))  # 8v, 8v, 4v, 2v, v
        outs = [8 * v, 4 * v, 2 * v, v, v]
        self.ups = nn.ModuleList()
        self.decs = nn.ModuleList()
        cur = widths[-1]
        for skip, out in zip(skips, outs):
            self.ups.append(_up(cur, out))
            self.decs.append(_stage(out + skip, out))
            cur = out
        self.head = nn.Conv2d(cur, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, stage in enumerate(self.enc):
            x = stage(F.max_pool2d(x, 2) if i else x)
            skips.append(x)
        x = skips.pop()  # [B, 8v, H/32, W/32]
        for up, dec in zip(self.ups, self.decs):
            x = dec(torch.cat([up(x), skips.pop()], dim=1))
        return self.head(x)  # [B, 2, H, W]


class DRAEM(AnomalyModel):
    score_definition = "pixel map: softmax 'anomalous' channel of the discriminative net; image score: max of the k x k mean-filtered map"

    def __init__(self, cfg: DraemConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.in_channels = cfg.in_channels
        self.reconstructive = Reconstructive(cfg.in_channels, cfg.base_width)
        self.discriminative = Discriminative(2 * cfg.in_channels, cfg.disc_width)
        self.apply(init_weights)
        self.norm = InputNorm(cfg.input_norm)
        self.score_definition = type(self).score_definition + self.norm.words()
        self._simulator: AnomalySimulator | None = None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.norm(x)
        recon = self.reconstructive(x)
        logits = self.discriminative(torch.cat([recon, x], dim=1))
        amap = torch.softmax(logits, dim=1)[:, 1:]  # [B, 1, H, W]
        return amap[:, 0], image_score(amap, self.cfg.score_kernel)  # [B, H, W], [B]

    def on_train_start(self, images: torch.Tensor, cfg: TrainConfig) -> None:
        self.norm.fit(images)
        pool = self.norm(images).permute(0, 2, 3, 1).float().cpu().numpy()  # [N, H, W, C]
        self._simulator = AnomalySimulator(
            pool, self.cfg.texture_dir, self.cfg.line_prob, self.cfg.clean_prob, seed=cfg.seed,
            shade_prob=self.cfg.shade_prob, noise_texture_prob=self.cfg.noise_texture_prob,
        )

    def simulate(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normal batch [B, C, H, W] -> (augmented [B, C, H, W], mask [B, 1, H, W])."""
        if self._simulator is None:
            raise RuntimeError("on_train_start() must run before training (it builds the texture pool)")
        imgs = batch.permute(0, 2, 3, 1).cpu().numpy()
        pairs = [self._simulator(im) for im in imgs]
        aug = torch.from_numpy(np.stack([a for a, _ in pairs])).permute(0, 3, 1, 2)
        mask = torch.from_numpy(np.stack([m for _, m in pairs])).permute(0, 3, 1, 2)
        return aug.to(batch.device, batch.dtype), mask.to(batch.device, batch.dtype)

    def training_step(self, batch: torch.Tensor, optimizers: list[torch.optim.Optimizer], step: int) -> dict[str, float]:
        (opt,) = optimizers
        batch = self.norm(batch)
        aug, mask = self.simulate(batch)
        recon = self.reconstructive(aug)  # trained to remove the simulated anomaly
        logits = self.discriminative(torch.cat([recon, aug], dim=1))
        l2 = F.mse_loss(recon, batch)
        ss = ssim_loss(recon, batch)
        fl = focal_loss(logits, mask)
        loss = l2 + ss + fl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"loss": loss.item(), "l2": l2.item(), "ssim": ss.item(), "focal": fl.item()}

    def lr_factor(self, progress: float) -> float:
        return 0.1 ** sum(progress >= m for m in self.cfg.lr_milestones)


@register_model
def draem(**kwargs) -> DRAEM:
    """Paper DRAEM: w = 128, v = 64, meant for 256 px (about 97 M parameters)."""
    return build_model(DRAEM, DraemConfig(), kwargs)


@register_model
def draem_small(**kwargs) -> DRAEM:
    """CPU-sized DRAEM: w = 32, v = 16, meant for 128 px (about 1/64 of the paper's cost)."""
    return build_model(DRAEM, DraemConfig(base_width=32, disc_width=16, score_kernel=11, line_prob=0.25), kwargs)
