"""The records that cross the worker's threads, in the order a frame meets them.

    Item         one Kafka record between intake and commit (consumer -> batch thread)
    Rejected     an Item that will not be scored, with its reason (batch thread -> publish thread)
    ScoredBatch  Items the model scored together (batch thread -> publish thread)
    STOP         ends a thread's queue
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from linewatch.contract import FrameMeta, frame_id
from linewatch.errors import FrameRejected

if TYPE_CHECKING:
    from worker.routing import Route
    from worker.serving import ServedModel

STOP = object()


@dataclass(slots=True)
class Item:
    """One record between intake and commit."""

    tp: tuple[str, int]
    offset: int
    epoch: int  # the partition's ownership epoch at intake (worker/offsets.py)
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]
    timestamp_ms: int  # the record's Kafka timestamp: part of its identity, never used as a clock
    taken_at: float  # time.monotonic() at intake
    received_ns: int  # time.time_ns() at intake: what capture times are checked against
    meta: FrameMeta | None = None
    decoded: Future | None = None  # the decode job holding this frame (worker/decode.py: decode_chunk)
    decoded_index: int = 0  # this frame's place in the job's results
    rejection: FrameRejected | None = None
    last_offset: int | None = None  # a record range stepped over as one (an unparseable batch)
    route: "Route | None" = None  # the recipe it was routed by at intake (None: no recipes, LW_MODEL)

    @property
    def frame_id(self) -> str:
        return frame_id(self.tp[1], self.offset)

    @property
    def source(self) -> str:
        """Where the record came from, for dead letters and logs: topic:partition:offset[-last]."""
        span = f"{self.offset}-{self.last_offset}" if self.last_offset not in (None, self.offset) else str(self.offset)
        return f"{self.tp[0]}:{self.tp[1]}:{span}"

    @property
    def fingerprint(self) -> str:
        """What tells a replay of this record from another record at the same offset (a recreated
        topic): the broker timestamp and the value's length, identical on every read of the record."""
        return f"{self.timestamp_ms}:{len(self.value)}"

    @property
    def commit_offset(self) -> int:
        """The offset whose acknowledgement lets the partition commit past this item."""
        return self.offset if self.last_offset is None else self.last_offset


@dataclass(slots=True)
class Rejected:
    item: Item
    reason: str
    detail: str


@dataclass(slots=True)
class ScoredBatch:
    items: list[Item]
    pixels: np.ndarray  # uint8 [B, H, W, C] as the model saw them
    maps: np.ndarray  # float32 [B, H, W]
    scores: np.ndarray  # float32 [B] raw image scores
    served: "ServedModel"
    infer_s: float = 0.0
