"""Decoded frames -> dynamic batches -> the models.

The batch thread takes records in intake order, waits for their decode, and closes a gather at
`max_batch` records or `max_wait_ms` after its first, whichever comes first. Rejected records skip
the models and go straight on to the publisher (dead letter).

Several models (recipes, worker/routing.py): a batch holds one model's frames, across cameras.
Each model with frames waiting has a lane; a lane runs when it holds max_batch frames or its first
frame has waited max_wait_ms, and every lane runs when a gather did not fill (no backlog: its frames
have waited max_wait_ms already), so under a backlog each model still gets full batches. Fairness rule: the lanes due run in
the order of their first frame's arrival, each giving one model batch, so a frame waits at most
max_wait_ms plus the batches of lanes that were due before it, however busy another station is:
a busy lane cannot run twice while a quiet lane is due. A camera whose route changes (a changeover)
first has every lane run, so its earlier frames are scored and published before its later ones.
With no recipes every frame has the model of LW_MODEL: the gather is the batch, as before lanes.

Between batches it swaps in a newly staged version of the model about to run (per model).
"""

from __future__ import annotations

import queue
import time
from dataclasses import dataclass

import cv2
import numpy as np
import structlog

from linewatch import contract as c
from linewatch.errors import FrameRejected
from linewatch.logs import RateLimitedLog
from model_store import preprocess
from worker import metrics
from worker.decode import InputSpec
from worker.records import STOP, Item, Rejected, ScoredBatch
from worker.registry import ModelRegistry
from worker.serving import ServedModel
from worker.supervision import SupervisedThread, Supervisor

log = structlog.get_logger(__name__)
_internal_log = RateLimitedLog(interval_s=30.0)
_ROUTED_MAX = 4096  # cameras remembered for changeover ordering; beyond it every lane is run first


@dataclass
class BatchPolicy:
    max_batch: int = 16
    max_wait_s: float = 0.01


def gather(inbox: "queue.Queue[object]", policy: BatchPolicy, idle_s: float = 0.1) -> tuple[list[object], bool]:
    """Take up to `max_batch` entries: block for the first (up to `idle_s`), then until the wait ends.

    Returns (entries, stop_seen). Pure queue logic, tested on its own.
    """
    try:
        first = inbox.get(timeout=idle_s)
    except queue.Empty:
        return [], False
    if first is STOP:
        return [], True
    entries = [first]
    deadline = time.monotonic() + policy.max_wait_s
    while len(entries) < policy.max_batch:
        remaining = deadline - time.monotonic()
        try:
            entry = inbox.get(timeout=remaining) if remaining > 0 else inbox.get_nowait()
        except queue.Empty:
            break
        if entry is STOP:
            return entries, True
        entries.append(entry)
    return entries, False


def _fit(pixels: np.ndarray, served: ServedModel) -> np.ndarray:
    return fit_to(pixels, served.spec)


def fit_to(pixels: np.ndarray, spec: InputSpec) -> np.ndarray:
    """Decoded for another model's input size (around a swap; a shadow candidate)? Back to BGR, then
    the one preprocessing path."""
    if pixels.shape == (spec.height, spec.width, spec.channels):
        return pixels
    frame = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR) if pixels.shape[2] == 3 else pixels[:, :, 0]
    return preprocess.to_model_input(frame, (spec.height, spec.width), spec.channels)


