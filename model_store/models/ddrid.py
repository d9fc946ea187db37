"""DDR-ID: Dual Deep Reconstruction networks based Image Decomposition.

Source: D. Lin, Y. Li, S. Xie, T. L. Nwe, S. Dong, "DDR-ID: Dual Deep Reconstruction Networks
Based Image Decomposition for Anomaly Detection", arXiv 2007.09431 (J. Ambient Intell. Humaniz.
Comput. 2021). The paper fixes the three losses (one-class, latent-space constraint, reconstruction),
the decomposition into a normal component and a residual, and the two scores; it evaluates on
MNIST, CIFAR-10, Endosome and GTSRB only, so the layer shapes and weights here are our settings.

Data flow (two conv autoencoders of the same shape, latent at 1/2^n of the input):

    x --E_n--> z_n [B, d, h, w] --D_n--> x_n   normal-class network: z_n is kept compact around a
                                               centre c (one-class loss), so x_n can only be normal
    x --E_f--> z_f               --D_f--> x_f   free network: unconstrained full reconstruction
    decomposition  x = x_n + r:  normal component x_n, residual r = x - x_n (what the normal
                   class cannot explain: the anomaly, plus the detail the small nets cannot draw)
    latent score   s_lat = max over positions of mean_d (z_n - c)^2
    image score    s_img = max of the k x k mean-filtered residual map
    amap  = residual map of (x, x_n): 1 - SSIM on gray (`map_kind="ssim"`) or mean_c r^2 ("l2")
    score = latent_weight * z(s_lat) + residual_weight * z(s_img)                  [B]

Why the residual is x - x_n and 1 - SSIM (changed from x_f - x_n and squared error, 2026-12, after
measuring): the difference of two reconstructions lit up where the two nets disagree (specular
highlights on ball_screw) rather than on the defects (pixel AUROC 0.425); x - x_n with SSIM raised
magnetic_tile image AUROC 0.530 -> 0.583 on the same stored model (docs/models.md). Models stored
with the old definition fail to load with a clear ModelIntegrityError (their score definition
differs); retrain them.

Losses on a batch of normals (weights are settings, defaults below):
    reconstruction   |x_n - x|^2 + |x_f - x|^2 + ssim_weight * (1 - SSIM(x_n, x))   (the map is 1 - SSIM)
    one-class        mean (z_n - c)^2                   (Deep SVDD; c = mean code at start, fixed)
    latent constraint mean (E_n(x_f) - z_n)^2            the free network's output must land on the
                                                         same normal-class code: ties the two nets
Score combination: each raw score is standardised with the running mean/std of the same score on
training normals (EMA in buffers, saved with the weights), and the two are summed with equal weight,
so neither dominates through its raw scale. Set `latent_weight` / `residual_weight` to change it.

Defaults and why: widths 32/64/128/256 (4 stride-2 stages), latent d = 64 channels per position
(spatial latent, so the model stays fully convolutional and keeps location); one-class weight 0.1 and
constraint weight 0.1 (the reconstruction must dominate early or the codes collapse to c, the known
Deep SVDD failure); Adam lr 1e-3; `score_kernel` 11 (the baseline's, so the image scores compare).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from model_store.models._common import RunningMoments, build_model, image_score, map_words, residual_map, ssim_loss
from model_store.models.base import AnomalyModel, TrainConfig
from model_store.registry import register_model

__all__ = ["DDRID", "DDRIDConfig", "ConvAE"]


class ConvAE(nn.Module):
    """Stride-2 conv encoder to a d-channel latent map, mirrored transposed-conv decoder, sigmoid."""

    def __init__(self, in_ch: int, widths: tuple[int, ...], latent: int) -> None:
        super().__init__()
        enc: list[nn.Module] = []
        c = in_ch
        for w in widths:
            enc += [nn.Conv2d(c, w, 4, 2, 1, bias=False), nn.BatchNorm2d(w), nn.LeakyReLU(0.2, inplace=True)]
            c = w
        enc += [nn.Conv2d(c, latent, 1)]
        self.encoder = nn.Sequential(*enc)
        dec: list[nn.Module] = [nn.Conv2d(latent, c, 1), nn.LeakyReLU(0.2, inplace=True)]
        for w in list(reversed(widths))[1:] + [widths[0]]:
            dec += [nn.ConvTranspose2d(c, w, 4, 2, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
            c = w
        dec += [nn.Conv2d(c, in_ch, 3, 1, 1), nn.Sigmoid()]
        self.decoder = nn.Sequential(*dec)


@dataclass
class DDRIDConfig:
    in_channels: int = 3
    widths: tuple[int, ...] = (32, 64, 128, 256)
    latent: int = 64  # channels per latent position
    w_oneclass: float = 0.1
    w_constraint: float = 0.1
    ssim_weight: float = 1.0  # (1 - SSIM) term on the normal component: train what the map measures
    latent_weight: float = 1.0  # weight of the standardised latent-distance score
    residual_weight: float = 1.0  # weight of the standardised image-space score
    map_kind: str = "ssim"  # residual map of (x, x_n): "ssim" = 1 - SSIM on gray, "l2" = squared error
    score_kernel: int = 11  # mean filter before the max (the baseline's)
    lr: float = 1e-3


class DDRID(AnomalyModel):
    def __init__(self, cfg: DDRIDConfig) -> None:
        super().__init__()
        self.score_definition = (
            f"amap: {map_words(cfg.map_kind)} of the input vs its "
            f"normal-class component; score: {cfg.latent_weight:g} x standardised max latent distance to the normal "
            f"centre + {cfg.residual_weight:g} x standardised max of the {cfg.score_kernel}x{cfg.score_kernel} mean-filtered amap"
        )
        self.cfg = cfg
        self.in_channels = cfg.in_channels
        self.normal = ConvAE(cfg.in_channels, cfg.widths, cfg.latent)
        self.free = ConvAE(cfg.in_channels, cfg.widths, cfg.latent)
        self.register_buffer("centre", torch.zeros(cfg.latent))
        self.register_buffer("centre_set", torch.zeros((), dtype=torch.bool))
        self.moments = RunningMoments(2)

    def decompose(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """x -> normal-class code z_n, normal component x_n, free reconstruction x_f, residual r."""
        z_n = self.normal.encoder(x)  # [B, d, H/2^n, W/2^n]
        x_n = self.normal.decoder(z_n)  # [B, C, H, W]
        x_f = self.free.decoder(self.free.encoder(x))  # [B, C, H, W]
        return {"z_n": z_n, "x_n": x_n, "x_f": x_f, "residual": x - x_n}

    def _latent_dist(self, z: torch.Tensor) -> torch.Tensor:
        return ((z - self.centre[None, :, None, None]) ** 2).mean(1)  # [B, h, w]

    def _scores(self, x: torch.Tensor, parts: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        amap = residual_map(x, parts["x_n"], self.cfg.map_kind)  # [B, 1, H, W]
        s_lat = self._latent_dist(parts["z_n"]).flatten(1).amax(1)  # [B]
        s_img = image_score(amap, self.cfg.score_kernel)  # [B]
        return amap[:, 0], torch.stack([s_lat, s_img], dim=1)  # [B, H, W], [B, 2]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        amap, raw = self._scores(x, self.decompose(x))
        z = self.moments.standardise(raw)
        return amap, self.cfg.latent_weight * z[:, 0] + self.cfg.residual_weight * z[:, 1]

    def score_components(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The paper's two scores (raw) and the model's combined score, each [B]."""
        amap, raw = self._scores(x, self.decompose(x))
        z = self.moments.standardise(raw)
        return {"latent": raw[:, 0], "image": raw[:, 1],
                "sum": self.cfg.latent_weight * z[:, 0] + self.cfg.residual_weight * z[:, 1]}

    @torch.no_grad()
    def on_train_start(self, images: torch.Tensor, cfg: TrainConfig) -> None:
        """Deep SVDD: the centre is the mean initial code of the training normals, then fixed."""
        self._set_centre(images[:64])

    @torch.no_grad()
    def _set_centre(self, images: torch.Tensor) -> None:
        was_training = self.training
        self.eval()
        z = self.normal.encoder(images)
        self.train(was_training)
        self.centre.copy_(z.mean(dim=(0, 2, 3)))
        self.centre_set.fill_(True)

    def configure_optimizers(self, cfg: TrainConfig) -> list[torch.optim.Optimizer]:
        lr = cfg.lr if cfg.lr is not None else self.cfg.lr
        return [torch.optim.Adam(self.parameters(), lr=lr, weight_decay=cfg.weight_decay)]

    def training_step(self, batch: torch.Tensor, optimizers: list[torch.optim.Optimizer], step: int) -> dict[str, float]:
        (opt,) = optimizers
        if not bool(self.centre_set):  # a trainer that skipped on_train_start
            self._set_centre(batch)
        parts = self.decompose(batch)
        rec = (F.mse_loss(parts["x_n"], batch) + F.mse_loss(parts["x_f"], batch)
               + self.cfg.ssim_weight * ssim_loss(parts["x_n"], batch))
        oneclass = self._latent_dist(parts["z_n"]).mean()
        constraint = F.mse_loss(self.normal.encoder(parts["x_f"]), parts["z_n"])
        loss = rec + self.cfg.w_oneclass * oneclass + self.cfg.w_constraint * constraint
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            self.moments.update(self._scores(batch, {k: v.detach() for k, v in parts.items()})[1])
        return {"loss": loss.item(), "rec": rec.item(), "oneclass": oneclass.item(), "constraint": constraint.item()}


@register_model
def ddrid(**kwargs: Any) -> DDRID:
    """DDR-ID for a GPU: widths 32/64/128/256, 64 latent channels."""
    return build_model(DDRID, DDRIDConfig(), kwargs)


@register_model
def ddrid_small(**kwargs: Any) -> DDRID:
    """64-128 px on a CPU: half the widths, 3 stages (8 x 8 latent at 64 px), 32 latent channels."""
    return build_model(DDRID, DDRIDConfig(widths=(16, 32, 64), latent=32), kwargs)
