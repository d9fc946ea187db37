"""Shadow scoring and the watch after a promotion: a candidate proves itself on the line's frames.

ShadowRunner (its own thread). The publish thread offers it each batch **after** the batch's
results were published and acknowledged, so a shadow never delays a production result or holds an
offset. The runner scores the frames the shadow plans pick (model_store/shadow_plans.py: frames
production scored with the plan's model, its cameras, its fraction) with each candidate and writes
one entry per frame to `P:shadow:<candidate>:<camera>` (contract SHADOW_FIELDS, MAXLEN ~
SHADOW_MAXLEN, a TTL). Shadow entries never raise alerts, never reach Kafka, never touch
production state.

Shedding, the rule: shadow work is what gives way. An offered batch is shed (counted per
candidate, `linewatch_worker_shadow_frames_total{outcome="shed"}`) when the runner's queue (a
few batches) is full, or when production does not fall idle (no frame in the batch thread's inbox,
no batch computing) within `idle_wait_s` of the runner taking the batch up: the runner waits for
gaps in production's work and gives up rather than compete for the cores. The runner scores in chunks of
at most `max_batch` frames, so a production batch arriving meanwhile waits at most one small
candidate pass. A Redis error drops that chunk's entries (counted as `dropped`): the shadow is
a measurement, and a gap in it is visible in the report's frame counts.

RolloutWatch (publish thread, cheap counters). After a promotion that a shadow report gated
(`promote --require-shadow` writes the report's summary into the alias's evidence), the first
`frames` frames per camera of the promoted version are counted. If a camera's alarm count k of n
makes the one-sided exact binomial test against the shadow's predicted alarm-rate upper bound p
significant (P(X >= k | n, p) < alpha), a `rollout` event goes to the recalibrate stream (once
per camera and version) and `linewatch_worker_rollout_events_total` counts it; rolling back
stays one command (`linewatch-models rollback`). The test runs after every batch: the small alpha
(0.001 by default) keeps the false-event rate of repeated looks low, and the measured rate counts
every frame (real defects included), so the event errs on the side of calling attention.
"""

from __future__ import annotations

import queue
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import redis
import structlog
from prometheus_client import Counter
from scipy import stats

from linewatch.contract import DRIFT_FIELDS, SHADOW_MAXLEN, RedisKeys
from linewatch.errors import LinewatchError
from linewatch.logs import RateLimitedLog
from model_store.shadow_plans import Plan, ShadowBook
from model_store.store import ModelStore
from worker.batching import fit_to
from worker.records import ScoredBatch
from worker.scoring import effective_threshold
from worker.sinks import FrameWrite, Written
from worker.serving import LOAD_ERRORS, EngineFactory, ServedModel, load_served
from worker.supervision import SupervisedThread, Supervisor

log = structlog.get_logger(__name__)

SHADOW_FRAMES = Counter(
    "linewatch_worker_shadow_frames_total",
    "Frames offered to a shadow candidate: scored, shed (production busy or queue full), dropped (Redis error).",
    ["candidate", "outcome"],
)
ROLLOUT_EVENTS = Counter(
    "linewatch_worker_rollout_events_total", "A promoted version alarming clearly above its shadow's prediction.", ["model"]
)


@dataclass(frozen=True)
class ShadowPolicy:
    queue_batches: int = 2
    max_batch: int = 4
    ttl_s: int = 7 * 86400
    poll_s: float = 2.0
    idle_wait_s: float = 0.2


@dataclass
class _Offer:
    job: ScoredBatch
    frames: list[tuple[int, str, str]]  # (index in the batch, production score, production anomalous "1"/"0")
    plans: list[Plan]


