"""What the view reads from Redis, turned into plain JSON-ready dicts (pure functions, no I/O).

Everything in Redis was written by workers from sender-controlled input (camera ids come from
frame headers), so every field is parsed defensively: a missing or malformed value becomes None or
a default, never an exception that would blank the whole screen. The browser inserts these values
as text only (see static/common.js), never as markup.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Mapping

from linewatch.contract import PREVIEW_FIELD, Alert, valid_camera_id
from linewatch.errors import FrameRejected

# "<partition>-<offset>" (contract.frame_id) and Redis stream IDs ("<ms>-<seq>") share one shape.
_ID = re.compile(r"\d{1,20}-\d{1,20}")


# The contract's rule for camera ids, so a request cannot name other keys.
valid_camera = valid_camera_id


def valid_id(value: str) -> bool:
    """A frame id or a stream entry id."""
    return _ID.fullmatch(value) is not None


def stream_ms(entry_id: str) -> int:
    """Milliseconds part of a Redis stream entry ID (Redis's own clock when it chose the ID)."""
    return int(entry_id.partition("-")[0])


def decode(fields: Mapping[bytes | str, bytes | str]) -> dict[str, str]:
    """A Redis hash or stream entry as str -> str (bytes that are not UTF-8 are replaced, not fatal)."""
    return {_text(k): _text(v) for k, v in fields.items()}


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _float(value: str | None) -> float | None:
    try:
        number = float(value) if value not in (None, "") else None
    except ValueError:
        return None
    return number if number is not None and math.isfinite(number) else None


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None


def parse_boxes(raw: str | None) -> list[list[int]]:
    """`[[x, y, w, h], ...]` in mask pixels; anything else in the list is dropped."""
    try:
        data = json.loads(raw) if raw else []
    except ValueError:
        return []
    if not isinstance(data, list):
        return []
    return [
        [int(v) for v in box]
        for box in data
        if isinstance(box, (list, tuple)) and len(box) == 4 and all(isinstance(v, (int, float)) for v in box)
    ]


def model_label(fields: Mapping[str, str]) -> str:
    name, version = fields.get("model_name", ""), fields.get("model_version", "")
    return f"{name}@{version}" if name and version else name


def published_ms(fields: Mapping[str, str]) -> int | None:
    """When the worker wrote the result; older workers lack the field, then the capture time stands in
    (unless the worker judged the capture clock implausible)."""
    published = _int(fields.get("published_ms"))
    if published is not None:
        return published
    capture_ns = _int(fields.get("capture_ns"))
    if capture_ns is None or fields.get("clock_ok") == "0":
        return None
    return capture_ns // 1_000_000


def camera_state(camera: str, fields: Mapping[str, str]) -> dict[str, Any]:
    """One wall tile: a camera's latest-result hash (contract.RESULT_FIELDS + preview_frame_id)."""
    return {
        "camera": camera,
        "frame_id": fields.get("frame_id", ""),
        "seq": _int(fields.get("seq")),
        "score": _float(fields.get("score")),
        "threshold": _float(fields.get("threshold")),
        "anomalous": fields.get("anomalous") == "1",
        "model": model_label(fields),
        "published_ms": published_ms(fields),
        "latency_ms": _float(fields.get("latency_ms")),
        "preview": fields.get(PREVIEW_FIELD, "") if valid_id(fields.get(PREVIEW_FIELD, "")) else "",
        "worker": fields.get("worker", ""),
        "part": fields.get("part", ""),
        "recipe": fields.get("recipe", ""),
    }


def timeline_point(entry_id: str, fields: Mapping[str, str]) -> dict[str, Any]:
    """One point of a camera's score timeline: a history stream entry."""
    return {
        "id": entry_id,
        "t": stream_ms(entry_id),
        "score": _float(fields.get("score")),
        "threshold": _float(fields.get("threshold")),
        "anomalous": fields.get("anomalous") == "1",
        "frame_id": fields.get("frame_id", ""),
        "seq": _int(fields.get("seq")),
        "frame": bool(fields.get("frame_key")),
        "part": fields.get("part", ""),
    }


def frame_detail(camera: str, entry_id: str, fields: Mapping[str, str]) -> dict[str, Any]:
    """Everything the camera page shows for one clicked point."""
    return {
        **timeline_point(entry_id, fields),
        "camera": camera,
        "score_raw": _float(fields.get("score_raw")),
        "model": model_label(fields),
        "latency_ms": _float(fields.get("latency_ms")),
        "boxes": parse_boxes(fields.get("boxes")),
        "has_mask": bool(fields.get("mask_key")),
        "has_heat": bool(fields.get("heat_key")),
        "worker": fields.get("worker", ""),
    }


def alert_item(entry_id: str, fields: Mapping[str, str]) -> dict[str, Any] | None:
    """One alerts-stream entry (`alert` = contract.Alert JSON), or None when it cannot be read."""
    try:
        alert = Alert.from_json(fields.get("alert", "").encode())
        if not isinstance(alert.camera, str) or not isinstance(alert.frame_id, str):
            return None
        width, height = (int(v) for v in alert.mask_size)
        item = {
            "id": entry_id,
            "t": stream_ms(entry_id),
            "camera": alert.camera,
            "frame_id": alert.frame_id,
            "seq": int(alert.frame_seq),
            "score": _float(str(alert.score)),
            "threshold": _float(str(alert.threshold)),
            "model": model_label({"model_name": str(alert.model_name), "model_version": str(alert.model_version)}),
            "boxes": parse_boxes(json.dumps(alert.boxes)),
            "mask_size": [width, height],
            "capture_ns": int(alert.capture_ns),
        }
    except (FrameRejected, ValueError, TypeError, KeyError, AttributeError):
        return None  # another schema, a truncated or hand-written entry: not shown, counted by the caller
    return item if valid_camera(item["camera"]) and valid_id(item["frame_id"]) else None


def decimate(points: list[dict[str, Any]], cap: int) -> list[dict[str, Any]]:
    """At most `cap` points in time order: every anomalous point (the newest `cap` if they alone are
    too many), normal points thinned evenly, and the newest point always kept."""
    if len(points) <= cap:
        return points
    anomalous = [i for i, p in enumerate(points) if p["anomalous"]]
    if len(anomalous) >= cap:
        return [points[i] for i in anomalous[-cap:]]
    normal = [i for i, p in enumerate(points) if not p["anomalous"]]
    room = cap - len(anomalous)
    stride = math.ceil(len(normal) / room)
    kept = set(anomalous) | set(normal[::-1][::stride])  # counted from the newest, so the newest stays
    return [points[i] for i in sorted(kept)]
