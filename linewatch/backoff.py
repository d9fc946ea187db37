"""Exponential back-off, the one used everywhere: camera reconnects (producer) and output retries (worker)."""

from __future__ import annotations

import random

from linewatch.errors import ConfigError


class Backoff:
    """Exponential delays: min, 2*min, 4*min ... capped at max; `jitter` shaves up to that fraction off."""

    def __init__(
        self, min_s: float, max_s: float, factor: float = 2.0, jitter: float = 0.1, rng: random.Random | None = None
    ) -> None:
        if min_s <= 0 or max_s < min_s or factor < 1 or not 0 <= jitter < 1:
            raise ConfigError(f"backoff needs 0 < min <= max, factor >= 1, 0 <= jitter < 1 (min={min_s}, max={max_s})")
        self.min_s, self.max_s, self.factor, self.jitter = min_s, max_s, factor, jitter
        self._rng = rng or random.Random()
        self._attempt = 0

    def next(self) -> float:
        delay = min(self.max_s, self.min_s * self.factor**self._attempt)
        self._attempt += 1
        if self.jitter:  # spread reconnects of many cameras that failed together (one switch went down)
            delay *= 1.0 - self._rng.uniform(0.0, self.jitter)
        return delay

    def reset(self) -> None:
        self._attempt = 0