class ShadowRunner(SupervisedThread):
    def __init__(self, book: ShadowBook, store: ModelStore, make_engine: EngineFactory, client: redis.Redis,
                 keys: RedisKeys, policy: ShadowPolicy, busy: Callable[[], bool], supervisor: Supervisor) -> None:
        super().__init__("shadow", supervisor)
        self.book, self.store, self.make_engine, self.client, self.keys = book, store, make_engine, client, keys
        self.policy, self.busy = policy, busy
        self.plans: list[Plan] = []  # replaced whole by the runner thread; read by the publish thread
        self._models: dict[str, ServedModel] = {}
        self._retry_at: dict[str, float] = {}
        self._queue: queue.Queue[_Offer | None] = queue.Queue(maxsize=policy.queue_batches)
        self._stamp: object = object()
        self._next_poll = 0.0
        self._log = RateLimitedLog(interval_s=30.0)

    # -- the publish thread's side ------------------------------------------------------------
    def published(self, job: ScoredBatch, writes: list[FrameWrite], results: dict) -> None:
        """A batch whose results were published and acknowledged. Never blocks."""
        plans = [p for p in self.plans if p.production_model == job.served.name]
        if not plans:
            return
        frames = []
        for i, w in enumerate(writes):
            f = w.fields
            recipe = _recipe(job, i)
            if isinstance(results.get(i), Written) and any(p.covers(w.camera, recipe) and p.picks(int(f["seq"])) for p in plans):
                frames.append((i, f["score"], f["anomalous"]))
        if not frames:
            return
        try:
            self._queue.put_nowait(_Offer(job, frames, plans))
        except queue.Full:
            for plan in plans:
                SHADOW_FRAMES.labels(plan.candidate, "shed").inc(len(frames))

    def loaded(self) -> list[str]:
        """Candidates loaded and scoring (readiness detail)."""
        return sorted(self._models)

    def stop(self) -> None:
        try:
            self._queue.put(None, timeout=1.0)
        except queue.Full:
            pass

    # -- the runner thread --------------------------------------------------------------------
    def loop(self) -> None:
        while True:
            self._refresh()
            try:
                offer = self._queue.get(timeout=self.policy.poll_s)
            except queue.Empty:
                continue
            if offer is None:
                return
            if not self._wait_idle():
                for plan in offer.plans:
                    SHADOW_FRAMES.labels(plan.candidate, "shed").inc(len(offer.frames))
                continue
            for plan in offer.plans:
                self._score(plan, offer)

    def _wait_idle(self) -> bool:
        """True once production has nothing waiting; False if it stayed busy for `idle_wait_s`."""
        deadline = time.monotonic() + self.policy.idle_wait_s
        while self.busy():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.005)
        return True

    def _refresh(self) -> None:
        now = time.monotonic()
        if now < self._next_poll:
            return
        self._next_poll = now + self.policy.poll_s
        try:
            stamp = self.book.stamp()
            if stamp != self._stamp:
                self._stamp = stamp
                self.plans = list(self.book.plans().plans.values()) if stamp is not None else []
                log.info("shadow plans read", candidates=[p.candidate for p in self.plans])
        except LinewatchError as exc:
            if self._log.allow("plans") is not None:
                log.warning("shadow plans unreadable; keeping the last ones", error=str(exc))
        wanted = {p.candidate for p in self.plans}
        for gone in set(self._models) - wanted:
            del self._models[gone]
            log.info("shadow candidate unloaded", candidate=gone)
        for candidate in wanted - set(self._models):
            if now >= self._retry_at.get(candidate, 0.0):
                self._load(candidate, now)

    def _load(self, candidate: str, now: float) -> None:
        try:
            self._models[candidate] = load_served(self.store, candidate, self.make_engine)
        except LOAD_ERRORS as exc:
            self._retry_at[candidate] = now + 60.0  # a bad candidate must not cost the worker a load per poll
            log.error("shadow candidate does not load; retrying in 60 s", candidate=candidate, error=str(exc))
            return
        self._retry_at.pop(candidate, None)
        log.info("shadow candidate loaded", candidate=candidate)

    def _score(self, plan: Plan, offer: _Offer) -> None:
        served = self._models.get(plan.candidate)
        job = offer.job
        picked = [f for f in offer.frames if plan.covers(job.items[f[0]].meta.camera, _recipe(job, f[0]))
                  and plan.picks(job.items[f[0]].meta.seq)]
        if served is None or not picked:
            if served is None and picked:  # loading, or failed to load: visible as shed work
                SHADOW_FRAMES.labels(plan.candidate, "shed").inc(len(picked))
            return
        production_ms = 1000.0 * job.infer_s / max(1, len(job.items))
        for start in range(0, len(picked), self.policy.max_batch):
            chunk = picked[start : start + self.policy.max_batch]
            if start and not self._wait_idle():
                SHADOW_FRAMES.labels(plan.candidate, "shed").inc(len(picked) - start)
                return
            self._score_chunk(plan, served, job, chunk, production_ms)

    def _score_chunk(self, plan: Plan, served: ServedModel, job: ScoredBatch, chunk: list[tuple[int, str, str]],
                     production_ms: float) -> None:
        pixels = np.stack([fit_to(job.pixels[i], served.spec) for i, _, _ in chunk])
        started = time.monotonic()
        served.engine.submit(pixels)
        _maps, raw = served.engine.collect()
        candidate_ms = 1000.0 * (time.monotonic() - started) / len(chunk)
        normalised = np.asarray(served.normalise(np.asarray(raw, np.float64)), np.float64)
        now_ns = time.time_ns()
        pipe = self.client.pipeline(transaction=False)
        for (i, prod_score, prod_anomalous), score in zip(chunk, normalised):
            meta = job.items[i].meta
            threshold = effective_threshold(meta.camera, {}, {}, served.camera_thresholds, 0.5)
            key = self.keys.shadow(plan.candidate, meta.camera)
            pipe.xadd(key, {
                "camera": meta.camera, "frame_id": job.items[i].frame_id, "seq": str(meta.seq),
                "production_model": f"{job.served.name}@{job.served.version}", "production_score": prod_score,
                "production_anomalous": prod_anomalous, "candidate_score": f"{float(score):.6f}",
                "candidate_anomalous": "1" if score >= threshold else "0", "candidate_ms": f"{candidate_ms:.3f}",
                "production_ms": f"{production_ms:.3f}", "time_ns": str(now_ns),
            }, maxlen=SHADOW_MAXLEN, approximate=True)
            pipe.expire(key, self.policy.ttl_s)
        try:
            pipe.execute()
        except redis.RedisError as exc:
            SHADOW_FRAMES.labels(plan.candidate, "dropped").inc(len(chunk))
            if self._log.allow("redis") is not None:
                log.warning("shadow entries not written", candidate=plan.candidate, error=str(exc))
            return
        SHADOW_FRAMES.labels(plan.candidate, "scored").inc(len(chunk))


