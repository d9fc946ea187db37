"""Per-camera alert debounce: N anomalous frames among the last M, then a cool-down.

Time is the frame's capture time, not the wall clock, so a replay after a crash makes the same
decisions and tests are deterministic.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass
class _CameraWindow:
    recent: deque[bool]
    last_alert_ns: int | None = None


@dataclass
class Debouncer:
    n: int = 3
    m: int = 5
    cooldown_s: float = 30.0
    _cameras: dict[str, _CameraWindow] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.n > self.m:
            raise ValueError(f"debounce needs n <= m, got n={self.n}, m={self.m}")

    def observe(self, camera: str, anomalous: bool, capture_ns: int) -> bool:
        """Record one frame's verdict; True when this frame should raise an alert."""
        window = self._cameras.get(camera)
        if window is None:
            window = self._cameras[camera] = _CameraWindow(deque(maxlen=self.m))
        window.recent.append(anomalous)
        if not anomalous or sum(window.recent) < self.n:
            return False
        cooldown_ns = int(self.cooldown_s * 1e9)
        if window.last_alert_ns is not None and capture_ns - window.last_alert_ns < cooldown_ns:
            return False
        window.last_alert_ns = capture_ns
        return True
