"""Print sink: one JSON line per record on stdout (the program's output, for pipes and tests)."""

from __future__ import annotations

import sys

from bridge.records import Envelope


class PrintSink:
    name = "print"

    def start(self) -> None:
        pass

    def state(self) -> tuple[bool, str]:
        return True, ""

    def deliver(self, batch: list[Envelope]) -> list[None]:
        sys.stdout.write("".join(env.body.decode() + "\n" for env in batch))
        sys.stdout.flush()
        return [None] * len(batch)

    def close(self) -> None:
        pass
