"""train_quick: a small but real model from in-memory frames in seconds (demos, pipeline tests).

Same path as `linewatch-models train` (train -> calibrate on held-out frames -> publish ->
promote), just fed from memory and bounded by a few seconds of CPU. The result is a genuinely
trained, calibrated model, so pipeline tests exercise real scores instead of random weights.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from model_store.pipeline import TrainRequest, publish_trained, split_calibration
from model_store.preprocess import frames_to_uint8
from model_store.store import ModelStore


def train_quick(
    images: list[np.ndarray],
    store_root: Path | str,
    name: str,
    arch: str = "autoencoder",
    input_size: int | tuple[int, int] = 64,
    seconds: float = 20,
    seed: int = 0,
    alias: str | None = "production",
    kwargs: dict | None = None,
    steps: int | None = None,
    photometric: float = 0.0,
) -> tuple[str, str]:
    """Train `arch` on normal BGR uint8 frames (HxWx3) for about `seconds`; returns (name, version).

    20 % of the frames (at least 2) are held out to calibrate the threshold; the new version is
    promoted to `alias` (None: not promoted). `photometric` > 0 trains under random lighting
    (model_store/lighting.py), as `train --photometric`.
    """
    if len(images) < 4:
        raise ValueError(f"train_quick needs at least 4 frames, got {len(images)}")
    size = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
    u8 = frames_to_uint8(images, size)
    tr, cal = split_calibration(len(u8), 0.2, seed)
    digest = hashlib.sha256()
    for f in images:
        digest.update(np.ascontiguousarray(f).tobytes())
    req = TrainRequest(
        data=Path("<memory>"), name=name, arch=arch, kwargs=dict(kwargs or {}), input_size=size,
        batch_size=min(8, len(tr)), time_budget_s=seconds, max_steps=steps, seed=seed, alias=alias, show_progress=False,
        photometric=photometric,
    )
    info = {"data_dir": f"<memory: {len(images)} frames>", "data_fingerprint": digest.hexdigest()}
    manifest = publish_trained(ModelStore(store_root), req, u8[tr], u8[cal], info)
    return manifest.name, manifest.version
