"""Small pieces shared by the model families: SSIM, focal loss, mean filter, init, conv blocks."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn_relu(cin: int, cout: int) -> list[nn.Module]:
    """3x3 conv + BatchNorm + ReLU, the unit every DRAEM / baseline stage is made of."""
    return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


def init_weights(module: nn.Module) -> None:
    """DRAEM's init: conv weights N(0, 0.02); BatchNorm weight N(1, 0.02), bias 0."""
    if isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def _gaussian_window(size: int, sigma: float, channels: int, like: torch.Tensor) -> torch.Tensor:
    coords = torch.arange(size, dtype=like.dtype, device=like.device) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous()


def ssim_map(a: torch.Tensor, b: torch.Tensor, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Per-pixel SSIM [B, C, H, W] of images in [0, 1] (Gaussian window 11, sigma 1.5, as DRAEM)."""
    c = a.shape[1]
    w = _gaussian_window(window, sigma, c, a)
    pad = window // 2

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(t, (pad,) * 4, mode="reflect"), w, groups=c)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2  # standard constants for a data range of 1
    return ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))


def ssim_loss(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return 1.0 - ssim_map(a, b).mean()


def focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0) -> torch.Tensor:
    """Focal loss on the 2-class softmax; logits [B, 2, H, W], target mask [B, 1, H, W] in {0, 1}."""
    logp = F.log_softmax(logits, dim=1)
    t = target[:, 0].long()
    logp_t = logp.gather(1, t[:, None])[:, 0]  # [B, H, W] log-prob of the true class
    p_t = logp_t.exp()
    return (-((1 - p_t) ** gamma) * logp_t).mean()


def mean_filter(x: torch.Tensor, k: int) -> torch.Tensor:
    """k x k mean filter, stride 1, same size (zero padding counted, as avg_pool2d does in DRAEM)."""
    return F.avg_pool2d(x, k, stride=1, padding=k // 2)
