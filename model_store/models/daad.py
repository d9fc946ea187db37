"""DAAD: Divide-and-Assemble, an autoencoder with block-wise memory on its skip connections.

Source: J. Hou, Y. Zhang, Q. Zhong, D. Xie, S. Pu, H. Zhou, "Divide-and-Assemble: Learning
Block-wise Memory for Unsupervised Anomaly Detection", ICCV 2021, arXiv 2107.13118. No official code
was used. Memory addressing (softmax attention over learned items, hard shrinkage, entropy loss)
follows MemAE: D. Gong et al., ICCV 2019, arXiv 1904.02639.

Data flow (widths w1..wn, n stages, features f_i at 1/2^i of the input):

    x [B,C,H,W] -> encoder stages (stride-2 conv + conv) -> f_1 .. f_n
    f_i -> BlockMemory_i: cut into s_i x s_i blocks, each block (a C*s_i*s_i vector) is rebuilt as
           an attention-weighted sum of N learned normal-block prototypes, blocks are assembled again
    decoder: from memory(f_n) up through memory(f_{n-1}) .. memory(f_1) (U-Net concatenation)
    -> x_hat [B,C,H,W] (sigmoid)
    Discriminator D(.) judges x vs x_hat; its pooled latent features phi(.) join the score.

Block size is the paper's "granularity": 1x1 blocks let the memory rebuild almost anything (each
feature vector is matched on its own), big blocks force a whole region to be a mixture of normal
regions, so an anomaly cannot be assembled. bench/daad_granularity.py measures this on real data.

Scores (forward):
    amap  = residual map of (x, x_hat): 1 - SSIM on gray (`map_kind="ssim"`) or mean_c (x - x_hat)^2
    score = z(max of the k x k mean-filtered amap) + disc_weight * z(mean (phi(x) - phi(x_hat))^2)
where z() standardises with running mean/std of the same quantity on training normals (EMA kept in
buffers, so they travel in the safetensors weights). The paper adds the two terms without giving
weights; z-normalising makes "add" meaningful whatever the raw scales. The map was the squared
error box-filtered at 5 px until 2026-12; 1 - SSIM and the baseline's 11 x 11 score filter were
measured better on magnetic_tile (docs/models.md), and make the pixel term comparable with the
baseline's. Models stored with the old definition fail to load with a clear ModelIntegrityError.

Settings the paper leaves open, with our defaults:
- block_sizes: per scale, chosen so every block covers the same 16x16 input pixels
  (16 / 2^i at scale i): one prototype granularity for the whole pyramid.
- mem_items 100 per scale: blocks are few per image, 100 prototypes suffice for one part type.
- shrink_thres 0.0025 (MemAE's released default); entropy weight 2e-4 (MemAE).
- attention logits are plain dot products, as in MemAE's released code (no 1/sqrt(dim) scaling:
  with prototypes initialised at +-1/sqrt(dim) scaled logits start uniform and learn slowly).
- reconstruction loss L2 + (1 - SSIM) (`ssim_weight` 1, as the baseline): the map is 1 - SSIM.
- adv_weight 0.01, lr 1e-3 (generator) / 2e-4 (discriminator, DCGAN): small adversarial weight
  keeps short CPU runs stable; the reconstruction loss dominates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from model_store.models._common import (
    RunningMoments, build_model, conv_bn_lrelu, image_score, init_weights, map_words, residual_map, ssim_loss,
)
from model_store.models.base import AnomalyModel, TrainConfig
from model_store.registry import register_model

__all__ = ["DAAD", "DAADConfig", "BlockMemory"]


class BlockMemory(nn.Module):
    """Divide a feature map into s x s blocks, rebuild each from N prototypes, assemble.

    Addressing (MemAE): w = softmax(q m^T); hard shrinkage
    w' = relu(w - lam) * w / (|w - lam| + eps), then L1 renormalisation; out = w' m.
    """

    def __init__(self, channels: int, block: int, items: int, shrink_thres: float) -> None:
        super().__init__()
        self.block = block
        self.dim = channels * block * block
        self.shrink_thres = shrink_thres
        bound = 1.0 / math.sqrt(self.dim)
        self.memory = nn.Parameter(torch.empty(items, self.dim).uniform_(-bound, bound))  # [N, D]

    def forward(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B, C, H, W = f.shape
        s = self.block
        gh, gw = H // s, W // s
        q = f.view(B, C, gh, s, gw, s).permute(0, 2, 4, 1, 3, 5).reshape(B * gh * gw, self.dim)  # [M, D]
        w = torch.softmax(q @ self.memory.t(), dim=1)  # [M, N]
        if self.shrink_thres > 0:
            w = F.relu(w - self.shrink_thres) * w / (torch.abs(w - self.shrink_thres) + 1e-12)
            w = w / (w.sum(dim=1, keepdim=True) + 1e-12)
        out = (w @ self.memory).view(B, gh, gw, C, s, s).permute(0, 3, 1, 4, 2, 5).reshape(B, C, H, W)
        return out, w


class Discriminator(nn.Module):
    """DCGAN-style: stride-2 convs, global pool -> latent phi(x) [B, F] -> logit [B]."""

    def __init__(self, in_ch: int, width: int, depth: int = 4) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = in_ch
        for i in range(depth):
            cout = width * 2**i
            layers += [nn.Conv2d(c, cout, 4, 2, 1, bias=i == 0)]
            if i > 0:
                layers += [nn.BatchNorm2d(cout)]
            layers += [nn.LeakyReLU(0.2, inplace=True)]
            c = cout
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        phi = self.features(x).mean(dim=(2, 3))  # [B, F]
        return self.head(phi).squeeze(1), phi


@dataclass
class DAADConfig:
    in_channels: int = 3
    widths: tuple[int, ...] = (32, 64, 128, 256)  # encoder stage widths; features at 1/2 .. 1/16
    block_sizes: tuple[int, ...] = (8, 4, 2, 1)  # per scale, in feature pixels: 16x16 input px each
    mem_items: int = 100  # prototypes per scale
    shrink_thres: float = 0.0025  # MemAE default; 0 disables sparsity
    disc_width: int = 32
    adv_weight: float = 0.01  # generator adversarial loss weight
    entropy_weight: float = 2e-4  # MemAE's addressing-entropy weight
    disc_weight: float = 1.0  # weight of the standardised discriminator-feature score
    ssim_weight: float = 1.0  # (1 - SSIM) term of the reconstruction loss: train what the map measures
    map_kind: str = "ssim"  # "ssim" = 1 - SSIM on gray, "l2" = squared error
    score_kernel: int = 11  # mean filter before the image max (the baseline's)
    lr: float = 1e-3
    lr_disc: float = 2e-4
    score_weights: str = "fixed"  # "fixed": z0 + disc_weight z1; "calibration": each z weighted by 1 / its SD on the calibration normals


class DAAD(AnomalyModel):
    def __init__(self, cfg: DAADConfig) -> None:
        super().__init__()
        if len(cfg.block_sizes) != len(cfg.widths):
            raise ValueError("block_sizes needs one entry per encoder stage")
        if cfg.score_weights not in ("fixed", "calibration"):
            raise ValueError(f"score_weights must be 'fixed' or 'calibration', got {cfg.score_weights!r}")
        self.score_definition = (
            f"amap: {map_words(cfg.map_kind)} of input vs "
            f"reconstruction; score: standardised max of the {cfg.score_kernel}x{cfg.score_kernel} mean-filtered "
            f"amap + {cfg.disc_weight:g} x standardised discriminator latent-feature distance between input and reconstruction"
        )
        if cfg.score_weights == "calibration":
            self.score_definition = (
                f"amap: {map_words(cfg.map_kind)} of input vs reconstruction; score: w1 x standardised max of the "
                f"{cfg.score_kernel}x{cfg.score_kernel} mean-filtered amap + w2 x standardised discriminator latent-feature "
                "distance, w = 1 / SD of each standardised term on the calibration normals (weights buffer)"
            )
        self.cfg = cfg
        self.in_channels = cfg.in_channels
        w = cfg.widths
        self.enc = nn.ModuleList()
        c = cfg.in_channels
        for cout in w:  # each stage halves the resolution
            self.enc.append(nn.Sequential(conv_bn_lrelu(c, cout, 4, 2), conv_bn_lrelu(cout, cout)))
            c = cout
        self.mem = nn.ModuleList(
            BlockMemory(cw, s, cfg.mem_items, cfg.shrink_thres) for cw, s in zip(w, cfg.block_sizes)
        )
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        for i in range(len(w) - 1, 0, -1):  # from scale n up to scale 1, concatenating memory skips
            self.up.append(nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), conv_bn_lrelu(w[i], w[i - 1])))
            self.dec.append(conv_bn_lrelu(2 * w[i - 1], w[i - 1]))
        self.head = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="nearest"),
            conv_bn_lrelu(w[0], w[0]),
            nn.Conv2d(w[0], cfg.in_channels, 3, padding=1),
            nn.Sigmoid(),
        )
        self.disc = Discriminator(cfg.in_channels, cfg.disc_width)
        self.moments = RunningMoments(2)
        if cfg.score_weights == "calibration":  # only then: weights of 'fixed' models keep their keys
            self.register_buffer("weights", torch.tensor([1.0, cfg.disc_weight]))
        self.apply(init_weights)  # DCGAN/DRAEM init: conv N(0, 0.02), BatchNorm N(1, 0.02)

    def reconstruct(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """x [B,C,H,W] -> (x_hat [B,C,H,W], addressing weights per scale)."""
        feats = []
        h = x
        for stage in self.enc:
            h = stage(h)
            feats.append(h)  # f_i [B, w_i, H/2^i, W/2^i]
        rebuilt, weights = zip(*(m(f) for m, f in zip(self.mem, feats)))
        h = rebuilt[-1]
        for j, (up, dec) in enumerate(zip(self.up, self.dec)):
            skip = rebuilt[-2 - j]
            h = dec(torch.cat([up(h), skip], dim=1))
        return self.head(h), list(weights)

    def _components(self, x: torch.Tensor, x_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        amap = residual_map(x, x_hat, self.cfg.map_kind)  # [B, 1, H, W]
        _, phi_x = self.disc(x)
        _, phi_r = self.disc(x_hat)
        disc_dist = ((phi_x - phi_r) ** 2).mean(1)  # [B]
        return amap[:, 0], torch.stack([image_score(amap, self.cfg.score_kernel), disc_dist], dim=1)  # [B,H,W], [B,2]

    def _combine(self, z: torch.Tensor) -> torch.Tensor:
        if self.cfg.score_weights == "calibration":
            return z @ self.weights
        return z[:, 0] + self.cfg.disc_weight * z[:, 1]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x_hat, _ = self.reconstruct(x)
        amap, comps = self._components(x, x_hat)
        return amap, self._combine(self.moments.standardise(comps))

    @torch.no_grad()
    def on_calibration(self, images: torch.Tensor) -> None:
        """'calibration' weighting: w_i = 1 / SD of standardised term i on these held-out normals.

        The running moments come from the training normals, which the network has fit; a term
        that spreads more on normals it never saw is the less reliable one, and gets less weight.
        """
        if self.cfg.score_weights != "calibration" or len(images) < 2:
            return
        z = torch.cat([self.moments.standardise(self._components(b, self.reconstruct(b)[0])[1]) for b in images.split(16)])
        self.weights.copy_(1.0 / z.std(0).clamp(min=1e-6))

    def score_components(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Pixel-residual score, discriminator-feature distance (raw) and the combined score, each [B]."""
        x_hat, _ = self.reconstruct(x)
        _, comps = self._components(x, x_hat)
        z = self.moments.standardise(comps)
        return {"pixel_residual": comps[:, 0], "disc_feature": comps[:, 1], "sum": self._combine(z)}

    def configure_optimizers(self, cfg: TrainConfig) -> list[torch.optim.Optimizer]:
        gen = [p for n, p in self.named_parameters() if not n.startswith("disc.")]
        lr = cfg.lr if cfg.lr is not None else self.cfg.lr
        return [
            torch.optim.Adam(gen, lr=lr, betas=(0.5, 0.999), weight_decay=cfg.weight_decay),
            torch.optim.Adam(self.disc.parameters(), lr=self.cfg.lr_disc, betas=(0.5, 0.999)),
        ]

    def training_step(self, batch: torch.Tensor, optimizers: list[torch.optim.Optimizer], step: int) -> dict[str, float]:
        opt_g, opt_d = optimizers
        x = batch
        ones = torch.ones(x.shape[0], device=x.device)
        # Discriminator: real normals vs reconstructions.
        x_hat, weights = self.reconstruct(x)
        d_real, _ = self.disc(x)
        d_fake, _ = self.disc(x_hat.detach())
        loss_d = F.binary_cross_entropy_with_logits(d_real, ones) + F.binary_cross_entropy_with_logits(d_fake, 0 * ones)
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        # Generator: reconstruct, fool D, keep addressing sparse.
        d_fake_g, _ = self.disc(x_hat)
        rec = F.mse_loss(x_hat, x) + self.cfg.ssim_weight * ssim_loss(x_hat, x)
        adv = F.binary_cross_entropy_with_logits(d_fake_g, ones)
        ent = sum((-w * torch.log(w + 1e-12)).sum(1).mean() for w in weights) / len(weights)
        loss_g = rec + self.cfg.adv_weight * adv + self.cfg.entropy_weight * ent
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        with torch.no_grad():
            _, comps = self._components(x, x_hat.detach())
            self.moments.update(comps)
        return {"loss": loss_g.item(), "rec": rec.item(), "adv": adv.item(), "entropy": ent.item(), "loss_d": loss_d.item()}


@register_model
def daad(**kwargs: Any) -> DAAD:
    """DAAD for a GPU: widths 32/64/128/256, 100 prototypes per scale."""
    return build_model(DAAD, DAADConfig(), kwargs)


@register_model
def daad_small(**kwargs: Any) -> DAAD:
    """64-128 px on a CPU: a quarter of the widths, same 16x16-input-pixel blocks, 50 prototypes."""
    return build_model(DAAD, DAADConfig(widths=(16, 32, 64, 64), block_sizes=(8, 4, 2, 1), mem_items=50, disc_width=16), kwargs)
