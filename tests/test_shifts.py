"""Shift boundaries and the counts the screen shows (pure logic)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from linewatch.shifts import ShiftCalendar, ShiftSettings, frames_per_second, summarise


def _ms(text: str, zone: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).timestamp() * 1000)


@pytest.mark.parametrize("at, shift", [
    ("2026-12-07 05:59:59", "2026-12-06T22:00"),  # the night shift keeps the date it started on
    ("2026-12-07 06:00:00", "2026-12-07T06:00"),
    ("2026-12-07 13:59:59", "2026-12-07T06:00"),
    ("2026-12-07 23:30:00", "2026-12-07T22:00"),
])
def test_the_shift_of_a_moment(at: str, shift: str) -> None:
    calendar = ShiftCalendar.of("22:00, 06:00,14:00", "Europe/Berlin")
    found = calendar.at(_ms(at, "Europe/Berlin"))
    assert found.id == shift
    assert found.start_ms <= _ms(at, "Europe/Berlin") < found.end_ms


def test_a_shift_across_the_daylight_saving_change_is_an_hour_shorter() -> None:
    calendar = ShiftCalendar.of("22:00,06:00,14:00", "Europe/Berlin")
    night = calendar.at(_ms("2026-03-29 03:30:00", "Europe/Berlin"))  # clocks went 02:00 -> 03:00
    assert night.id == "2026-03-28T22:00" and (night.end_ms - night.start_ms) == 7 * 3_600_000
    assert calendar.previous(night).id == "2026-03-28T14:00"


def test_one_start_is_one_shift_a_day() -> None:
    shift = ShiftCalendar.of("06:00", "UTC").at(_ms("2026-12-07 05:00:00", "UTC"))
    assert shift.id == "2026-12-06T06:00" and shift.end_ms - shift.start_ms == 24 * 3_600_000


@pytest.mark.parametrize("shifts, tz", [("6", "UTC"), ("25:00", "UTC"), ("", "UTC"), ("06:00", "Mars/Olympus")])
def test_bad_shift_settings_are_refused(shifts: str, tz: str) -> None:
    with pytest.raises(ValueError):
        ShiftSettings(shifts=shifts, shift_tz=tz)


def test_hour_counts_take_the_last_sixty_minutes_only() -> None:
    now = 1_000 * 60_000 + 30_000  # half way through minute 1000
    minutes = {"1000:f": "10", "1000:ng": "1", "941:f": "5", "940:f": "100", "940:ng": "100", "x:f": "7"}
    shown = summarise({"frames": "115", "ok": "114", "ng": "1"}, minutes, now)
    assert shown["hour"] == {"frames": 15, "ok": 14, "ng": 1, "reject_rate": pytest.approx(1 / 15)}


def test_frames_per_second_over_the_last_minute() -> None:
    now = 1_000 * 60_000 + 30_000
    # 10 frames so far this minute, 120 in the previous one: half of those fall in the window.
    assert frames_per_second({1000: 10, 999: 120}, now, first_ms=0) == pytest.approx((10 + 60) / 60, abs=0.01)
    # A camera that started 5 s ago is measured over those 5 s.
    assert frames_per_second({1000: 40}, now, first_ms=now - 5_000) == pytest.approx(8.0)
