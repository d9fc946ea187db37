"""UTAD: Unsupervised Two-stage Anomaly Detection (IE-Net impression, Expert-Net detail).

Source: Y. Liu, C. Zhuang, F. Lu, "Unsupervised Two-Stage Anomaly Detection", arXiv 2103.11671.
Facts from the paper and the partial official release (DreamtaleCore/UTAD); our own code.

Data flow:

    x [B,C,H,W] --IE-Net (Inception autoencoder, sigmoid)--> impression m [B,C,H,W]
                  coarse and anomaly-free: the bottleneck is too small to carry a defect
    content c = E_c(m)        [B, 4e, H/4, W/4]   (from the impression: no anomaly)
    detail  s = E_s(x)        [B, style_dim]      (global code of the input: texture, lighting)
    y = G(c, s)               [B,C,H,W]           AdaIN-modulated decoder puts detail back
    amap  = residual map of (x, y): 1 - SSIM on gray (`map_kind="ssim"`) or mean_c (x - y)^2 ("l2")
    score = max of the k x k mean-filtered amap (the baseline's image score)

`impression(x)` exposes m for the evaluation report (interpretability is the paper's point).

Paper / released-config values used as defaults:
- IE-Net: Inception blocks (1x1, 3x3, 5x5, pool branches), BN + LeakyReLU 0.1, sigmoid output;
  widths 32/64/128/256/512 with 5 stride-2 stages -> bottleneck 512 x 8 x 8 at 256 px.
- IE-Net losses: L2 reconstruction x100, image adversarial x0.1, latent adversarial x1.5,
  KL prior x0.1. Expert-Net losses: adversarial 1, image reconstruction 10, detail code 1, content 1.
- Expert-Net shape (MUNIT's defaults, the translation network the paper builds on): width 64,
  2 downsamplings, 4 residual blocks, style (detail) code 8, MLP 256.

Choices where the paper is open or the release incomplete (settings):
- The release has two latent discriminators (1.5 / 0.5); we keep one (weight 1.5) on the bottleneck
  against N(0, I) samples: the second's input is not recoverable from the partial code.
- The two stages train together, the Expert-Net on detached impressions, because the trainer runs
  to a time budget with no known step count; the paper trains them one after the other.
- Adversarial losses are least-squares (MUNIT); lr 1e-4 for everything, Adam betas (0.5, 0.999).
- Image score = max of the 11 x 11 mean-filtered map, the baseline's (the official image-level code
  was never released). Map = 1 - SSIM on gray, the baseline's and one of the two the paper names.
- The Expert-Net pads by reflection (`pad_mode="reflect"`, MUNIT's default): with zero padding
  its full-resolution 5x5 / 7x7 convolutions drew a dark frame, and the residual peaked along the
  image border on every good image (docs/models.md, UTAD). Until 2026-12 the map was the squared
  residual box-filtered at 5 px with zero padding; models stored with that definition fail to
  load with a clear ModelIntegrityError.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from model_store.models._common import build_model, image_score, map_words, residual_map
from model_store.models.base import AnomalyModel, TrainConfig
from model_store.registry import register_model

__all__ = ["UTAD", "UTADConfig", "IENet", "ExpertNet"]


# --- IE-Net ------------------------------------------------------------------------------------


class Inception(nn.Module):
    """Four parallel branches (1x1, 1x1-3x3, 1x1-5x5, pool-1x1), concatenated, BN + LeakyReLU 0.1."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        b = cout // 4
        self.b1 = nn.Conv2d(cin, cout - 3 * b, 1, stride, bias=False)
        self.b3 = nn.Sequential(nn.Conv2d(cin, b, 1, bias=False), nn.Conv2d(b, b, 3, stride, 1, bias=False))
        self.b5 = nn.Sequential(nn.Conv2d(cin, b, 1, bias=False), nn.Conv2d(b, b, 5, stride, 2, bias=False))
        self.bp = nn.Sequential(nn.MaxPool2d(3, stride, 1), nn.Conv2d(cin, b, 1, bias=False))
        self.post = nn.Sequential(nn.BatchNorm2d(cout), nn.LeakyReLU(0.1, inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.post(torch.cat([self.b1(x), self.b3(x), self.b5(x), self.bp(x)], dim=1))


class IENet(nn.Module):
    """Inception autoencoder with a Gaussian bottleneck (mean used at inference)."""

    def __init__(self, in_ch: int, widths: tuple[int, ...]) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_ch, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]),
                                  nn.LeakyReLU(0.1, inplace=True))
        chans = (widths[0],) + tuple(widths)
        self.down = nn.Sequential(*(Inception(chans[i], chans[i + 1], stride=2) for i in range(len(widths))))
        self.mu = nn.Conv2d(widths[-1], widths[-1], 1)
        self.logvar = nn.Conv2d(widths[-1], widths[-1], 1)
        rev = tuple(reversed(chans))
        self.up = nn.Sequential(*(
            nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), Inception(rev[i], rev[i + 1]))
            for i in range(len(widths))
        ))
        self.out = nn.Sequential(nn.Conv2d(chans[0], in_ch, 3, 1, 1), nn.Sigmoid())

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.down(self.stem(x))  # [B, w_n, H/2^n, W/2^n]
        return self.mu(h), self.logvar(h).clamp(-10, 10)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.out(self.up(z))  # [B, C, H, W]