class Batcher(SupervisedThread):
    """The batch thread: inbox of Items -> outbox of ScoredBatch / Rejected."""

    def __init__(
        self,
        *,
        inbox: "queue.Queue[object]",
        outbox: "queue.Queue[object]",
        registry: ModelRegistry,
        policy: BatchPolicy,
        supervisor: Supervisor,
    ) -> None:
        super().__init__("batcher", supervisor)
        self.inbox = inbox
        self.outbox = outbox
        self.registry = registry
        self.default_ref = registry.default.ref
        self.policy = policy
        self.busy_since: float | None = None  # monotonic start of the batch being computed, for readiness
        self._pending: list[tuple[list[Item], np.ndarray, ServedModel, float]] = []
        self._lanes: dict[str, tuple[float, list[tuple[Item, np.ndarray]]]] = {}  # ref -> (opened, frames)
        self._routed: dict[str, object] = {}  # camera -> the route of its last frame put in a lane

    def working(self) -> bool:
        """A batch computing or frames waiting in a lane (read by the shadow thread: a dict's truth
        and one attribute, no lock needed for a hint)."""
        return self.busy_since is not None or bool(self._lanes)

    def loop(self) -> None:
        stop = False
        while not stop:
            entries, stop = gather(self.inbox, self.policy, self._idle_s())
            frames = self._split(entries)
            if frames and not self._lanes and all(item.route is None for item, _ in frames):
                self._run(self.default_ref, frames)  # no recipes: the gather is the batch, as it always was
            else:
                for item, px in frames:
                    self._enqueue(item, px)
                # A gather that did not fill waited max_wait for more: every lane has waited its turn.
                for ref in self._due(force=stop or len(entries) < self.policy.max_batch):
                    self._run(ref, self._lanes.pop(ref)[1])
            # Collect when the engine is full, or when nothing else is waiting (keeps latency low).
            while self._pending and (len(self._pending) >= self._engine_capacity() or self.inbox.empty() or stop):
                self._collect_oldest()
        self.outbox.put(STOP)

    # -- lanes: one per model with frames waiting (several models only) ----------------------------
    def _enqueue(self, item: Item, px: np.ndarray) -> None:
        route = item.route
        ref = route.model if route is not None else self.default_ref
        camera = item.meta.camera  # type: ignore[union-attr]
        if self._routed.get(camera, route) != route or len(self._routed) >= _ROUTED_MAX:
            self._flush_all()  # a changeover: the camera's earlier frames go first, so its results stay in order
        self._routed[camera] = route
        lane = self._lanes.get(ref)
        if lane is None:
            lane = self._lanes[ref] = (time.monotonic(), [])
        lane[1].append((item, px))

    def _due(self, force: bool) -> list[str]:
        """Lanes to run now, oldest first: full ones, ones whose first frame waited max_wait, or all."""
        now = time.monotonic()
        ready = [(opened, ref) for ref, (opened, frames) in self._lanes.items()
                 if force or len(frames) >= self.policy.max_batch or now - opened >= self.policy.max_wait_s]
        return [ref for _, ref in sorted(ready)]

    def _flush_all(self) -> None:
        for ref in self._due(force=True):
            self._run(ref, self._lanes.pop(ref)[1])
        self._routed.clear()

    def _idle_s(self) -> float:
        """How long gather may wait for a first record: until the oldest lane is due."""
        if not self._lanes:
            return 0.1
        oldest = min(opened for opened, _ in self._lanes.values())
        return max(0.0, min(0.1, oldest + self.policy.max_wait_s - time.monotonic()))

    def _run(self, ref: str, frames: list[tuple[Item, np.ndarray]]) -> None:
        """Batches of at most max_batch of one model's frames, each after room in the engine."""
        for start in range(0, len(frames), self.policy.max_batch):
            while self._pending and len(self._pending) >= self._engine_capacity():
                self._collect_oldest()  # several batches in one turn: never more in flight than slots
            self._submit(ref, frames[start : start + self.policy.max_batch])

    def _engine_capacity(self) -> int:
        return self._pending[0][2].engine.capacity if self._pending else 1

    def _split(self, entries: list[object]) -> list[tuple[Item, np.ndarray]]:
        frames: list[tuple[Item, np.ndarray]] = []
        for item in entries:
            assert isinstance(item, Item)
            if item.rejection is not None:
                self.outbox.put(Rejected(item, item.rejection.reason, item.rejection.detail))
                continue
            assert item.decoded is not None
            result = item.decoded.result()[item.decoded_index]
            if isinstance(result, FrameRejected):
                self.outbox.put(Rejected(item, result.reason, result.detail))
            elif isinstance(result, Exception):  # one record's bytes must not stop the line, whatever they trigger
                detail = f"internal decoder error: {type(result).__name__}: {result}"
                if _internal_log.allow(type(result).__name__) is not None:
                    log.error("decoder raised on a record; dead-lettering it", source=item.source, error=detail)
                self.outbox.put(Rejected(item, c.R_UNDECODABLE, detail[:300]))
            else:
                frames.append((item, result))
        return frames

    def _submit(self, ref: str, frames: list[tuple[Item, np.ndarray]]) -> None:
        if self.registry.holder(ref).take_update() is not None:
            while self._pending:  # results of the old version first, then the new one takes over
                self._collect_oldest()
        served = self.registry.served(ref)
        if served is None:  # loads in no version: only the cameras routed to it are affected
            for item, _ in frames:
                detail = self.registry.note_unavailable(ref, item.meta.camera)  # type: ignore[union-attr]
                self.outbox.put(Rejected(item, c.R_MODEL_UNAVAILABLE, detail))
            return
        now = time.monotonic()
        for item, _ in frames:
            metrics.STAGE_QUEUE.observe(now - item.taken_at)
        pixels = np.stack([_fit(px, served) for _, px in frames])
        metrics.BATCH_SIZE.observe(len(frames))
        metrics.model_metrics(served.name).batch_size.observe(len(frames))
        self.busy_since = time.monotonic()
        served.engine.submit(pixels)
        self._pending.append(([item for item, _ in frames], pixels, served, self.busy_since))

    def _collect_oldest(self) -> None:
        items, pixels, served, started = self._pending.pop(0)
        maps, scores = served.engine.collect()
        infer_s = time.monotonic() - started
        metrics.STAGE_INFER.observe(infer_s)
        per_model = metrics.model_metrics(served.name)
        per_model.infer.observe(infer_s)
        per_model.frames.inc(len(items))
        self.busy_since = self._pending[0][3] if self._pending else None
        self.outbox.put(ScoredBatch(items, pixels, maps, scores, served, infer_s))
