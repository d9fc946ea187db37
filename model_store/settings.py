"""`linewatch-models` settings: the store, the false-alarm promise, the live results to calibrate from,
the shadow gate.

Command-line flags override these (`--store`, `--target-far`, `--confidence`, `--frames`,
`--redis-url`, `--redis-prefix`).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from linewatch.settings import RedisSettings

DEFAULT_TARGET_FAR = 0.001  # one false alarm per 1,000 normal frames
DEFAULT_CONFIDENCE = 0.95


class ModelsSettings(RedisSettings):
    """What `linewatch-models` reads from LW_* variables."""

    model_root: Path = Field(Path("models"), description="Root folder of the model store (the worker reads the same variable).")
    target_far: float = Field(
        DEFAULT_TARGET_FAR, gt=0, lt=1,
        description="False-alarm rate calibration aims at: share of normal frames above the threshold (0.001 = 1 in 1,000).",
    )
    calibration_confidence: float = Field(
        DEFAULT_CONFIDENCE, gt=0, lt=1,
        description="Confidence of the false-alarm bound calibration states (and of evaluate's intervals).",
    )
    calibration_frames: int = Field(
        3000, ge=2, description="Frames per camera `calibrate --from-stream` reads (the newest served by the model version)."
    )
    shadow_min_frames: int = Field(
        1000, ge=1,
        description="Gate of `promote --require-shadow`: frames the shadow report must hold for every camera "
        "(with no candidate alarm, about 3000 frames certify a 1-in-1,000 bound at 95 %).",
    )
    shadow_frames: int = Field(
        20000, ge=1, description="Newest shadow entries per camera `shadow report` and `promote --require-shadow` read."
    )
    shadow_max_missed_confirmed: int = Field(
        0, ge=0,
        description="Gate: operator-confirmed defects production caught that the candidate may miss (0: none).",
    )
