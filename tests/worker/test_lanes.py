"""The batch thread with several models: one model per batch, full batches under a backlog, a quiet
station served within max_wait, and a changeover that keeps a camera's frames in order.

Pure logic of worker/batching.py around a small fake registry and engine (no Kafka, no Redis)."""

from __future__ import annotations

import queue
import time
from concurrent.futures import Future
from types import SimpleNamespace

import numpy as np

from linewatch.contract import FrameMeta
from worker.batching import BatchPolicy, Batcher
from worker.decode import InputSpec
from worker.records import STOP, Item, ScoredBatch
from worker.routing import Route
from worker.supervision import Supervisor

SPEC = InputSpec(8, 8, 3)


class _Engine:
    capacity = 2  # batches in flight, as two CUDA streams allow


    def __init__(self, delay_s: float = 0.0) -> None:
        self.sizes: list[int] = []
        self._out: list[int] = []
        self.delay_s = delay_s

    def submit(self, batch: np.ndarray) -> None:
        time.sleep(self.delay_s)  # a batch's compute
        assert len(self._out) < self.capacity, "more batches in flight than the engine has slots"
        self.sizes.append(len(batch))
        self._out.append(len(batch))

    def collect(self) -> tuple[np.ndarray, np.ndarray]:
        n = self._out.pop(0)
        return np.zeros((n, 8, 8), np.float32), np.zeros(n, np.float32)


class _Registry:
    def __init__(self, refs: list[str], delay_s: float = 0.0) -> None:
        self.default = SimpleNamespace(ref="default@production")
        self.models = {r: SimpleNamespace(name=r, version="v1", spec=SPEC, engine=_Engine(delay_s))
                       for r in refs + ["default@production"]}

    def holder(self, ref: str) -> SimpleNamespace:
        return SimpleNamespace(take_update=lambda: None)

    def served(self, ref: str) -> SimpleNamespace:
        return self.models[ref]


def _item(offset: int, camera: str, route: Route | None) -> Item:
    done: Future = Future()
    done.set_result([np.zeros((8, 8, 3), np.uint8)])
    meta = FrameMeta(camera=camera, seq=offset, capture_ns=1, encoding="jpeg", width=8, height=8)
    return Item(("t", 0), offset, 0, camera.encode(), b"x", [], 0, 0.0, 0, meta=meta, decoded=done, route=route)


def _run(items: list[Item], registry: _Registry, max_batch: int = 4) -> list[ScoredBatch]:
    inbox: queue.Queue = queue.Queue()
    outbox: queue.Queue = queue.Queue()
    for item in items:
        inbox.put(item)
    inbox.put(STOP)
    Batcher(inbox=inbox, outbox=outbox, registry=registry, policy=BatchPolicy(max_batch, 0.05), supervisor=Supervisor()).loop()
    out = []
    while (job := outbox.get_nowait()) is not STOP:
        out.append(job)
    return out


def test_a_backlog_of_two_stations_gives_full_batches_of_one_model_each() -> None:
    a, b = Route("a", "a@1"), Route("b", "b@1")
    items = [_item(i, f"cam-{i % 2}", a if i % 2 else b) for i in range(16)]  # interleaved: 8 frames each
    registry = _Registry(["a@1", "b@1"])
    batches = _run(items, registry)
    assert all(len({it.route.model for it in job.items}) == 1 for job in batches)  # one model per batch
    assert registry.models["a@1"].engine.sizes == [4, 4] and registry.models["b@1"].engine.sizes == [4, 4]
    assert sorted(it.offset for job in batches for it in job.items) == list(range(16))  # none lost, none twice


def test_a_quiet_station_is_not_starved_by_a_busy_one() -> None:
    busy, quiet = Route("busy", "busy@1"), Route("quiet", "quiet@1")
    items = [_item(0, "quiet-1", quiet)] + [_item(i, "busy-1", busy) for i in range(1, 40)]
    batches = _run(items, _Registry(["busy@1", "quiet@1"], delay_s=0.03))  # max_wait 50 ms, 30 ms per batch
    # The busy lane fills and runs; the quiet one runs once its frame waited max_wait (after two busy
    # batches here), not after the whole backlog (ten batches).
    first_quiet = next(i for i, job in enumerate(batches) if job.items[0].route is quiet)
    assert first_quiet <= 3


def test_a_changeover_keeps_a_cameras_frames_in_order() -> None:
    old, new, other = Route("old", "a@1"), Route("new", "b@1"), Route("other", "b@1")
    items = [_item(0, "cam-9", other)] + [_item(i, "cam-1", old) for i in range(1, 3)] + [_item(i, "cam-1", new) for i in range(3, 5)]
    batches = _run(items, _Registry(["a@1", "b@1"]), max_batch=8)
    order = [it.offset for job in batches for it in job.items if it.meta.camera == "cam-1"]
    assert order == [1, 2, 3, 4]  # b@1's lane (opened first, by cam-9) did not take cam-1's new frames ahead


def test_without_recipes_the_gather_is_the_batch() -> None:
    registry = _Registry([])
    batches = _run([_item(i, f"cam-{i % 3}", None) for i in range(10)], registry)
    assert registry.models["default@production"].engine.sizes == [4, 4, 2]
    assert [it.offset for job in batches for it in job.items] == list(range(10))
