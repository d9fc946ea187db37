"""Counts per shift and minute, written by the worker's Redis script on the real Redis: each record
counts once (a replay does not), NG and OK apart, admitted cameras only, with TTLs."""

from __future__ import annotations

import time

import pytest
import redis

from linewatch import contract as c
from linewatch.contract import RedisKeys
from linewatch.shifts import HOUR_MS, MINUTE_MS, ShiftCalendar, summarise
from worker.sinks import Counting, Debounce, FrameWrite, ResultWriter, Retention

pytestmark = pytest.mark.integration

CALENDAR = ShiftCalendar.of("06:00,14:00,22:00", "UTC")


def _write(camera: str, offset: int, anomalous: bool, now_ms: int, fp: str = "fp") -> FrameWrite:
    fid = c.frame_id(0, offset)
    fields = {f: "" for f in c.RESULT_FIELDS}
    fields.update(camera=camera, frame_id=fid, anomalous="1" if anomalous else "0", published_ms=str(now_ms),
                  score="0.9" if anomalous else "0.1", boxes="[]")
    return FrameWrite(tp=("t.frames", 0), offset=offset, fingerprint=f"{fp}{offset}", camera=camera, frame_id=fid,
                      anomalous=anomalous, event_ms=now_ms, fields=fields)


def _writer(client: redis.Redis, prefix: str) -> ResultWriter:
    return ResultWriter(client, RedisKeys(prefix), Retention(), Debounce(),
                        Counting(CALENDAR, 7200))


def test_each_record_counts_once_and_replays_do_not(redis_client: redis.Redis, redis_prefix: str) -> None:
    writer, keys = _writer(redis_client, redis_prefix), RedisKeys(redis_prefix)
    now = time.time_ns() // 1_000_000
    batch = [_write("cam-1", i, anomalous=i % 4 == 0, now_ms=now) for i in range(12)]
    outcomes, _ = writer.write(batch)
    assert all(o.fresh for o in outcomes)
    replayed, _ = writer.write(batch[:8])  # the same records again (a crash before the commit)
    assert not any(o.fresh for o in replayed)

    shift = CALENDAR.at(now)
    counts = {k.decode(): v.decode() for k, v in redis_client.hgetall(keys.counts("cam-1", shift.id)).items()}
    assert (counts["frames"], counts["ok"], counts["ng"]) == ("12", "9", "3")
    assert counts["first_ms"] == counts["last_ms"] == str(now)
    assert 0 < redis_client.ttl(keys.counts("cam-1", shift.id)) <= 7200
    minutes = keys.minutes("cam-1", now // HOUR_MS)
    assert redis_client.hget(minutes, f"{now // MINUTE_MS}:f") == b"12"
    assert redis_client.hget(minutes, f"{now // MINUTE_MS}:ng") == b"3"
    assert 0 < redis_client.ttl(minutes) <= 2 * 3600 + 120
    assert redis_client.smembers(keys.shift_cameras(shift.id)) == {b"cam-1"}

    shown = summarise(counts, {k.decode(): v.decode() for k, v in redis_client.hgetall(minutes).items()}, now + 2000)
    assert shown["shift"]["reject_rate"] == pytest.approx(0.25)
    assert shown["hour"] == {"frames": 12, "ok": 9, "ng": 3, "reject_rate": 0.25}
    assert shown["fps"] == pytest.approx(6.0)  # 12 frames since the camera's first one, 2 s ago


def test_a_camera_on_probation_counts_once_admitted(redis_client: redis.Redis, redis_prefix: str) -> None:
    """A flood of made-up ids (each on probation) writes no counts; the frame that admits a camera
    counts its frames on probation too, so a real camera's counts start at its first frame."""
    writer, keys = _writer(redis_client, redis_prefix), RedisKeys(redis_prefix)
    now = time.time_ns() // 1_000_000
    shift = CALENDAR.at(now).id
    writer.write([_write(f"flood-{n}", n, False, now) for n in range(20)])
    assert redis_client.smembers(keys.shift_cameras(shift)) == set()
    assert not list(redis_client.scan_iter(f"{redis_prefix}:counts:*"))
    writer.write([_write("new", 100, True, now), _write("new", 101, False, now)])  # on probation: not counted
    assert not redis_client.exists(keys.counts("new", shift))
    writer.write([_write("new", 102, False, now)])  # the third frame admits it (admit_frames=3)
    assert redis_client.hgetall(keys.counts("new", shift))[b"frames"] == b"3"
    assert redis_client.hget(keys.counts("new", shift), "ng") == b"1"
    writer.write([_write("new", 101, False, now)])  # a replay of a probation frame: still counted once
    assert redis_client.hget(keys.counts("new", shift), "frames") == b"3"


def test_frames_are_counted_in_the_shift_of_their_time(redis_client: redis.Redis, redis_prefix: str) -> None:
    writer, keys = _writer(redis_client, redis_prefix), RedisKeys(redis_prefix)
    now = time.time_ns() // 1_000_000
    earlier = CALENDAR.previous(CALENDAR.at(now))
    writer.write([_write("cam-1", i, False, now) for i in range(3)])  # admitted
    late = _write("cam-1", 3, False, now)
    late.event_ms = earlier.end_ms - 1  # captured in the last millisecond of the previous shift
    writer.write([late, _write("cam-1", 4, True, now)])
    assert redis_client.hget(keys.counts("cam-1", earlier.id), "frames") == b"1"
    assert redis_client.hget(keys.counts("cam-1", CALENDAR.at(now).id), "frames") == b"4"
    assert redis_client.hget(keys.counts("cam-1", CALENDAR.at(now).id), "ng") == b"1"
