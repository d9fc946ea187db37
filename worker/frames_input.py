"""The worker's one interface to the frames topic, and the factory that picks a client for it.

Two clients implement `FramesInput`, as peers:
- worker/kafka_input.py          kafka-python (the default): parses records in Python on the
                                 worker's cores; steps over records it cannot parse with probes
- worker/kafka_input_rdkafka.py  librdkafka through confluent-kafka (`LW_KAFKA_CONSUMER=confluent`,
                                 the `rdkafka` extra): fetches and parses outside the GIL

The consumer loop (worker/app.py) sees only this interface, the records it returns (objects with
the attributes of kafka-python's ConsumerRecord: topic, partition, offset, key, value, headers,
timestamp), `Unreadable` for records a client had to step over, and the InputError family of
linewatch/errors.py (client exceptions are translated inside each client's module). Every method
is called from the consumer thread only, except `assignment()`, which readiness calls from the
HTTP thread: implementations answer it from their own bookkeeping. The factory that picks a client
is beside it, in worker/inputs.py (the clients import this module; it imports them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

TP = tuple[str, int]  # (topic, partition)
CommitDone = Callable[[BaseException | None], None]


@dataclass(slots=True)
class Unreadable:
    """A record the client could not parse, stepped over; dead-lettered with what could be recovered."""

    tp: TP
    offset: int
    detail: str
    key: bytes | None = None
    value: bytes = b""
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    timestamp_ms: int = -1


class FramesInput(Protocol):
    """The frames topic as the worker reads it."""

    topic: str
    stepped_over: int  # records stepped over so far (Unreadable handed out)

    def subscribe(self, on_released: Callable[[list[TP]], None]) -> None:
        """Join the group; ServiceUnavailable when the topic does not exist. `on_released` gets the
        partitions a rebalance takes away (it may be called from a client thread)."""

    def poll(self, timeout_ms: int, max_records: int) -> tuple[list[Any], list[Unreadable]]:
        """Records in partition order, plus records stepped over; InputUnavailable / InputRefused /
        InputBroken on failure."""

    def assignment(self) -> set[TP]: ...

    def pause_all(self) -> bool:
        """Pause every assigned partition; True if any was running."""

    def paused(self) -> set[TP]: ...

    def resume_all(self) -> bool:
        """Resume every paused partition; True if any was paused."""

    def commit(self, offsets: dict[TP, int]) -> None:
        """Commit and wait; raises on failure."""

    def commit_async(self, offsets: dict[TP, int], done: CommitDone) -> None:
        """Start a commit; `done(None | exception)` is called later (possibly from a client thread)."""

    def poll_paused(self) -> None:
        """Poll with every partition paused: completes a rebalance in progress, takes no record."""

    def lag(self) -> dict[TP, int]: ...

    def close(self) -> None:
        """Leave the group (its partitions move on at once) and release the client."""
