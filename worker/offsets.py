"""Which offset may be committed: the pure rule at the heart of "nothing lost".

Per partition the worker records every offset it takes in and every offset whose outputs were
acknowledged (result in Redis and alert sent, or dead-letter sent). The committable offset is the
lowest offset taken in but not yet acknowledged; when everything is acknowledged it is the last
offset + 1. Acknowledgements may arrive out of order; gaps in offsets (compaction, control
records) never block progress, because only offsets actually taken in are waited for.
"""

from __future__ import annotations

import heapq
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class PartitionOffsets:
    """Offsets of one partition between intake and commit."""

    committed: int | None = None  # next offset to read according to the last commit we made
    _pending: list[int] = field(default_factory=list)  # min-heap of taken, unacknowledged offsets
    # Acknowledgements of offsets still above a pending one, counted: an offset taken twice (read
    # again after the client went back to the committed offset without a revocation, e.g. when the
    # group's coordinator came back after a broker restart) is pending twice and needs two. A set
    # merged the two acks when both came while a lower offset was pending, and the partition's
    # commit point stayed on the second copy for good.
    _acked: Counter[int] = field(default_factory=Counter)
    _highest: int = -1

    def take(self, offset: int) -> None:
        heapq.heappush(self._pending, offset)
        self._highest = max(self._highest, offset)

    def ack(self, offset: int) -> None:
        self._acked[offset] += 1
        while self._pending and self._acked[self._pending[0]] > 0:
            done = heapq.heappop(self._pending)
            self._acked[done] -= 1
            if not self._acked[done]:
                del self._acked[done]

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def committable(self) -> int | None:
        """Offset to commit now (next to read), or None when nothing new may be committed."""
        if self._highest < 0:
            return None
        target = self._pending[0] if self._pending else self._highest + 1
        if self.committed is not None and target <= self.committed:
            return None
        return target


class OffsetBook:
    """PartitionOffsets for every partition the worker owns, keyed by (topic, partition).

    Each ownership of a partition is an epoch: `take` returns it, and an `ack` carrying an older
    epoch (work finished after the partition was revoked, and perhaps assigned back) is dropped,
    so it can never mark a re-read offset as done.
    """

    def __init__(self) -> None:
        self._parts: dict[tuple[str, int], PartitionOffsets] = {}
        self._epochs: dict[tuple[str, int], int] = {}

    def take(self, tp: tuple[str, int], offset: int) -> int:
        self._parts.setdefault(tp, PartitionOffsets()).take(offset)
        return self._epochs.setdefault(tp, 0)

    def ack(self, tp: tuple[str, int], offset: int, epoch: int) -> None:
        part = self._parts.get(tp)
        if part is not None and self._epochs.get(tp) == epoch:
            part.ack(offset)

    def forget(self, tp: tuple[str, int]) -> None:
        self._parts.pop(tp, None)
        self._epochs[tp] = self._epochs.get(tp, 0) + 1

    def owned(self) -> list[tuple[str, int]]:
        return list(self._parts)

    def committable(self) -> dict[tuple[str, int], int]:
        return {tp: off for tp, part in self._parts.items() if (off := part.committable()) is not None}

    def mark_committed(self, offsets: dict[tuple[str, int], int]) -> None:
        for tp, off in offsets.items():
            if tp in self._parts:
                self._parts[tp].committed = off

    def in_flight(self) -> int:
        return sum(p.in_flight for p in self._parts.values())

    def in_flight_of(self, tp: tuple[str, int]) -> int:
        part = self._parts.get(tp)
        return part.in_flight if part is not None else 0
