"""What every frame source is and returns: the interface (`FrameSource`), a read frame
(`SourceFrame`) and the error a lost camera raises (`CameraLost`). Its own module, so the source
implementations (producer/sources.py, producer/stream.py, producer/genicam.py) and the factory that
picks one (`producer.sources.open_source`) import it without importing each other back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from linewatch.errors import ServiceUnavailable


class CameraLost(ServiceUnavailable):
    """A camera or stream could not be opened or stopped delivering frames."""


@dataclass(slots=True)
class SourceFrame:
    """One frame as read: BGR (or gray) uint8 pixels, and the ground truth when the source knows it."""

    image: np.ndarray
    defective: bool | None = None
    skipped: int = 0  # frames the source decoded and replaced by this newer one (newest-frame delivery)
    part: str = ""  # part id the source knows for this frame (a trigger's), "" when none


class FrameSource(Protocol):
    name: str
    live: bool  # True: frames arrive at the device's pace (skip to slow down); False: read on demand

    @property
    def native_fps(self) -> float | None: ...

    def open(self) -> None: ...

    def read(self) -> SourceFrame | None: ...

    def close(self) -> None: ...
