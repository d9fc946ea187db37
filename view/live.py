"""Live updates: one poller reads Redis every push interval; each browser gets the newest state per camera.

One `Hub` per process polls the cameras' latest hashes and the alert queue (a handful of Redis
round trips per tick, however many browsers watch) and hands what changed to every `Subscriber`.
A subscriber keeps only the newest state of each camera until its browser takes it, at most once
per push interval: at 16 cameras x 8 fps a browser receives at most 16 states per interval, and a
slow one skips intermediate states instead of falling behind.

Server-sent events on the wire (`/api/events`):
    event: snapshot   data: {"now_ms", "redis_ok", "shift", "cameras": [state...], "alerts": {"pending", "version", "alarms"}}
    event: update     data: {"now_ms", "redis_ok", "shift", "cameras": [changed...], "removed": [camera...], "alerts"?}
A camera's state carries its counts (linewatch.shifts.summarise: this shift, the last hour, frames/s);
"alarms" lists, per camera, its newest alert nobody judged or acknowledged (view.review).
An update is sent at least every HEARTBEAT_S, so the browser's "age" and "stale" stay correct
when nothing arrives.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any, AsyncIterator, Awaitable, Callable

import structlog

from linewatch.errors import ServiceUnavailable
from linewatch.shifts import HOUR_MS, Shift, ShiftCalendar, summarise
from view.results import camera_state
from view.review import AlertQueue
from view.store import Store

log = structlog.get_logger(__name__)

HEARTBEAT_S = 1.0


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def _signature(state: dict[str, Any]) -> tuple:
    counts = state.get("counts") or {}
    return (state["frame_id"], state["published_ms"], state["preview"], state["model"], state["threshold"],
            counts.get("fps"), (counts.get("shift") or {}).get("frames"))


class Subscriber:
    """One browser's pending changes: the newest state per camera, removals, the newest alert summary."""

    def __init__(self) -> None:
        self.cameras: dict[str, dict[str, Any]] = {}
        self.removed: set[str] = set()
        self.alerts: dict[str, Any] | None = None
        self.ready = asyncio.Event()

    def offer(self, changed: dict[str, dict[str, Any]], removed: set[str], alerts: dict[str, Any] | None) -> None:
        """Called by the hub each tick; replaces older pending states of the same cameras."""
        for camera in removed:
            self.cameras.pop(camera, None)
        self.removed = (self.removed | removed) - set(changed)
        self.cameras.update(changed)
        if alerts is not None:
            self.alerts = alerts
        if self.cameras or self.removed or self.alerts is not None:
            self.ready.set()

    def take(self, now: int, redis_ok: bool) -> dict[str, Any]:
        """Everything pending as one update message, and nothing pending afterwards."""
        message: dict[str, Any] = {
            "now_ms": now, "redis_ok": redis_ok, "cameras": list(self.cameras.values()), "removed": sorted(self.removed)
        }
        if self.alerts is not None:
            message["alerts"] = self.alerts
        self.cameras, self.removed, self.alerts = {}, set(), None
        self.ready.clear()
        return message


class Hub:
    """Polls Redis every push interval and fans the changes out to subscribers."""

    def __init__(self, store: Store, queue: AlertQueue, push_ms: int, calendar: ShiftCalendar,
                 closing: threading.Event | None = None) -> None:
        self.store = store
        self.calendar = calendar
        self.shift: Shift = self.calendar.at(now_ms())
        # Set by the server when it is asked to stop: open event streams end at their next heartbeat,
        # so the server's graceful shutdown does not have to cut them.
        self.closing = closing or threading.Event()
        self.queue = queue
        self.push_s = push_ms / 1000
        self.states: dict[str, dict[str, Any]] = {}
        self.redis_ok = False
        self.ticks = 0
        self._signatures: dict[str, tuple] = {}
        self._sent_version: tuple[str, str] = ("", "")
        self._subscribers: set[Subscriber] = set()

    def alerts_summary(self) -> dict[str, Any]:
        return {"pending": len(self.queue.pending()), "version": "/".join(self.queue.version),
                "alarms": self.queue.alarms()}

    def shift_info(self) -> dict[str, Any]:
        return {"id": self.shift.id, "start_ms": self.shift.start_ms, "end_ms": self.shift.end_ms}

    def snapshot(self) -> dict[str, Any]:
        return {
            "now_ms": now_ms(), "redis_ok": self.redis_ok, "shift": self.shift_info(),
            "cameras": [self.states[c] for c in sorted(self.states)], "alerts": self.alerts_summary(),
        }

    async def tick(self) -> None:
        """One poll: read the cameras and the alert queue, offer what changed to every subscriber."""
        try:
            cameras = await self.store.cameras()
            hashes = await self.store.latest(cameras)
            now = now_ms()
            self.shift = self.calendar.at(now)
            counts = await self.store.counts(list(hashes), self.shift.id, now // HOUR_MS)
            await self.queue.refresh(self.store)
        except ServiceUnavailable as exc:
            if self.redis_ok or self.ticks == 0:
                log.warning("redis read failed; the view shows the last known state", error=str(exc)[:300])
            self.redis_ok = False
            self.ticks += 1
            return
        if not self.redis_ok and self.ticks:
            log.info("redis reads work again")
        self.redis_ok = True
        self.ticks += 1
        states = {camera: camera_state(camera, fields) for camera, fields in hashes.items()}
        for camera, (shift, minutes) in counts.items():
            states[camera]["counts"] = summarise(shift, minutes, now)
        changed = {c: s for c, s in states.items() if self._signatures.get(c) != _signature(s)}
        removed = set(self.states) - set(states)
        self.states = states
        self._signatures = {c: _signature(s) for c, s in states.items()}
        # Compared with what was last sent, not with the last refresh: a feedback post refreshes the queue too.
        summary = self.alerts_summary() if self.queue.version != self._sent_version else None
        self._sent_version = self.queue.version
        for subscriber in self._subscribers:
            subscriber.offer(changed, removed, summary)

    async def run(self) -> None:
        """Poll until `closing` is set. (Cancelling alone is not enough: redis-py may turn a
        cancellation inside a command into a connection error, which tick() absorbs.)"""
        while not self.closing.is_set():
            started = time.monotonic()
            await self.tick()
            await asyncio.sleep(max(0.0, self.push_s - (time.monotonic() - started)))

    async def events(self, is_disconnected: Callable[[], Awaitable[bool]]) -> AsyncIterator[str]:
        """One browser's event stream: a snapshot, then coalesced updates at most every push interval."""
        subscriber = Subscriber()
        self._subscribers.add(subscriber)
        try:
            yield sse("snapshot", self.snapshot())
            while not self.closing.is_set() and not await is_disconnected():
                try:
                    await asyncio.wait_for(subscriber.ready.wait(), timeout=HEARTBEAT_S)
                except asyncio.TimeoutError:
                    pass  # nothing changed: the update below is the heartbeat
                yield sse("update", {**subscriber.take(now_ms(), self.redis_ok), "shift": self.shift_info()})
                await asyncio.sleep(self.push_s)  # the coalescing window: changes pile up per camera meanwhile
        finally:
            self._subscribers.discard(subscriber)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)


def sse(event: str, data: dict[str, Any]) -> str:
    """One server-sent event (JSON has no raw newlines, so one data line suffices)."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"