# --- Expert-Net --------------------------------------------------------------------------------


def adain(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """Instance-normalise x [B,C,H,W] and apply per-sample gamma, beta [B,C]."""
    mean = x.mean(dim=(2, 3), keepdim=True)
    std = (x.var(dim=(2, 3), keepdim=True, unbiased=False) + 1e-5).sqrt()
    return (x - mean) / std * (1 + gamma[:, :, None, None]) + beta[:, :, None, None]


class ResBlock(nn.Module):
    """Residual block: InstanceNorm in the content encoder, AdaIN (params passed in) in the decoder."""

    def __init__(self, ch: int, adaptive: bool, pad_mode: str) -> None:
        super().__init__()
        self.adaptive = adaptive
        self.c1 = nn.Conv2d(ch, ch, 3, 1, 1, padding_mode=pad_mode)
        self.c2 = nn.Conv2d(ch, ch, 3, 1, 1, padding_mode=pad_mode)
        self.n1 = nn.Identity() if adaptive else nn.InstanceNorm2d(ch, affine=True)
        self.n2 = nn.Identity() if adaptive else nn.InstanceNorm2d(ch, affine=True)

    def forward(self, x: torch.Tensor, params: torch.Tensor | None = None) -> torch.Tensor:
        h = self.c1(x)
        if params is not None:  # [B, 4C]: gamma1, beta1, gamma2, beta2
            g1, b1, g2, b2 = params.chunk(4, dim=1)
            h = F.relu(adain(h, g1, b1))
            h = adain(self.c2(h), g2, b2)
        else:
            h = self.n2(self.c2(F.relu(self.n1(h))))
        return x + h


class ExpertNet(nn.Module):
    """Content encoder + detail (style) encoder + AdaIN decoder (MUNIT-shaped)."""

    def __init__(self, in_ch: int, dim: int, n_res: int, style_dim: int, mlp_dim: int, pad_mode: str = "reflect") -> None:
        super().__init__()
        d4 = dim * 4

        def conv(cin: int, cout: int, k: int, stride: int, pad: int) -> nn.Conv2d:
            return nn.Conv2d(cin, cout, k, stride, pad, padding_mode=pad_mode)

        self.content = nn.Sequential(
            conv(in_ch, dim, 7, 1, 3), nn.InstanceNorm2d(dim, affine=True), nn.ReLU(inplace=True),
            conv(dim, dim * 2, 4, 2, 1), nn.InstanceNorm2d(dim * 2, affine=True), nn.ReLU(inplace=True),
            conv(dim * 2, d4, 4, 2, 1), nn.InstanceNorm2d(d4, affine=True), nn.ReLU(inplace=True),
            *(ResBlock(d4, adaptive=False, pad_mode=pad_mode) for _ in range(n_res)),
        )
        self.style = nn.Sequential(  # no normalisation: the code must keep global statistics
            conv(in_ch, dim, 7, 1, 3), nn.ReLU(inplace=True),
            conv(dim, dim * 2, 4, 2, 1), nn.ReLU(inplace=True),
            conv(dim * 2, d4, 4, 2, 1), nn.ReLU(inplace=True),
            conv(d4, d4, 4, 2, 1), nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(d4, style_dim, 1),
        )
        self.res = nn.ModuleList(ResBlock(d4, adaptive=True, pad_mode=pad_mode) for _ in range(n_res))
        self.n_adain = 4 * d4 * n_res
        self.mlp = nn.Sequential(nn.Linear(style_dim, mlp_dim), nn.ReLU(inplace=True), nn.Linear(mlp_dim, mlp_dim),
                                 nn.ReLU(inplace=True), nn.Linear(mlp_dim, self.n_adain))
        self.up = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="nearest"), conv(d4, dim * 2, 5, 1, 2),
            nn.GroupNorm(1, dim * 2), nn.ReLU(inplace=True),  # GroupNorm(1) = MUNIT's LayerNorm
            nn.Upsample(scale_factor=2, mode="nearest"), conv(dim * 2, dim, 5, 1, 2),
            nn.GroupNorm(1, dim), nn.ReLU(inplace=True),
            conv(dim, in_ch, 7, 1, 3), nn.Sigmoid(),
        )

    def encode_style(self, x: torch.Tensor) -> torch.Tensor:
        return self.style(x).flatten(1)  # [B, style_dim]

    def decode(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        params = self.mlp(style).chunk(len(self.res), dim=1)  # per block [B, 4C]
        h = content
        for block, p in zip(self.res, params):
            h = block(h, p)
        return self.up(h)


class PatchDisc(nn.Module):
    """Least-squares patch discriminator: [B,C,H,W] -> [B,1,H/8,W/8]."""

    def __init__(self, in_ch: int, width: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_ch, width, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(width, width * 2, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(width * 2, width * 4, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(width * 4, 1, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@dataclass
class UTADConfig:
    in_channels: int = 3
    ie_widths: tuple[int, ...] = (32, 64, 128, 256, 512)  # 5 stages: 512 x 8 x 8 at 256 px
    ex_dim: int = 64  # MUNIT default
    ex_res: int = 4
    style_dim: int = 8  # small on purpose: a global code cannot carry a local defect
    mlp_dim: int = 256
    disc_width: int = 64
    w_ie_rec: float = 100.0  # released config
    w_ie_adv: float = 0.1
    w_ie_lat: float = 1.5
    w_ie_kl: float = 0.1
    w_ex_adv: float = 1.0
    w_ex_rec: float = 10.0
    w_ex_style: float = 1.0
    w_ex_content: float = 1.0
    map_kind: str = "ssim"  # "ssim" = 1 - SSIM on gray, "l2" = squared error
    score_kernel: int = 11  # mean filter before the image max (the baseline's)
    pad_mode: str = "reflect"  # Expert-Net padding (MUNIT's); "zeros" draws a dark frame
    lr: float = 1e-4


class UTAD(AnomalyModel):
    def __init__(self, cfg: UTADConfig) -> None:
        super().__init__()
        self.score_definition = (
            f"amap: {map_words(cfg.map_kind)} of the input vs the "
            f"Expert-Net reconstruction ({cfg.pad_mode} padding; impression content + input detail code); "
            f"score: max of the {cfg.score_kernel}x{cfg.score_kernel} mean-filtered amap"
        )
        self.cfg = cfg
        self.in_channels = cfg.in_channels
        self.ie = IENet(cfg.in_channels, cfg.ie_widths)
        self.expert = ExpertNet(cfg.in_channels, cfg.ex_dim, cfg.ex_res, cfg.style_dim, cfg.mlp_dim, cfg.pad_mode)
        self.d_imp = PatchDisc(cfg.in_channels, cfg.disc_width)  # judges impressions
        self.d_exp = PatchDisc(cfg.in_channels, cfg.disc_width)  # judges final reconstructions
        zc = cfg.ie_widths[-1]
        self.d_lat = nn.Sequential(nn.Conv2d(zc, zc // 2, 1), nn.LeakyReLU(0.2), nn.Conv2d(zc // 2, 1, 1))

    def impression(self, x: torch.Tensor) -> torch.Tensor:
        """The IE-Net's anomaly-free impression of x, [B,C,H,W] in [0, 1] (mean code, no sampling)."""
        mu, _ = self.ie.encode(x)
        return self.ie.decode(mu)

    def reconstruct(self, x: torch.Tensor, imp: torch.Tensor) -> torch.Tensor:
        return self.expert.decode(self.expert.content(imp), self.expert.encode_style(x))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        amap = residual_map(x, self.reconstruct(x, self.impression(x)), self.cfg.map_kind)  # [B, 1, H, W]
        return amap[:, 0], image_score(amap, self.cfg.score_kernel)

    def configure_optimizers(self, cfg: TrainConfig) -> list[torch.optim.Optimizer]:
        lr = cfg.lr if cfg.lr is not None else self.cfg.lr
        gen = list(self.ie.parameters()) + list(self.expert.parameters())
        disc = list(self.d_imp.parameters()) + list(self.d_exp.parameters()) + list(self.d_lat.parameters())
        return [
            torch.optim.Adam(gen, lr=lr, betas=(0.5, 0.999), weight_decay=cfg.weight_decay),
            torch.optim.Adam(disc, lr=lr, betas=(0.5, 0.999)),
        ]

    def training_step(self, batch: torch.Tensor, optimizers: list[torch.optim.Optimizer], step: int) -> dict[str, float]:
        opt_g, opt_d = optimizers
        c = self.cfg
        x = batch
        # Stage 1 forward: sampled bottleneck (KL prior and latent discriminator shape it).
        mu, logvar = self.ie.encode(x)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        imp = self.ie.decode(z)
        # Stage 2 forward on the detached impression: the Expert-Net must not bend the IE-Net.
        content = self.expert.content(imp.detach())
        style = self.expert.encode_style(x)
        y = self.expert.decode(content, style)

        # Discriminators (least squares): real images / prior samples vs generated.
        d_loss = (
            _ls(self.d_imp(x), 1) + _ls(self.d_imp(imp.detach()), 0)
            + _ls(self.d_exp(x), 1) + _ls(self.d_exp(y.detach()), 0)
            + _ls(self.d_lat(torch.randn_like(z)), 1) + _ls(self.d_lat(z.detach()), 0)
        )
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()

        ie_rec = F.mse_loss(imp, x)
        kl = 0.5 * (mu**2 + logvar.exp() - logvar - 1).mean()
        ie_loss = (c.w_ie_rec * ie_rec + c.w_ie_adv * _ls(self.d_imp(imp), 1)
                   + c.w_ie_lat * _ls(self.d_lat(z), 1) + c.w_ie_kl * kl)
        ex_rec = F.l1_loss(y, x)
        ex_loss = (c.w_ex_rec * ex_rec + c.w_ex_adv * _ls(self.d_exp(y), 1)
                   + c.w_ex_style * F.l1_loss(self.expert.encode_style(y), style.detach())
                   + c.w_ex_content * F.l1_loss(self.expert.content(y), content.detach()))
        loss = ie_loss + ex_loss
        opt_g.zero_grad(set_to_none=True)
        loss.backward()
        opt_g.step()
        return {"loss": loss.item(), "ie_rec": ie_rec.item(), "kl": kl.item(), "ex_rec": ex_rec.item(),
                "loss_d": d_loss.item()}


def _ls(pred: torch.Tensor, target: float) -> torch.Tensor:
    return ((pred - target) ** 2).mean()


@register_model
def utad(**kwargs: Any) -> UTAD:
    """UTAD at the released config's widths: 5 IE stages, MUNIT-sized Expert-Net (256 px, GPU)."""
    return build_model(UTAD, UTADConfig(), kwargs)


@register_model
def utad_small(**kwargs: Any) -> UTAD:
    """64-128 px on a CPU: 4 IE stages (128 x 4 x 4 at 64 px keeps the paper's 6:1 compression) and an
    eighth-width Expert-Net, which dominates the step time (full-resolution 5x5 / 7x7 convs)."""
    return build_model(UTAD, UTADConfig(ie_widths=(16, 32, 64, 128), ex_dim=8, ex_res=2, mlp_dim=32, disc_width=8), kwargs)
