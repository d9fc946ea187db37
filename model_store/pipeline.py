"""Train -> calibrate -> publish, the flow behind `linewatch-models train` and `train_quick`.

A held-out slice of the normal training images (every k-th after a seeded shuffle, 10 % by
default) is never trained on; its scores set the threshold for the target false-alarm rate, so a
freshly trained version is usable at once (and says when the slice is too small to promise the
target). `recalibrate` derives a *new* version with the same weights and a new calibration
(versions are immutable).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import structlog
import torch

from model_store.calibration import calibrate, predict, shortfall
from model_store.data import fingerprint, load_uint8, mvtec_test_set, read_mask, train_images
from model_store.manifest import Calibration, Manifest, Preprocessing, TrainingInfo
from model_store.models.base import TrainConfig
from model_store.preprocess import to_float
from model_store.settings import DEFAULT_CONFIDENCE, DEFAULT_TARGET_FAR
from model_store.store import ModelStore
from model_store.training import train_model

log = structlog.get_logger(__name__)


@dataclass
class TrainRequest:
    data: Path
    name: str
    arch: str = "draem_small"
    kwargs: dict[str, Any] = field(default_factory=dict)
    input_size: tuple[int, int] = (128, 128)
    batch_size: int = 8
    lr: float | None = None
    max_steps: int | None = None
    time_budget_s: float | None = None  # wall clock
    cpu_budget_s: float | None = None  # CPU time of the training process (reproducible under load)
    seed: int = 0
    photometric: float = 0.0  # lighting augmentation strength during training (model_store/lighting.py); 0 = off
    device: str = "cpu"
    calib_fraction: float = 0.1
    checkpoint: Path | None = None
    resume: bool = False
    checkpoint_every_s: float = 120.0
    alias: str | None = None
    max_images: int | None = None
    show_progress: bool = True
    target_far: float = DEFAULT_TARGET_FAR
    confidence: float = DEFAULT_CONFIDENCE


def split_calibration(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, calibration indices); at least 2 calibration images when n allows."""
    order = np.random.default_rng(seed).permutation(n)
    k = min(max(2, round(n * fraction)), max(n - 2, 0)) if fraction > 0 else 0
    return np.sort(order[k:]), np.sort(order[:k])


def train_and_publish(store: ModelStore, req: TrainRequest) -> Manifest:
    paths = train_images(req.data)
    if req.max_images:
        paths = paths[: req.max_images]
    if len(paths) < 4:
        raise ValueError(f"{req.data}: need at least 4 normal images, found {len(paths)}")
    images = load_uint8(paths, req.input_size)
    tr, cal = split_calibration(len(paths), req.calib_fraction, req.seed)
    info = {
        "data_dir": str(req.data),
        "data_fingerprint": fingerprint(paths, req.data),
    }
    return publish_trained(store, req, images[tr], images[cal], info)


def publish_trained(
    store: ModelStore, req: TrainRequest, train_u8: torch.Tensor, calib_u8: torch.Tensor, data_info: dict[str, str]
) -> Manifest:
    cfg = TrainConfig(lr=req.lr, batch_size=req.batch_size, max_steps=req.max_steps, time_budget_s=req.time_budget_s,
                      cpu_budget_s=req.cpu_budget_s, seed=req.seed, photometric=req.photometric)
    res = train_model(
        req.arch, req.kwargs, train_u8, cfg, req.device, req.checkpoint, req.resume, req.checkpoint_every_s, req.show_progress
    )
    res.module.on_calibration(to_float(calib_u8.to(req.device), res.module.in_channels))
    amaps, scores = predict(res.module, calib_u8, req.device)
    calibration = warn_if_short(calibrate(scores, amaps, target_far=req.target_far, confidence=req.confidence))
    settings = {k: v for k, v in asdict(req).items() if k not in ("data", "checkpoint", "show_progress", "name")}
    fields = {
        "architecture": req.arch,
        "kwargs": req.kwargs,
        "input_size": req.input_size,
        "channels": res.module.in_channels,
        "preprocessing": Preprocessing(input_norm=getattr(getattr(res.module, "norm", None), "mode", "none")),
        "score_definition": res.module.score_definition,
        "calibration": calibration,
        "training": TrainingInfo(
            **data_info,
            n_train=len(train_u8),
            n_calibration=len(calib_u8),
            settings=json.loads(json.dumps(settings, default=str)),
            steps=res.steps,
            seconds=round(res.seconds, 1),
            cpu_seconds=round(res.cpu_seconds, 1),
            epochs=round(res.epochs, 2),
            device=req.device,
            threads=torch.get_num_threads(),
            seed=req.seed,
            final_losses=res.losses,
        ),
    }
    manifest = store.publish(req.name, res.module.cpu(), fields)
    if req.alias:
        store.promote(manifest.name, manifest.version, req.alias)
    return manifest


def warn_if_short(cal: Calibration) -> Calibration:
    """Log (stderr) when the calibration cannot promise its target rate; returns `cal`."""
    warning = shortfall(cal)
    if warning:
        log.warning("calibration_short_of_target", detail=warning)
    return cal


def recalibrate(
    store: ModelStore,
    ref: str,
    normal_dir: Path,
    defects_dir: Path | None = None,
    device: str = "cpu",
    target_far: float = DEFAULT_TARGET_FAR,
    confidence: float = DEFAULT_CONFIDENCE,
) -> Manifest:
    """New version = same weights + calibration from `normal_dir` (and labelled defects)."""
    loaded = store.load(ref, device=device, require_calibration=False)
    size = loaded.input_size
    normal_paths = train_images(normal_dir) if not (normal_dir / "test" / "good").is_dir() else train_images(normal_dir / "test" / "good")
    amaps, scores = predict(loaded.module, load_uint8(normal_paths, size), device)
    d_scores = d_amaps = d_masks = None
    if defects_dir is not None:
        samples = [s for s in mvtec_test_set(defects_dir) if s.label == 1]
        d_amaps, d_scores = predict(loaded.module, load_uint8([s.path for s in samples], size), device)
        d_masks = np.stack([read_mask(s, size) for s in samples])
    cal = warn_if_short(calibrate(scores, amaps, d_scores, d_amaps, d_masks, target_far, confidence))
    weights = store.backend.read_bytes(f"{loaded.name}/{loaded.version}/{loaded.manifest.weights_file}")
    fields = loaded.manifest.model_dump(exclude={"name", "version", "weights_sha256", "created_at", "code_version"})
    fields.update(calibration=cal, parent_version=loaded.version)
    return store.publish_weights(loaded.name, weights, fields)
