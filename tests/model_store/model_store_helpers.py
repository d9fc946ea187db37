"""Shared helpers for the model_store tests (not a conftest: other suites here keep their own)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from model_store.models.base import AnomalyModel
from model_store.store import ModelStore

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"

# Tiny tensors gain nothing from two threads, and on the shared, oversubscribed 2-core machine
# two threads ran about 3x slower than one.
torch.set_num_threads(1)


def synthetic_frames(n: int, h: int = 48, w: int = 64, seed: int = 0) -> list[np.ndarray]:
    """Normal 'parts': a smooth gradient plus mild noise, BGR uint8."""
    rng = np.random.default_rng(seed)
    base = np.linspace(60, 180, w, dtype=np.float32)[None, :, None].repeat(h, 0).repeat(3, 2)
    return [np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8) for _ in range(n)]


def with_defect(frame: np.ndarray) -> np.ndarray:
    out = frame.copy()
    cv2.circle(out, (out.shape[1] // 2, out.shape[0] // 2), max(3, out.shape[0] // 6), (0, 0, 255), -1)
    return out


def write_mvtec(root: Path, n_train: int = 12, n_test: int = 4) -> Path:
    """A tiny MVTec-layout category: train/good, test/good, test/spot with masks."""
    frames = synthetic_frames(n_train + 2 * n_test)
    for sub in ("train/good", "test/good", "test/spot", "ground_truth/spot"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(frames[:n_train]):
        cv2.imwrite(str(root / "train/good" / f"{i:03d}.png"), f)
    for i, f in enumerate(frames[n_train : n_train + n_test]):
        cv2.imwrite(str(root / "test/good" / f"{i:03d}.png"), f)
    for i, f in enumerate(frames[n_train + n_test :]):
        bad = with_defect(f)
        cv2.imwrite(str(root / "test/spot" / f"{i:03d}.png"), bad)
        mask = (np.abs(bad.astype(int) - f.astype(int)).sum(-1) > 0).astype(np.uint8) * 255
        cv2.imwrite(str(root / "ground_truth/spot" / f"{i:03d}_mask.png"), mask)
    return root


def publish(store: ModelStore, name: str, arch: str, module: AnomalyModel, size: int = 64, kwargs: dict | None = None):
    return store.publish(
        name,
        module,
        {
            "architecture": arch,
            "kwargs": kwargs or {},
            "input_size": (size, size),
            "channels": module.in_channels,
            "score_definition": module.score_definition,
        },
    )


def rand_input(model: AnomalyModel, b: int = 2, size: int = 64) -> torch.Tensor:
    return torch.rand(b, model.in_channels, size, size, generator=torch.Generator().manual_seed(1))
