"""The view's only door to Redis: reads of what workers wrote, and the one write (feedback).

Redis exceptions are translated here, and only here, into ServiceUnavailable (the app answers 503
and the live feed reports "Redis unreachable"); callers never see a redis-py type.
"""

from __future__ import annotations

import time
from contextlib import asynccontextmanager
from typing import AsyncIterator, Mapping

import redis
import redis.asyncio as aioredis

from linewatch.errors import ServiceUnavailable
from view.results import decode, valid_camera
from view.settings import ViewSettings

Entry = tuple[str, dict[str, str]]

SCAN_EVERY_S = 10.0  # fallback camera discovery by key scan: rare, since SCAN walks the whole keyspace
SCAN_BUDGET = 20_000  # keys one fallback scan may look at
HEADER_BYTES = 24  # a PNG's signature and IHDR chunk: enough for its width and height


@asynccontextmanager
async def _redis_errors(what: str) -> AsyncIterator[None]:
    try:
        yield
    except (redis.RedisError, OSError) as exc:
        raise ServiceUnavailable(f"Redis {what}: {exc}") from exc


def _entries(raw: list) -> list[Entry]:
    return [(entry_id.decode(), decode(fields)) for entry_id, fields in raw]


class Store:
    """Async reads of results, images, alerts and feedback under one key prefix."""

    def __init__(self, settings: ViewSettings) -> None:
        self.keys = settings.keys
        self.max_cameras = settings.view_max_cameras
        self.feedback_maxlen = settings.view_feedback_maxlen
        self.client = aioredis.Redis.from_url(
            settings.redis_url, **settings.redis_client_kwargs(), socket_timeout=5, socket_connect_timeout=5
        )
        self._scanned: list[str] = []
        self._scanned_at = float("-inf")

    async def close(self) -> None:
        await self.client.aclose()

    async def ping(self) -> None:
        async with _redis_errors("ping"):
            await self.client.ping()

    async def cameras(self) -> list[str]:
        """Cameras with recent results, most recently active first (the workers' index), at most max_cameras.

        Without an index (an older worker, or none written yet) the latest hashes are found by a key
        scan, at most every SCAN_EVERY_S."""
        async with _redis_errors("camera index"):
            names = await self.client.zrevrange(self.keys.camera_index, 0, self.max_cameras - 1)
            if not names:
                names = await self._scan_latest()
        cameras = [n.decode("utf-8", "replace") if isinstance(n, bytes) else n for n in names]
        return [c for c in cameras if valid_camera(c)]

    async def _scan_latest(self) -> list[str]:
        now = time.monotonic()
        if now - self._scanned_at < SCAN_EVERY_S:
            return self._scanned
        head = self.keys.latest("")
        found: list[str] = []
        seen = 0
        async for key in self.client.scan_iter(match=f"{head}*", count=1000):
            found.append(key.decode("utf-8", "replace")[len(head):])
            seen += 1
            if len(found) >= self.max_cameras or seen >= SCAN_BUDGET:
                break
        self._scanned, self._scanned_at = found, now
        return found

    async def latest(self, cameras: list[str]) -> dict[str, dict[str, str]]:
        """Each camera's latest-result hash (cameras whose hash expired are left out)."""
        async with _redis_errors("latest results"):
            async with self.client.pipeline(transaction=False) as pipe:
                for camera in cameras:
                    pipe.hgetall(self.keys.latest(camera))
                hashes = await pipe.execute()
        return {camera: decode(fields) for camera, fields in zip(cameras, hashes, strict=True) if fields}

    async def counts(self, cameras: list[str], shift: str, hour: int) -> dict[str, tuple[dict[str, str], dict[str, str]]]:
        """Per camera: its counts hash of `shift`, and its per-minute counts of `hour` and the hour before."""
        async with _redis_errors("counts"):
            async with self.client.pipeline(transaction=False) as pipe:
                for camera in cameras:
                    pipe.hgetall(self.keys.counts(camera, shift))
                    pipe.hgetall(self.keys.minutes(camera, hour - 1))
                    pipe.hgetall(self.keys.minutes(camera, hour))
                raw = await pipe.execute()
        return {
            camera: (decode(raw[3 * i]), {**decode(raw[3 * i + 1]), **decode(raw[3 * i + 2])})
            for i, camera in enumerate(cameras)
        }

    async def shift_cameras(self, shift: str) -> list[str]:
        async with _redis_errors("shift cameras"):
            names = await self.client.smembers(self.keys.shift_cameras(shift))
        return sorted(c for c in (n.decode("utf-8", "replace") for n in names) if valid_camera(c))

    async def history(self, camera: str, start: str, count: int) -> list[Entry]:
        """History entries from `start` (a stream ID or ms, '(' prefix = exclusive), oldest first, at most `count`.

        The newest `count` win when there are more (the timeline shows the present)."""
        async with _redis_errors("history"):
            raw = await self.client.xrevrange(self.keys.history(camera), max="+", min=start, count=count)
        return _entries(raw)[::-1]

    async def matching(self, camera: str, field: str, value: str, depth: int, page: int = 1000) -> list[Entry]:
        """History entries of `camera` whose `field` equals `value`, among its newest `depth` entries.

        Read a page at a time, newest first, so a deep search holds one page in memory, not `depth`."""
        found: list[Entry] = []
        newest, seen = "+", 0
        async with _redis_errors("history"):
            while seen < depth:
                raw = await self.client.xrevrange(self.keys.history(camera), max=newest, min="-", count=min(page, depth - seen))
                if not raw:
                    break
                entries = _entries(raw)
                found.extend(e for e in entries if e[1].get(field) == value)
                seen += len(entries)
                newest = f"({entries[-1][0]}"
        return found

    async def entry(self, camera: str, entry_id: str) -> dict[str, str] | None:
        async with _redis_errors("history entry"):
            raw = await self.client.xrange(self.keys.history(camera), min=entry_id, max=entry_id, count=1)
        return _entries(raw)[0][1] if raw else None

    async def blob(self, key: str) -> bytes | None:
        async with _redis_errors("image"):
            return await self.client.get(key)

    async def header(self, key: str) -> bytes:
        """The first bytes of a stored image (its size is in there), without fetching it whole."""
        async with _redis_errors("image header"):
            return await self.client.getrange(key, 0, HEADER_BYTES - 1)

    async def existing(self, keys: list[str]) -> list[bool]:
        """Which of `keys` still exist (images expire with their TTLs)."""
        async with _redis_errors("image keys"):
            async with self.client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.exists(key)
                return [bool(n) for n in await pipe.execute()]

    async def newest_alerts(self, count: int) -> list[Entry]:
        async with _redis_errors("alerts"):
            return _entries(await self.client.xrevrange(self.keys.alerts, count=count))[::-1]

    async def alerts_after(self, after: str, count: int) -> list[Entry]:
        async with _redis_errors("alerts"):
            return _entries(await self.client.xrange(self.keys.alerts, min=f"({after}", count=count))

    async def feedback_from(self, start: str, count: int) -> list[Entry]:
        """Feedback entries from `start` (inclusive ID, or '(' + ID for exclusive), oldest first."""
        async with _redis_errors("feedback"):
            return _entries(await self.client.xrange(self.keys.feedback, min=start, count=count))

    async def shadow_streams(self, limit: int = 2000) -> dict[str, list[str]]:
        """Shadow candidates (name@version) -> cameras with a stream, from a bounded SCAN."""
        head = self.keys.shadow("x@y", "")[: -len("x@y:")]  # the prefix every shadow key starts with
        found: dict[str, list[str]] = {}
        async with _redis_errors("shadow streams"):
            async for key in self.client.scan_iter(match=f"{head}*", count=1000):
                candidate, _, camera = key.decode()[len(head):].rpartition(":")
                if candidate and valid_camera(camera):
                    found.setdefault(candidate, []).append(camera)
                limit -= 1
                if limit <= 0:
                    break
        return {c: sorted(cams) for c, cams in sorted(found.items())}

    async def shadow_entries(self, candidate: str, camera: str, count: int) -> list[dict[str, str]]:
        """The newest `count` shadow entries of a candidate and camera, newest first."""
        async with _redis_errors("shadow entries"):
            raw = await self.client.xrevrange(self.keys.shadow(candidate, camera), count=count)
        return [fields for _, fields in _entries(raw)]

    async def add_feedback(self, fields: Mapping[str, str]) -> str:
        """The view's only write: one verdict on the feedback stream; returns its entry ID."""
        async with _redis_errors("feedback write"):
            entry_id = await self.client.xadd(
                self.keys.feedback, dict(fields), maxlen=self.feedback_maxlen, approximate=True
            )
        return entry_id.decode()
