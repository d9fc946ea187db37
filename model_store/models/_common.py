"""What the model families share: the builder, conv blocks, init, SSIM, focal loss, the residual map,
the mean filter and image score, and running score moments.

Every family builds through `build_model` (one place that merges a variant's default config with
the manifest's kwargs, like timm's `build_model_with_cfg`), and every reconstruction model turns
(input, reconstruction) into a pixel map and an image score with `residual_map` / `image_score`,
so the families differ only in what produces the reconstruction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, fields, is_dataclass
from typing import Any, TypeVar

import torch
import torch.nn.functional as F
from torch import nn

M = TypeVar("M", bound=nn.Module)

MAP_KINDS = ("ssim", "l2")


# --- builder -----------------------------------------------------------------------------------


def build_model(model_cls: type[M], default_cfg: Any, kwargs: Mapping[str, Any]) -> M:
    """`model_cls(cfg)` with cfg = the variant's default config dataclass updated by `kwargs`.

    Manifests travel as JSON, so a list given for a tuple-valued field becomes a tuple. An unknown
    key is a TypeError and a value the model rejects a ValueError; `create_model` turns both into
    a ModelIntegrityError with the architecture's name.
    """
    if not is_dataclass(default_cfg):
        raise TypeError(f"{model_cls.__name__}: default config must be a dataclass instance")
    known = {f.name for f in fields(default_cfg)}
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise TypeError(f"unknown setting(s) {unknown} for {model_cls.__name__}; known: {sorted(known)}")
    merged = {**asdict(default_cfg), **kwargs}
    for key, default in asdict(default_cfg).items():
        if isinstance(default, tuple) and isinstance(merged[key], list):
            merged[key] = tuple(merged[key])
    return model_cls(type(default_cfg)(**merged))


# --- layers ------------------------------------------------------------------------------------


def conv_bn_relu(cin: int, cout: int) -> list[nn.Module]:
    """3x3 conv + BatchNorm + ReLU, the unit every DRAEM / baseline stage is made of."""
    return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


def conv_bn_lrelu(cin: int, cout: int, k: int = 3, stride: int = 1) -> nn.Sequential:
    """Conv (no bias) + BatchNorm + LeakyReLU 0.2 (DCGAN-style); stride 2 with k = 4 halves H, W."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride, padding=(k - 1) // 2 if stride == 1 else 1, bias=False),
        nn.BatchNorm2d(cout),
        nn.LeakyReLU(0.2, inplace=True),
    )


def init_weights(module: nn.Module) -> None:
    """DRAEM's (and DCGAN's) init: conv weights N(0, 0.02); BatchNorm weight N(1, 0.02), bias 0."""
    if isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


# --- losses and maps ---------------------------------------------------------------------------


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


def gray(x: torch.Tensor) -> torch.Tensor:
    """[B, C, H, W] -> [B, 1, H, W] channel mean (a no-op copy for 1-channel input)."""
    return x.mean(dim=1, keepdim=True)


def map_words(kind: str) -> str:
    """`kind` in a score definition's words; an unknown kind is refused when the model is built."""
    if kind not in MAP_KINDS:
        raise ValueError(f"map_kind must be one of {MAP_KINDS}, got {kind!r}")
    return "1 - SSIM on gray" if kind == "ssim" else "squared error"


def residual_map(x: torch.Tensor, recon: torch.Tensor, kind: str = "ssim") -> torch.Tensor:
    """Pixel anomaly map [B, 1, H, W] of input vs reconstruction.

    "ssim": 1 - SSIM of the gray images: compares local structure, so a reconstruction that is
    merely a little blurred or off in brightness scores low (the baseline's map). "l2": squared
    residual, mean over channels: sees every intensity error, including blur on sharp texture.
    """
    if kind == "ssim":
        return 1.0 - ssim_map(gray(recon), gray(x))
    if kind == "l2":
        return ((x - recon) ** 2).mean(dim=1, keepdim=True)
    raise ValueError(f"map_kind must be one of {MAP_KINDS}, got {kind!r}")


