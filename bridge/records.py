"""What crosses from Kafka to a sink: one record of the results or alerts topic, read once.

The record's JSON is passed on unchanged (the contract's FrameVerdict or Alert); the envelope adds
what every sink needs: its kind, the idempotency key (camera, frame_id) and where it came from.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from linewatch.contract import Alert, FrameVerdict, R_UNPARSEABLE
from linewatch.errors import FrameRejected

KIND_RESULT, KIND_ALERT = "result", "alert"


@dataclass(frozen=True, slots=True)
class Envelope:
    kind: str  # KIND_RESULT | KIND_ALERT
    camera: str
    frame_id: str
    capture_ns: int
    body: bytes  # the record's value as the worker wrote it
    data: dict[str, Any]
    source: str  # "<topic>:<partition>:<offset>"

    @property
    def key(self) -> str:
        """The idempotency key every sink carries: a redelivery has the same one."""
        return f"{self.camera}/{self.frame_id}"


class SinkDown(Exception):
    """The sink cannot take anything now (not connected, unreachable, timed out): hold and retry."""


class Refused(Exception):
    """The sink answered and refused this one record: counts toward its attempt budget."""


def read_record(topic: str, partition: int, offset: int, value: bytes | None, results_topic: str) -> Envelope:
    """An envelope, or FrameRejected with the reason the record cannot be delivered."""
    source = f"{topic}:{partition}:{offset}"
    if not value:
        raise FrameRejected(R_UNPARSEABLE, "empty record")
    try:
        if topic == results_topic:
            v = FrameVerdict.from_json(value)
            camera, frame_id, capture_ns, kind = v.camera, v.frame_id, v.capture_ns, KIND_RESULT
        else:
            a = Alert.from_json(value)
            camera, frame_id, capture_ns, kind = a.camera, a.frame_id, a.capture_ns, KIND_ALERT
        data = json.loads(value)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:  # JSON or fields not as the contract says
        raise FrameRejected(R_UNPARSEABLE, f"{type(exc).__name__}: {exc}"[:300]) from exc
    return Envelope(kind, camera, frame_id, capture_ns, value, data, source)
