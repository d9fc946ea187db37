"""The alert review queue: the newest alerts, and which of them an operator has already judged.

Both streams are followed incrementally (only entries after the last one seen are read on each
refresh), so a refresh costs two small XRANGEs whatever the streams' lengths. An alert is
judged when a feedback entry with its (camera, frame_id) and a judgement (confirmed, false_alarm)
exists (shapes: P:feedback). An alarm is an alert neither judged nor acknowledged (verdict
`acknowledged`: an operator saw it): its camera's tile stays marked and the wall's banner names it.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import Any

import structlog

from linewatch.contract import JUDGEMENTS, VERDICT_ACKNOWLEDGED
from view.results import alert_item
from view.store import Store

log = structlog.get_logger(__name__)

READ_CHUNK = 1000  # entries per XRANGE while catching up


class AlertQueue:
    """The newest `kept` alerts across cameras, with the verdicts given on them."""

    def __init__(self, kept: int) -> None:
        self.kept = kept
        self.alerts: OrderedDict[str, dict[str, Any]] = OrderedDict()  # stream ID -> alert item, oldest first
        self.verdicts: OrderedDict[tuple[str, str], str] = OrderedDict()  # (camera, frame_id) -> newest verdict
        self.acknowledged: OrderedDict[tuple[str, str], None] = OrderedDict()  # alerts an operator has seen
        self.unreadable = 0
        self._alert_cursor: str | None = None  # None until the first refresh
        self._feedback_cursor = "0-0"
        self._lock = asyncio.Lock()  # the poller and a feedback post may refresh at the same time

    @property
    def version(self) -> tuple[str, str]:
        """Changes whenever an alert or a verdict arrives."""
        return (self._alert_cursor or "", self._feedback_cursor)

    async def refresh(self, store: Store) -> bool:
        """Read what arrived since the last refresh; True when anything did."""
        async with self._lock:
            return await self._refresh(store)

    async def _refresh(self, store: Store) -> bool:
        before = self.version
        if self._alert_cursor is None:
            entries = await store.newest_alerts(self.kept)
            self._alert_cursor = entries[-1][0] if entries else "0-0"
            # Feedback on these alerts was written after them: start reading at the oldest one.
            self._feedback_cursor = _before(entries[0][0]) if entries else "0-0"
            self._add_alerts(entries)
        else:
            while entries := await store.alerts_after(self._alert_cursor, READ_CHUNK):
                self._alert_cursor = entries[-1][0]
                self._add_alerts(entries)
        while entries := await store.feedback_from(f"({self._feedback_cursor}", READ_CHUNK):
            self._feedback_cursor = entries[-1][0]
            self._add_verdicts(entries)
        return self.version != before

    def _add_alerts(self, entries: list[tuple[str, dict[str, str]]]) -> None:
        for entry_id, fields in entries:
            item = alert_item(entry_id, fields)
            if item is None:
                self.unreadable += 1
                log.warning("unreadable alert entry skipped", entry=entry_id, unreadable_total=self.unreadable)
                continue
            self.alerts[entry_id] = item
        while len(self.alerts) > self.kept:
            self.alerts.popitem(last=False)

    def _add_verdicts(self, entries: list[tuple[str, dict[str, str]]]) -> None:
        for _, fields in entries:
            verdict = fields.get("verdict", "")
            key = (fields.get("camera", ""), fields.get("frame_id", ""))
            if verdict in JUDGEMENTS:
                self.verdicts.pop(key, None)
                self.verdicts[key] = verdict
            elif verdict == VERDICT_ACKNOWLEDGED:
                self.acknowledged[key] = None
        for kept in (self.verdicts, self.acknowledged):
            while len(kept) > 4 * self.kept:  # verdicts on frames far older than any kept alert
                kept.popitem(last=False)

    def verdict(self, camera: str, frame_id: str) -> str | None:
        return self.verdicts.get((camera, frame_id))

    def pending(self) -> list[dict[str, Any]]:
        """Alerts nobody has judged yet, newest first."""
        return [a for a in reversed(self.alerts.values()) if (a["camera"], a["frame_id"]) not in self.verdicts]

    def alarms(self) -> list[dict[str, Any]]:
        """Per camera, its newest alert that nobody judged or acknowledged, with how many such alerts it has;
        newest first."""
        found: dict[str, dict[str, Any]] = {}
        for a in self.pending():
            key = (a["camera"], a["frame_id"])
            if key in self.acknowledged:
                continue
            if a["camera"] in found:
                found[a["camera"]]["count"] += 1
            else:
                found[a["camera"]] = {"camera": a["camera"], "frame_id": a["frame_id"], "id": a["id"], "t": a["t"],
                                      "score": a["score"], "count": 1}
        return list(found.values())

    def unacknowledged(self, camera: str) -> list[str]:
        """Frame ids of a camera's alerts that nobody judged or acknowledged (what 'acknowledge' clears)."""
        return [a["frame_id"] for a in self.pending()
                if a["camera"] == camera and (camera, a["frame_id"]) not in self.acknowledged]

    def of_camera(self, camera: str) -> list[dict[str, Any]]:
        """One camera's kept alerts, newest first, each with its verdict (None: not yet judged)."""
        return [
            {**a, "verdict": self.verdict(camera, a["frame_id"])}
            for a in reversed(self.alerts.values())
            if a["camera"] == camera
        ]


def _before(entry_id: str) -> str:
    """The stream ID just before `entry_id`, so an exclusive read from it includes `entry_id`'s time."""
    ms, _, seq = entry_id.partition("-")
    return f"{ms}-{int(seq) - 1}" if int(seq) > 0 else f"{max(int(ms) - 1, 0)}-0"