def mean_filter(x: torch.Tensor, k: int, include_pad: bool = True) -> torch.Tensor:
    """k x k mean filter of [B, C, H, W], stride 1, same size.

    `include_pad=True` counts the zero padding (as DRAEM's avg_pool2d does): values near the
    border are pulled towards 0, which also keeps border artefacts out of a max. False averages
    only the pixels inside the image.
    """
    if k <= 1:
        return x
    return F.avg_pool2d(x, k, stride=1, padding=k // 2, count_include_pad=include_pad)


def image_score(amap: torch.Tensor, k: int, border: int = 0) -> torch.Tensor:
    """Max of the k x k mean-filtered map [B, 1, H, W] -> [B], ignoring `border` px at each edge."""
    smoothed = mean_filter(amap, k)
    if border > 0:
        smoothed = smoothed[..., border:-border, border:-border]
    return smoothed.amax(dim=(1, 2, 3))


class RunningMoments(nn.Module):
    """EMA mean / variance of K score components on training normals; `standardise` is traceable.

    Kept as buffers, so they travel in the safetensors weights: two scores on different raw
    scales can then be added as z-scores.
    """

    def __init__(self, k: int, momentum: float = 0.05) -> None:
        super().__init__()
        self.momentum = momentum
        self.register_buffer("mean", torch.zeros(k))
        self.register_buffer("var", torch.ones(k))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def update(self, values: torch.Tensor) -> None:  # values [B, K]
        m, v = values.mean(0), values.var(0, unbiased=False) + 1e-12
        if int(self.count) == 0:
            self.mean.copy_(m)
            self.var.copy_(v)
        else:
            self.mean.lerp_(m, self.momentum)
            self.var.lerp_(v, self.momentum)
        self.count += 1

    def standardise(self, values: torch.Tensor) -> torch.Tensor:  # [B, K] -> [B, K]
        return (values - self.mean) / torch.sqrt(self.var + 1e-12)


# --- input normalisation -------------------------------------------------------------------------

INPUT_NORMS = ("none", "gain", "standardise")


class InputNorm(nn.Module):
    """Takes global lighting out of the input, inside the model (so the worker and export follow it).

    "none": identity (no buffers: weights of models stored before this existed still fit).
    "gain": x * ref_mean / mean(x), per image: a lamp's global gain (brighter or darker by any
    factor) is divided out exactly, up to clipping.
    "standardise": (x - mean(x)) / std(x) * ref_std + ref_mean, per image: gain and offset (and
    global contrast) are taken out.
    ref_mean / ref_std are the mean and the per-image std of the training normals (`fit`, called
    at the start of training), kept as buffers so they travel in the weights: the normalised image
    stays in the range the network was built for ([0, 1], clipped).
    """

    def __init__(self, mode: str = "none") -> None:
        super().__init__()
        if mode not in INPUT_NORMS:
            raise ValueError(f"input_norm must be one of {INPUT_NORMS}, got {mode!r}")
        self.mode = mode
        if mode != "none":
            self.register_buffer("ref_mean", torch.tensor(0.5))
            self.register_buffer("ref_std", torch.tensor(0.2))

    @torch.no_grad()
    def fit(self, images: torch.Tensor) -> None:
        """Reference statistics from a sample of training normals [N, C, H, W] in [0, 1]."""
        if self.mode == "none":
            return
        self.ref_mean.copy_(images.mean())
        self.ref_std.copy_(images.flatten(1).std(1).mean())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "none":
            return x
        m = x.mean(dim=(1, 2, 3), keepdim=True)
        if self.mode == "gain":
            return (x * (self.ref_mean / m.clamp(min=1e-3))).clamp(0.0, 1.0)
        s = x.flatten(1).std(1)[:, None, None, None]
        return ((x - m) / s.clamp(min=1e-3) * self.ref_std + self.ref_mean).clamp(0.0, 1.0)

    def words(self) -> str:
        """Clause for a score definition ('' for none, so older definitions stay word for word)."""
        return "" if self.mode == "none" else f"; input normalised per image ({self.mode}) to the training reference"
