"""Redis memory stays bounded whatever camera ids arrive, and a flood never evicts a real camera.

The worker's one Lua script (worker/sinks.py) is driven directly on the real Redis with the frames
it would write; the rules are those of docs/reliability.md ("Redis budget").
"""

from __future__ import annotations

import itertools
import time

import redis

from linewatch import contract as c
from linewatch.contract import RedisKeys
from worker.sinks import Debounce, FrameWrite, ResultWriter, Retention

_offsets = itertools.count()


def _frame(camera: str, *, anomalous: bool = False, mask: bool = True) -> FrameWrite:
    offset = next(_offsets)
    fid = c.frame_id(0, offset)
    fields = {name: "" for name in c.RESULT_FIELDS}
    fields.update(camera=camera, frame_id=fid, anomalous="1" if anomalous else "0",
                  published_ms=str(time.time_ns() // 1_000_000))  # the script's clock, as the worker sets it
    return FrameWrite(
        tp=("frames", 0), offset=offset, fingerprint=f"1:{offset}", camera=camera, frame_id=fid, anomalous=anomalous,
        event_ms=offset, fields=fields, mask_png=b"m" * 100 if mask else b"",
        heat_png=b"h" * 100 if anomalous else b"", frame_jpeg=b"j" * 300 if anomalous else b"",
        preview_jpeg=b"p" * 200, preview_heat=b"q" * 50,
    )


def _writer(client: redis.Redis, prefix: str, **retention: int) -> ResultWriter:
    return ResultWriter(client, RedisKeys(prefix), Retention(**retention), Debounce(3, 5, 30.0))


def _keys(client: redis.Redis, prefix: str) -> list[str]:
    return [k.decode() for k in client.scan_iter(f"{prefix}:*", count=1000)]


def _write(writer: ResultWriter, frames: list[FrameWrite]) -> None:
    outcomes, _ = writer.write(frames)
    assert all(not isinstance(o, Exception) for o in outcomes), outcomes


def test_an_id_flood_evicts_only_ids_on_probation(redis_client: redis.Redis, redis_prefix: str) -> None:
    keys = RedisKeys(redis_prefix)
    writer = _writer(redis_client, redis_prefix, cameras_max=50, probation_max=100, admit_frames=3)
    _write(writer, [_frame("real", anomalous=i % 5 == 0) for i in range(50)])
    before = redis_client.xlen(keys.history("real"))
    for start in range(0, 5000, 250):  # 5,000 one-frame ids, in batches as a worker writes them
        _write(writer, [_frame(f"flood-{i}", anomalous=True) for i in range(start, start + 250)])
    assert before == 50 and redis_client.xlen(keys.history("real")) == 50  # the real camera kept everything
    assert redis_client.zscore(keys.camera_index, "real") is not None
    assert redis_client.zcard(keys.camera_index) == 1  # no flood id was admitted
    assert redis_client.zcard(keys.probation) == 100 and redis_client.hlen(keys.probation_frames) == 100
    flood_keys = [k for k in _keys(redis_client, redis_prefix) if ":flood-" in k]
    # Each of the 100 ids on probation holds: latest, history, alertstate, preview frame + heat, its
    # mask / heat / frame pictures and its blobs set. Nothing of the 4,900 evicted ones is left.
    assert len(flood_keys) <= 100 * 9, len(flood_keys)
    # The survivors are among the newest ids (order within one millisecond is Redis's, by name).
    assert {k.rsplit(":", 1)[-1] for k in flood_keys if k.startswith(keys.history(""))} <= {
        f"flood-{i}" for i in range(4500, 5000)}


def test_a_new_camera_is_admitted_after_its_frames_even_during_a_flood(redis_client: redis.Redis, redis_prefix: str) -> None:
    keys = RedisKeys(redis_prefix)
    writer = _writer(redis_client, redis_prefix, cameras_max=50, probation_max=100, admit_frames=3)
    for i in range(3):
        _write(writer, [_frame("newcomer")] + [_frame(f"flood-{i}-{j}") for j in range(60)])
        admitted = redis_client.zscore(keys.camera_index, "newcomer") is not None
        assert admitted == (i == 2)  # on probation for its first two frames, admitted with the third
    assert redis_client.xlen(keys.history("newcomer")) == 3  # its probation frames were kept


def test_pictures_of_a_forgotten_camera_go_with_it(redis_client: redis.Redis, redis_prefix: str) -> None:
    keys = RedisKeys(redis_prefix)
    writer = _writer(redis_client, redis_prefix, cameras_max=2, probation_max=10, admit_frames=1)
    _write(writer, [_frame("a", anomalous=True) for _ in range(5)])
    pictures = [k for k in _keys(redis_client, redis_prefix) if k.startswith((keys.frame_at("a", ""), keys.mask("a", "")))]
    assert len(pictures) == 10  # 5 frames x (mask, frame picture); the heat keys share the frame prefix
    _write(writer, [_frame("b"), _frame("c")])  # two newer admitted cameras push "a" out
    assert redis_client.zscore(keys.camera_index, "a") is None
    assert [k for k in _keys(redis_client, redis_prefix) if k.endswith(":a") or ":a:" in k] == []


def test_per_frame_keys_are_capped_per_camera(redis_client: redis.Redis, redis_prefix: str) -> None:
    keys = RedisKeys(redis_prefix)
    writer = _writer(redis_client, redis_prefix, blobs_max=10, admit_frames=1)
    frames = [_frame("cam", anomalous=True) for _ in range(20)]  # 3 per-frame keys each
    _write(writer, frames)
    kept = [f for f in frames if redis_client.exists(keys.mask("cam", f.frame_id))]
    assert redis_client.zcard(keys.blobs("cam")) == 10
    assert kept == frames[-len(kept):] and 3 <= len(kept) <= 4  # the newest survive, the oldest went first
    assert redis_client.xlen(keys.history("cam")) == 20  # results themselves are not blobs
