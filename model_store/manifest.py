"""The JSON manifest stored beside each model's weights (`manifest.json`).

Everything needed to use the weights correctly travels here, never hard-coded in the worker:
architecture + kwargs (fed to `create_model`), input size, colour order and preprocessing, what
the score means, calibration (thresholds and normalisation), where the training data came from,
how it was trained and evaluated, and the sha256 of the weights file. Unknown keys are rejected so
a hand-edited or foreign manifest fails at load, not inside torch.
"""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Preprocessing(_Strict):
    """How a camera frame becomes the model input; the worker follows this exactly."""

    decode: str = Field("BGR uint8 (OpenCV)", description="what the frame decoder yields")
    colour_order: Literal["RGB"] = Field("RGB", description="channel order the model expects")
    resize: Literal["area"] = Field("area", description="cv2.INTER_AREA to input_size (no crop)")
    scale: float = Field(1 / 255, description="multiply uint8 by this: inputs in [0, 1]")
    mean: list[float] | None = Field(None, description="no mean/std normalisation (DRAEM loses AUROC with it)")
    std: list[float] | None = None
    gray: Literal["replicate", "luma"] = Field(
        "replicate", description="3-channel models: gray frames are replicated; 1-channel: luma"
    )
    input_norm: Literal["none", "gain", "standardise"] = Field(
        "none",
        description="per-image lighting normalisation the model applies first, inside its forward (its `input_norm` "
        "setting, reference statistics in its weights): the worker needs no step of its own; "
        "absent in older manifests (= none); the store checks it against the model at load",
    )


class Calibration(_Strict):
    """Thresholds, the map raw score -> normalised score in [0, 1], and what the threshold promises.

    normalised(s) = 1 / (1 + exp(-(s - threshold) / k)), so the threshold maps to exactly 0.5 and
    the median normal calibration score maps to 0.01: below the threshold k = scale =
    (threshold - normal_median) / ln 99; above it k = max(scale, |threshold| / 4), which keeps scores
    (and per-camera thresholds) up to about ten times the threshold apart in float64.
    The false-alarm fields (target_far .. n_needed) are absent from manifests written before they
    existed; those records still load (method normal_quantile, see model_store/calibration.py).
    """

    threshold: float = Field(description="raw image-score threshold")
    scale: float = Field(gt=0, description="logistic scale of the normalisation")
    normal_median: float
    method: Literal["order_statistic", "f1_optimal", "normal_quantile"] = Field(
        description="order_statistic: lowest order statistic of the normals whose false-alarm bound meets the target; "
        "f1_optimal: F1 over labelled defects; normal_quantile: the older 0.995-quantile-plus-margin rule"
    )
    quantile: float | None = Field(None, description="normal_quantile only: the quantile used")
    margin: float | None = Field(None, description="normal_quantile only: the margin used")
    pixel_threshold: float = Field(description="raw pixel-map threshold for masks")
    n_normal: int
    n_defect: int = 0
    normal_max: float | None = None
    flagged_normal_fraction: float = Field(description="share of calibration normals above threshold")
    f1: float | None = None
    target_far: float | None = Field(None, gt=0, lt=1, description="false-alarm rate (normal frames above threshold) asked for")
    confidence: float | None = Field(None, gt=0, lt=1, description="confidence of far_bound")
    far_bound: float | None = Field(
        None, ge=0, le=1, description="upper confidence bound on the threshold's false-alarm rate, from n_normal and exceedances"
    )
    exceedances: int | None = Field(None, ge=0, description="calibration normals above the threshold")
    n_needed: int | None = Field(None, ge=1, description="normals needed to certify target_far at this confidence")


class TrainingInfo(_Strict):
    data_dir: str
    data_fingerprint: str = Field(description="sha256 over sorted (relative path, size, mtime-free content hash)")
    n_train: int
    n_calibration: int
    settings: dict[str, Any]
    steps: int
    seconds: float = Field(description="wall-clock seconds of training")
    cpu_seconds: float | None = Field(None, description="CPU seconds of the training process (absent in older manifests)")
    epochs: float
    device: str
    threads: int
    seed: int
    final_losses: dict[str, float] = {}


class Manifest(_Strict):
    schema_version: int = SCHEMA_VERSION
    name: str
    version: str
    architecture: str
    kwargs: dict[str, Any] = {}
    input_size: tuple[int, int] = Field(description="(H, W) of the model input")
    channels: Literal[1, 3] = 3
    preprocessing: Preprocessing = Preprocessing()
    score_definition: str
    calibration: Calibration | None = None
    training: TrainingInfo | None = None
    metrics: dict[str, Any] = {}
    created_at: str = Field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
    code_version: str = Field(default_factory=lambda: code_version())
    weights_file: str = "weights.safetensors"
    weights_sha256: str
    parent_version: str | None = Field(None, description="version this one was derived from (calibrate)")


def code_version() -> str:
    """`git describe` of the source tree, or 'unknown' outside a checkout."""
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--tags"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"
