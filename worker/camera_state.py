"""Per-camera state with a bound: camera ids come from senders, so any table keyed by them is capped.

`CameraTable` keeps at most `max_cameras` entries and forgets one that has been idle for
`idle_s`; the least recently used entry goes first when the table is full. A flood of 100,000
camera ids therefore costs at most `max_cameras` entries, and a camera that comes back after
being forgotten simply starts afresh.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Callable, Generic, TypeVar

T = TypeVar("T")


class CameraTable(Generic[T]):
    """An LRU map camera -> T with a size cap and an idle timeout. Not thread-safe."""

    def __init__(self, max_cameras: int, idle_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        if max_cameras < 1 or idle_s <= 0:
            raise ValueError("max_cameras must be >= 1 and idle_s > 0")
        self.max_cameras = max_cameras
        self.idle_s = idle_s
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, T]] = OrderedDict()
        self.evicted = 0

    def get(self, camera: str, make: Callable[[], T]) -> T:
        """The camera's entry (created with `make` when absent), marked as used now."""
        now = self._clock()
        found = self._entries.pop(camera, None)
        value = found[1] if found is not None and now - found[0] <= self.idle_s else make()
        self._entries[camera] = (now, value)
        self._trim(now)
        return value

    def _trim(self, now: float) -> None:
        while self._entries:
            camera, (used, _) = next(iter(self._entries.items()))
            if len(self._entries) <= self.max_cameras and now - used <= self.idle_s:
                return
            del self._entries[camera]
            self.evicted += 1

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, camera: object) -> bool:
        return camera in self._entries
