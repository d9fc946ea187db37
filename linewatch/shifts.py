"""Shifts and the per-camera counts kept for them (frames, OK, NG) and for the last hour.

A shift starts at each of the configured local times (``LW_SHIFTS="06:00,14:00,22:00"`` in
``LW_SHIFT_TZ``) and ends where the next one starts; its id is its local start,
``2026-12-07T06:00`` (a night shift keeps the date it started on). Workers count each frame once,
inside the script that writes its result (worker/sinks.py), under two keys of a camera:

    counts(camera, shift)   hash: frames, ok, ng, first_ms, last_ms        (TTL counts_ttl_s)
    minutes(camera, hour)   hash: <minute>:f and <minute>:ng per minute    (TTL two hours)

and the camera in shift_cameras(shift), so a shift's CSV lists every camera counted in it. The
view reads these and derives reject rate, frames/s and the last hour (`summarise`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator

from linewatch.settings import BaseProgramSettings

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
MINUTES_TTL_S = 2 * 3600 + 120  # the previous hour's minutes are read until the current hour ends
FPS_WINDOW_MS = 60_000  # frames/s: frames of the last minute (or since the camera's first frame)
SHIFT_ID = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}$")


class ShiftSettings(BaseProgramSettings):
    """When shifts start and how long their counts are kept (worker and view read the same)."""

    shifts: str = Field(
        "06:00,14:00,22:00",
        description="Local start times of the shifts, comma-separated HH:MM; each shift ends where the next starts "
        "(one time: one shift a day). Counts of frames, OK and NG per camera are kept per shift.",
    )
    shift_tz: str = Field("UTC", description="Time zone of the shift times (IANA name, e.g. Europe/Berlin).")
    counts_ttl_s: int = Field(
        8 * 86400, ge=3600, description="How long a shift's counts stay in Redis after its last frame (CSV export)."
    )

    @field_validator("shifts")
    @classmethod
    def _times(cls, value: str) -> str:
        parse_times(value)
        return value

    @field_validator("shift_tz")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @property
    def calendar(self) -> "ShiftCalendar":
        return ShiftCalendar.of(self.shifts, self.shift_tz)


def parse_times(text: str) -> tuple[time, ...]:
    found = set()
    for part in text.split(","):
        part = part.strip()
        if not re.fullmatch(r"\d{1,2}:\d{2}", part):
            raise ValueError(f"shift start {part!r}: expected HH:MM")
        hours, minutes = (int(p) for p in part.split(":"))
        if hours > 23 or minutes > 59:
            raise ValueError(f"shift start {part!r}: not a time of day")
        found.add(time(hours, minutes))
    if not found:
        raise ValueError("at least one shift start is needed")
    return tuple(sorted(found))


@dataclass(frozen=True, slots=True)
class Shift:
    id: str  # local start, YYYY-MM-DDTHH:MM
    start_ms: int
    end_ms: int


@dataclass(frozen=True, slots=True)
class ShiftCalendar:
    starts: tuple[time, ...]
    zone: ZoneInfo

    @staticmethod
    @lru_cache(maxsize=8)
    def of(times: str, zone: str) -> "ShiftCalendar":
        return ShiftCalendar(parse_times(times), ZoneInfo(zone))

    def _starts_around(self, day: date) -> list[datetime]:
        return [
            datetime.combine(day + timedelta(days=d), t, self.zone) for d in (-1, 0, 1) for t in self.starts
        ]

    def at(self, ms: int) -> Shift:
        """The shift in progress at `ms` (epoch milliseconds)."""
        # Workers ask once per frame: the answer only changes at a shift start, so keep the last one.
        hit = _LAST.get(self)
        if hit and hit[0].start_ms <= ms < hit[0].end_ms:
            return hit[0]
        shift = self._compute(ms)
        _LAST[self] = (shift,)
        return shift

    def _compute(self, ms: int) -> Shift:
        now = datetime.fromtimestamp(ms / 1000, self.zone)
        starts = self._starts_around(now.date())
        # Compare instants in UTC: around a DST change local wall times repeat or skip.
        begun = [s for s in starts if s.timestamp() * 1000 <= ms]
        start = max(begun, key=lambda s: s.timestamp())
        later = [s for s in starts if s.timestamp() > start.timestamp()]
        end = min(later, key=lambda s: s.timestamp())
        return Shift(start.strftime("%Y-%m-%dT%H:%M"), int(start.timestamp() * 1000), int(end.timestamp() * 1000))

    def previous(self, shift: Shift) -> Shift:
        return self._compute(shift.start_ms - 1)


_LAST: dict[ShiftCalendar, tuple[Shift]] = {}


def valid_shift_id(text: str) -> bool:
    return bool(SHIFT_ID.match(text))


def _int(fields: dict[str, str], name: str) -> int:
    try:
        return int(fields.get(name) or 0)
    except ValueError:
        return 0


def summarise(shift: dict[str, str], minutes: dict[str, str], now_ms: int) -> dict[str, object]:
    """A camera's counts as the screen shows them: the shift's, the last hour's, and frames/s.

    `minutes` holds the <minute>:f / <minute>:ng fields of the current and the previous hour."""
    frames, ok, ng = _int(shift, "frames"), _int(shift, "ok"), _int(shift, "ng")
    now_min = now_ms // MINUTE_MS
    hour_f = hour_ng = 0
    per_minute: dict[int, int] = {}
    for name, value in minutes.items():
        minute, _, kind = name.partition(":")
        if not minute.isdigit() or not now_min - 60 < int(minute) <= now_min:
            continue
        count = int(value) if value.isdigit() else 0
        if kind == "f":
            hour_f += count
            per_minute[int(minute)] = count
        elif kind == "ng":
            hour_ng += count
    return {
        "shift": {"frames": frames, "ok": ok, "ng": ng, "reject_rate": ng / frames if frames else None,
                  "first_ms": _int(shift, "first_ms") or None, "last_ms": _int(shift, "last_ms") or None},
        "hour": {"frames": hour_f, "ok": hour_f - hour_ng, "ng": hour_ng,
                 "reject_rate": hour_ng / hour_f if hour_f else None},
        "fps": frames_per_second(per_minute, now_ms, _int(shift, "first_ms")),
    }


def frames_per_second(per_minute: dict[int, int], now_ms: int, first_ms: int) -> float:
    """Frames of the last minute per second: the current minute's frames plus the part of the previous
    minute's that falls in the window (spread evenly), over the window, which starts no earlier than the
    camera's first frame of the shift (a camera that started 10 s ago is not averaged over a minute)."""
    now_min, into = divmod(now_ms, MINUTE_MS)
    counted = per_minute.get(now_min, 0) + per_minute.get(now_min - 1, 0) * (1 - into / MINUTE_MS)
    window = FPS_WINDOW_MS
    if first_ms and now_ms - first_ms < window:
        window = max(now_ms - first_ms, 1000)
        counted = sum(n for m, n in per_minute.items() if m >= first_ms // MINUTE_MS)
    return round(counted * 1000 / window, 2)
