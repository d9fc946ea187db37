"""DRAEM's anomaly simulation: Perlin-noise masks filled with blended textures (training only).

Recipe (../shared/docs/models.md, DRAEM): a Perlin noise map with 2^k periods per axis (k uniform
in 0..5 per axis), randomly rotated, thresholded at 0.5, is the mask; inside it the image becomes
(1 - b) * image + b * texture with b uniform in [0.1, 1.0]; the texture gets 3 random photometric
augmentations; half of the samples stay clean.

Textures: images from `texture_dir` when given (the paper uses DTD). Without one, the documented
fallback draws textures from the training images themselves (75 %: *other* images, flipped and
shifted, then augmented: part-coloured anomalies are much harder to spot than rainbow ones) or
from smooth noise tinted with a training image's mean colour (25 %), and converts them to gray
when the training data is gray. `line_prob` adds thin line-shaped masks
(random polylines, 1-4 px): magnetic-tile cracks are thin, and blobby Perlin masks never look
like them.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}


def perlin_2d(shape: tuple[int, int], res: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Classic gradient Perlin noise in about [-1, 1]; shape must be a multiple of res."""
    d = (shape[0] // res[0], shape[1] // res[1])
    grid = np.mgrid[0 : res[0] : res[0] / shape[0], 0 : res[1] : res[1] / shape[1]].transpose(1, 2, 0) % 1
    angles = 2 * math.pi * rng.random((res[0] + 1, res[1] + 1))
    grads = np.stack([np.cos(angles), np.sin(angles)], axis=-1)

    def tile(s0: slice, s1: slice) -> np.ndarray:
        return grads[s0, s1].repeat(d[0], 0).repeat(d[1], 1)

    def dot(g: np.ndarray, sx: float, sy: float) -> np.ndarray:
        off = np.stack([grid[..., 0] + sx, grid[..., 1] + sy], axis=-1)
        return (off * g[: shape[0], : shape[1]]).sum(-1)

    n00 = dot(tile(slice(0, -1), slice(0, -1)), 0, 0)
    n10 = dot(tile(slice(1, None), slice(0, -1)), -1, 0)
    n01 = dot(tile(slice(0, -1), slice(1, None)), 0, -1)
    n11 = dot(tile(slice(1, None), slice(1, None)), -1, -1)
    t = 6 * grid**5 - 15 * grid**4 + 10 * grid**3  # quintic fade
    n0 = n00 * (1 - t[..., 0]) + t[..., 0] * n10
    n1 = n01 * (1 - t[..., 0]) + t[..., 0] * n11
    return math.sqrt(2) * ((1 - t[..., 1]) * n0 + t[..., 1] * n1)


def perlin_mask(h: int, w: int, rng: np.random.Generator, threshold: float = 0.5, max_k: int = 5) -> np.ndarray:
    """Rotated, thresholded Perlin blob mask [h, w] float32 in {0, 1}; 2^k periods, k <= max_k."""
    side = 32 * math.ceil(max(h, w) / 32)  # a multiple of every res 2^0..2^5
    res = (2 ** int(rng.integers(0, max_k + 1)), 2 ** int(rng.integers(0, max_k + 1)))
    noise = perlin_2d((side, side), res, rng).astype(np.float32)
    rot = cv2.getRotationMatrix2D((side / 2, side / 2), float(rng.uniform(-90, 90)), 1.0)
    noise = cv2.warpAffine(noise, rot, (side, side), borderMode=cv2.BORDER_REFLECT)
    return (noise[:h, :w] > threshold).astype(np.float32)


def line_mask(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A thin random polyline (crack-like), 1-4 px wide scaled to the image size."""
    mask = np.zeros((h, w), np.uint8)
    pts = [np.array([rng.uniform(0, w), rng.uniform(0, h)])]
    step = rng.uniform(0.05, 0.2) * max(h, w)
    angle = rng.uniform(0, 2 * math.pi)
    for _ in range(int(rng.integers(2, 8))):
        angle += rng.normal(0, 0.6)  # cracks wander but keep a direction
        pts.append(pts[-1] + step * np.array([math.cos(angle), math.sin(angle)]))
    thick = max(1, round(rng.uniform(1, 4) * max(h, w) / 256))
    cv2.polylines(mask, [np.round(np.array(pts)).astype(np.int32)], False, 1, thickness=thick)
    return mask.astype(np.float32)


def _posterize(t: np.ndarray, levels: int) -> np.ndarray:
    return np.floor(t * levels) / levels


def _augment_texture(tex: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Three random photometric / geometric augmentations (the paper's imgaug list, re-done in cv2)."""
    ops = [
        lambda t: np.clip(t ** rng.uniform(0.5, 2.0), 0, 1),  # gamma contrast
        lambda t: np.clip(t * rng.uniform(0.8, 1.2) + rng.uniform(-0.12, 0.12), 0, 1),  # brightness
        lambda t: np.clip(t + rng.uniform(0.5, 2.0) * (t - cv2.GaussianBlur(t, (0, 0), 2.0)), 0, 1),  # sharpen
        lambda t: np.where(t > rng.uniform(0.3, 0.9), 1 - t, t),  # solarize
        lambda t: _posterize(t, 2 ** int(rng.integers(2, 5))),
        lambda t: 1 - t,  # invert
        lambda t: (t - t.min()) / max(float(t.max() - t.min()), 1e-6),  # autocontrast
        lambda t: np.clip(np.rot90(t, int(rng.integers(1, 4))).copy(), 0, 1) if t.shape[0] == t.shape[1] else t[::-1].copy(),
    ]
    for i in rng.choice(len(ops), size=3, replace=False):
        tex = ops[i](tex).astype(np.float32)
    return tex


class AnomalySimulator:
    """Makes (augmented image, mask) pairs from normal images; numpy in, numpy out, HWC float."""

    def __init__(
        self,
        images: np.ndarray,  # [N, H, W, C] float32 in [0, 1]: the texture pool when no folder
        texture_dir: str | None = None,
        line_prob: float = 0.0,
        clean_prob: float = 0.5,
        noise_texture_prob: float = 0.25,
        seed: int = 0,
        shade_prob: float = 0.0,
    ) -> None:
        self.rng = np.random.default_rng(seed)
        self.h, self.w, self.c = images.shape[1:]
        # gray data -> gray anomalies: coloured fakes are trivially easy and teach the wrong thing
        self.gray = bool(np.abs(images - images.mean(-1, keepdims=True)).max() < 1e-3)
        self.pool = images
        self.textures = self._load_textures(texture_dir) if texture_dir else None
        self.line_prob, self.clean_prob, self.noise_prob = line_prob, clean_prob, noise_texture_prob
        self.shade_prob = shade_prob

    def _load_textures(self, folder: str) -> np.ndarray:
        files = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise FileNotFoundError(f"no texture images under {folder}")
        out = []
        for f in files[:2000]:
            img = cv2.imread(str(f), cv2.IMREAD_COLOR)
            if img is not None:
                img = cv2.resize(img, (self.w, self.h), interpolation=cv2.INTER_AREA)
                out.append(cv2.cvtColor(img, cv2.COLOR_BGR2RGB).astype(np.float32) / 255)
        return np.stack(out)

    def _texture(self) -> np.ndarray:
        r = self.rng
        if self.textures is not None:
            tex = self.textures[r.integers(len(self.textures))]
        elif r.random() < self.noise_prob:
            # smooth noise texture in the part's own colour: one Perlin channel at a random scale
            # times the mean colour of a training image (rainbow noise is trivially easy to spot)
            side = 32 * math.ceil(max(self.h, self.w) / 32)
            res = (2 ** int(r.integers(1, 6)),) * 2
            noise = np.clip(perlin_2d((side, side), res, r)[: self.h, : self.w] * 0.5 + 0.5, 0, 1)
            colour = self.pool[r.integers(len(self.pool))].mean(axis=(0, 1))
            colour = colour / max(float(colour.max()), 1e-3)
            tex = (noise[..., None] * colour).astype(np.float32)
        else:
            # part-derived: another training image, randomly flipped / shifted
            tex = self.pool[r.integers(len(self.pool))]
            if r.random() < 0.5:
                tex = tex[:, ::-1]
            tex = np.roll(tex, (int(r.integers(self.h)), int(r.integers(self.w))), axis=(0, 1))
        tex = _augment_texture(np.ascontiguousarray(tex, dtype=np.float32), r)
        if self.gray:
            tex = np.repeat(tex.mean(-1, keepdims=True), self.c, -1)
        return tex

    def _shade(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Low-frequency brightness change with soft edges (magnetic-tile 'uneven'-like)."""
        r = self.rng
        hard = perlin_mask(self.h, self.w, r, threshold=0.3, max_k=1)
        if hard.max() == 0:
            return image, hard[..., None]
        soft = cv2.GaussianBlur(hard, (0, 0), max(self.h, self.w) / 24)
        gain = r.uniform(0.6, 0.85) if r.random() < 0.5 else r.uniform(1.15, 1.4)
        aug = np.clip(image * (1 + (gain - 1) * soft[..., None]), 0, 1).astype(np.float32)
        return aug, (soft > 0.5).astype(np.float32)[..., None]

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """image [H, W, C] -> (augmented [H, W, C], mask [H, W, 1]); clean_prob of them untouched."""
        r = self.rng
        mask = np.zeros((self.h, self.w), np.float32)
        if r.random() >= self.clean_prob:
            # shade_prob 0 draws nothing extra, so seeded runs without it are unchanged
            if self.shade_prob and r.random() < self.shade_prob:
                return self._shade(image)
            if r.random() < self.line_prob:
                mask = line_mask(self.h, self.w, r)
            else:
                mask = perlin_mask(self.h, self.w, r)
        if mask.max() == 0:
            return image, mask[..., None]
        b = float(r.uniform(0.1, 1.0))  # texture opacity
        m = mask[..., None]
        aug = image * (1 - m) + m * ((1 - b) * image + b * self._texture())
        return aug.astype(np.float32), m
