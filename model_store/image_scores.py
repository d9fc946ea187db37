"""Image scores from a pixel anomaly map: the choices issue 27 compares, as pure functions.

All take maps [N, H, W] (numpy or torch, float) and return scores [N] (float64 numpy):

- max_mean(k):   max of the k x k mean-filtered map, zero padding counted (DRAEM's avg_pool2d; k = 1 is the plain max).
                 What DRAEM and the baseline serve today (k = 11 at 128 px, 21 at 256 px).
- topk_mean(q):  mean of the largest ceil(q H W) pixels (q = 0.01: the top 1 %).
- above(t):      mean over the image of max(map - t, 0): the mass of the map above the pixel threshold
                 t (the calibration's pixel threshold, from normal maps only), 0 for an image with no
                 pixel above it. Ties many tiny excesses to one large one, unlike a max.

`choices(pixel_threshold)` is the set the bench measures (bench/image_scores.py); the default is
chosen from normal images only (held-out normals against the same normals with simulated
anomalies), never from the test set's defects.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from model_store.models._common import mean_filter

ScoreFn = Callable[[torch.Tensor], np.ndarray]


def _t(maps: np.ndarray | torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(np.asarray(maps) if not torch.is_tensor(maps) else maps).float()


@torch.inference_mode()
def max_mean(maps: np.ndarray | torch.Tensor, k: int) -> np.ndarray:
    m = _t(maps)[:, None]
    return mean_filter(m, k).amax(dim=(1, 2, 3)).double().numpy()


@torch.inference_mode()
def topk_mean(maps: np.ndarray | torch.Tensor, q: float) -> np.ndarray:
    if not 0 < q <= 1:
        raise ValueError(f"q must be in (0, 1], got {q}")
    flat = _t(maps).flatten(1)
    k = max(1, math.ceil(q * flat.shape[1]))
    return flat.topk(k, dim=1).values.mean(1).double().numpy()


@torch.inference_mode()
def above(maps: np.ndarray | torch.Tensor, t: float) -> np.ndarray:
    return (_t(maps).flatten(1) - t).clamp(min=0).mean(1).double().numpy()


def choices(pixel_threshold: float) -> dict[str, ScoreFn]:
    """name -> score function; `pixel_threshold` for the above-threshold score."""
    out: dict[str, ScoreFn] = {f"max_mean{k}": (lambda m, k=k: max_mean(m, k)) for k in (1, 5, 11, 21, 31)}
    out.update({f"top{q * 100:g}%": (lambda m, q=q: topk_mean(m, q)) for q in (0.001, 0.01, 0.05)})
    out["above_pixel_threshold"] = lambda m: above(m, pixel_threshold)
    return out