def _recipe(job: ScoredBatch, i: int) -> str | None:
    route = job.items[i].route
    return route.recipe if route is not None else None


class RolloutWatch:
    """The first frames of a shadow-gated promotion, against what the shadow predicted (module docstring)."""

    def __init__(self, store: ModelStore, write_events: Callable[[list[dict[str, str]]], None], frames: int,
                 alpha: float, worker_id: str, alias: str = "production") -> None:
        # write_events: the ResultWriter's recalibrate_events, so the stream has one writer and one cap
        self.store, self.write_events, self.frames, self.alpha = store, write_events, frames, alpha
        self.worker_id, self.alias = worker_id, alias
        self._predicted: dict[tuple[str, str], float | None] = {}
        self._counts: dict[tuple[str, str, str], list[int]] = {}  # (name, version, camera) -> [frames, alarms]
        self._log = RateLimitedLog(interval_s=60.0)

    def predicted(self, name: str, version: str) -> float | None:
        """The shadow's alarm-rate upper bound for this version's promotion; None: not a gated promotion."""
        key = (name, version)
        if key not in self._predicted:
            self._predicted[key] = None
            try:
                evidence = self.store.alias_evidence(name, self.alias)
            except (LinewatchError, OSError) as exc:
                if self._log.allow("evidence") is not None:
                    log.warning("promotion evidence unreadable; no rollout watch", model=name, error=str(exc))
                return None
            for record in reversed(evidence):
                bound = (record.get("shadow") or {}).get("alarm_upper_bound")
                if record.get("version") == version and bound is not None:
                    self._predicted[key] = float(bound)
                    break
        return self._predicted[key]

    def published(self, job: ScoredBatch, writes: list[FrameWrite], results: dict) -> None:
        verdicts = [(w.camera, w.anomalous) for i, w in enumerate(writes) if isinstance(results.get(i), Written)]
        self.observe(job.served.name, job.served.version, verdicts)

    def observe(self, name: str, version: str, verdicts: list[tuple[str, bool]]) -> list[dict[str, str]]:
        """Count a published batch's (camera, anomalous); returns the rollout events it raised (and writes them)."""
        bound = self.predicted(name, version)
        if bound is None:
            return []
        touched: set[str] = set()
        for camera, anomalous in verdicts:
            counts = self._counts.setdefault((name, version, camera), [0, 0])
            if counts[0] >= self.frames:
                continue
            counts[0] += 1
            counts[1] += anomalous
            touched.add(camera)
        events = []
        for camera in touched:
            counts = self._counts[(name, version, camera)]
            n, k = counts
            if k > 0 and n > 0 and stats.binom.sf(k - 1, n, max(bound, 1e-9)) < self.alpha:
                counts[0] = self.frames  # one event per camera and version: stop counting it
                events.append(self._event(name, version, camera, k, n, bound))
        return events

    def _event(self, name: str, version: str, camera: str, k: int, n: int, bound: float) -> dict[str, str]:
        event = dict(zip(DRIFT_FIELDS, (camera, "rollout", f"{k / n:.6f}", "0", f"{bound:.6f}", f"{bound:.6f}",
                                        str(time.time_ns()), self.worker_id)))
        event["model"] = f"{name}@{version}"
        ROLLOUT_EVENTS.labels(name).inc()
        log.error("promoted version alarms above its shadow's prediction", model=f"{name}@{version}", camera=camera,
                  alarms=k, frames=n, predicted_bound=bound)
        try:
            self.write_events([event])
        except LinewatchError as exc:
            log.warning("rollout event not written", error=str(exc))
        return event
