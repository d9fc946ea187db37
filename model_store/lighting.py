"""Photometric (lighting) shifts: the evaluation's fixed shift set and the training augmentation.

Every shift is a pure function of a float batch x [B, C, H, W] in [0, 1] (RGB or 1-channel) and
returns a batch of the same shape, clipped to [0, 1]; none looks at other images of the batch.

- brightness(x, f):  x * (1 + f)                     (a lamp f = +20 % brighter: gain 1.2)
- contrast(x, f):    m + (x - m) * (1 + f), m = each image's mean over all its pixels and channels
- gamma(x, g):       x ** g                           (g < 1 lifts the mid-tones, g > 1 darkens them)
- white_balance(x, t): R * (1 + t), B * (1 - t), G unchanged (t > 0: warmer light; 1-channel: no-op)
- side_lamp(x, a, angle): x * (1 + a * r), r in [-1, 1] a linear ramp across the image along the
  direction `angle` (radians; 0 = left dark, right bright): a soft gradient as from a lamp at one side

The evaluation set `EVAL_SHIFTS` (name -> parameters) is what `linewatch-models evaluate --shift`
applies to the test images: brightness +-10/20/30 %, contrast +-20 %, gamma 0.8 / 1.25, white
balance +-0.1, a side lamp of +-20 % with a direction drawn per image from `seed`. Shifts act on
the model input (the preprocessed uint8 image: `shift_uint8`), which for a global gain is the same
as shifting the camera frame (INTER_AREA resizing is linear) up to rounding and clipping.

`augment` is the training augmentation (`photometric` in TrainRequest / `train --photometric S`):
each image of a normal batch gets, with probability 0.8, a random composition of the same five
shifts with strengths scaled by S (gain 1 +- S, contrast 1 +- S/2, gamma exp(+-S), white balance
+-S/3, a side lamp of up to +-S in half the cases), drawn from a seeded torch.Generator.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

ShiftFn = Callable[[torch.Tensor], torch.Tensor]


def _clip(x: torch.Tensor) -> torch.Tensor:
    return x.clamp_(0.0, 1.0)


def brightness(x: torch.Tensor, f: float | torch.Tensor) -> torch.Tensor:
    return _clip(x * (1.0 + _per_image(f, x)))


def contrast(x: torch.Tensor, f: float | torch.Tensor) -> torch.Tensor:
    m = x.mean(dim=(1, 2, 3), keepdim=True)
    return _clip(m + (x - m) * (1.0 + _per_image(f, x)))


def gamma(x: torch.Tensor, g: float | torch.Tensor) -> torch.Tensor:
    return _clip(x.clamp(min=0.0) ** _per_image(g, x))


def white_balance(x: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
    if x.shape[1] != 3:
        return x.clone()
    t = _per_image(t, x)[:, :, 0, 0]  # [B, 1]
    gains = torch.cat([1.0 + t, torch.ones_like(t), 1.0 - t], dim=1)  # [B, 3]
    return _clip(x * gains[:, :, None, None])


def ramp(h: int, w: int, angle: float | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """[B, 1, H, W] linear ramp in [-1, 1] along `angle` (per image when a [B] tensor), exactly -1 / +1 at the ends."""
    ys = torch.linspace(-1.0, 1.0, h, dtype=like.dtype, device=like.device)[:, None]
    xs = torch.linspace(-1.0, 1.0, w, dtype=like.dtype, device=like.device)[None, :]
    a = torch.as_tensor(angle, dtype=like.dtype, device=like.device).reshape(-1, 1, 1)
    r = xs * torch.cos(a) + ys * torch.sin(a)  # [B or 1, H, W]
    span = r.flatten(1).abs().amax(1).clamp(min=1e-6)[:, None, None]
    return (r / span)[:, None]


def side_lamp(x: torch.Tensor, a: float | torch.Tensor, angle: float | torch.Tensor = 0.0) -> torch.Tensor:
    return _clip(x * (1.0 + _per_image(a, x) * ramp(x.shape[2], x.shape[3], angle, x)))


def _per_image(v: float | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A scalar, or one value per image ([B]), shaped to broadcast over [B, C, H, W]."""
    return torch.as_tensor(v, dtype=like.dtype, device=like.device).reshape(-1, 1, 1, 1)


# ---- the evaluation's shift set -------------------------------------------------------------
@dataclass(frozen=True)
class Shift:
    name: str
    kind: str  # brightness | contrast | gamma | white_balance | side_lamp
    value: float

    def apply(self, x: torch.Tensor, seed: int = 0) -> torch.Tensor:
        if self.kind == "side_lamp":  # one direction per image, reproducible from the seed
            angles = np.random.default_rng(seed).uniform(0, 2 * math.pi, len(x))
            return side_lamp(x, self.value, torch.from_numpy(angles).to(x.dtype))
        return _KINDS[self.kind](x, self.value)


_KINDS: dict[str, Callable[[torch.Tensor, float], torch.Tensor]] = {
    "brightness": brightness, "contrast": contrast, "gamma": gamma, "white_balance": white_balance,
}

EVAL_SHIFTS: tuple[Shift, ...] = (
    *(Shift(f"brightness{p:+d}%", "brightness", p / 100) for p in (-30, -20, -10, 10, 20, 30)),
    Shift("contrast-20%", "contrast", -0.2), Shift("contrast+20%", "contrast", 0.2),
    Shift("gamma0.8", "gamma", 0.8), Shift("gamma1.25", "gamma", 1.25),
    Shift("warm+0.1", "white_balance", 0.1), Shift("cool-0.1", "white_balance", -0.1),
    Shift("side_lamp20%", "side_lamp", 0.2),
)
SHIFTS_BY_NAME = {s.name: s for s in EVAL_SHIFTS}


def shift_uint8(images: torch.Tensor, shift: Shift, seed: int = 0, batch: int = 64) -> torch.Tensor:
    """uint8 [N, C, H, W] model inputs -> the same, shifted and rounded back to uint8."""
    out = torch.empty_like(images)
    for i in range(0, len(images), batch):
        x = images[i : i + batch].float().div_(255.0)
        out[i : i + batch] = shift.apply(x, seed=seed + i).mul_(255.0).round_().to(torch.uint8)
    return out


# ---- training augmentation ------------------------------------------------------------------
def augment(x: torch.Tensor, strength: float, gen: torch.Generator, p: float = 0.8) -> torch.Tensor:
    """Random lighting for a batch of normal images [B, C, H, W] in [0, 1] (see the module docstring)."""
    if strength <= 0:
        return x
    b = x.shape[0]

    def u(lo: float, hi: float) -> torch.Tensor:
        return torch.rand(b, generator=gen) * (hi - lo) + lo

    s = strength
    on = (torch.rand(b, generator=gen) < p).to(x.dtype)
    lamp_on = (torch.rand(b, generator=gen) < 0.5).to(x.dtype)
    gain, con, gam, wb = u(-s, s) * on, u(-s / 2, s / 2) * on, torch.exp(u(-s, s) * on), u(-s / 3, s / 3) * on
    lamp, angle = u(0, s) * on * lamp_on, u(0, 2 * math.pi)
    dev = x.device
    y = side_lamp(x, lamp.to(dev), angle.to(dev))
    y = white_balance(gamma(contrast(y, con.to(dev)), gam.to(dev)), wb.to(dev))
    return brightness(y, gain.to(dev))
