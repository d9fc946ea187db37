"""The model a worker serves, its hot reload, and what happens when a version will not load.

A watcher thread asks the store every `poll_s` which version the reference (``name@alias``)
points to. When it moved, the new version is loaded and warmed *beside* the old one; the batch
thread picks it up between two batches (`take_update`), so no frame is scored by a half-loaded
model. The same poll re-reads the served version's per-camera thresholds, so commissioning
(`linewatch-models calibrate --from-stream`) takes effect without a restart.

A bad version never takes the line down:
- at start, if the alias's target does not load, the worker serves the newest loadable version
  from the alias's history, says so (log, `linewatch_worker_model_fallback`, readiness detail)
  and keeps trying the target;
- while running, a version that fails keeps the old one serving; it is retried with back-off
  (a file still being copied may load later), never in a tight loop;
- any error inside one poll is logged and the watcher carries on.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import structlog

from linewatch.errors import LinewatchError, ModelError, ModelIntegrityError
from model_store.store import ModelStore
from worker import metrics
from worker.decode import InputSpec
from worker.engine import Engine
from worker.supervision import SupervisedThread, Supervisor

log = structlog.get_logger(__name__)

# What loading a model version may raise: a bad manifest or hash, a broken file, a refused state dict.
LOAD_ERRORS = (LinewatchError, RuntimeError, OSError, ValueError)
_RETRY_MAX_S = 600.0


@dataclass
class ServedModel:
    name: str
    version: str
    engine: Engine
    spec: InputSpec
    normalise: Callable[[np.ndarray], np.ndarray]
    pixel_threshold: float
    camera_thresholds: dict[str, float]


EngineFactory = Callable[..., Engine]


def load_served(store: ModelStore, ref: str, make_engine: EngineFactory) -> ServedModel:
    """Load, hash-check and warm one model version."""
    loaded = store.load(ref, device="cpu")
    height, width = loaded.input_size
    spec = InputSpec(height=height, width=width, channels=loaded.channels)
    engine = make_engine(loaded.module, spec)
    engine.warm_up()
    return ServedModel(
        name=loaded.name,
        version=loaded.version,
        engine=engine,
        spec=spec,
        normalise=loaded.normalise,
        pixel_threshold=float(loaded.pixel_threshold),
        camera_thresholds=dict(loaded.camera_thresholds),
    )


@dataclass
class _Failure:
    error: str
    attempts: int = 1
    retry_at: float = field(default_factory=time.monotonic)


class ModelHolder:
    """Owns the served model; swaps to a new version only when the batch thread asks."""

    def __init__(self, store: ModelStore, ref: str, make_engine: EngineFactory, poll_s: float) -> None:
        self.store = store
        self.ref = ref
        self.make_engine = make_engine
        self.poll_s = poll_s
        self.current: ServedModel | None = None
        self.fallback: str | None = None  # why an older version is served, while it is
        self._staged: ServedModel | None = None
        self._failed: dict[tuple[str, str], _Failure] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: SupervisedThread | None = None

    # -- start ------------------------------------------------------------------------------------
    def load_initial(self) -> ServedModel:
        """Load the reference's target, or failing that the newest loadable version of its alias's history."""
        name, version = self.store.resolve(self.ref)
        try:
            served = self._load(name, version)
        except LOAD_ERRORS as exc:
            served = self._load_fallback(name, version, exc)
        self._serve(served)
        return served

    def _load_fallback(self, name: str, version: str, error: BaseException) -> ServedModel:
        candidates = [v for v in reversed(self.store.alias_history(self.ref)) if v != version]
        for candidate in candidates:
            try:
                served = self._load(name, candidate)
            except LOAD_ERRORS as exc:
                log.warning("fallback version does not load either", model=name, version=candidate, error=str(exc))
                continue
            self.fallback = f"serving {name}@{candidate}: {name}@{version} (the target of {self.ref}) failed to load: {error}"
            metrics.MODEL_FALLBACK.set(1)
            log.error("model target does not load; serving an older version", model=name, target=version,
                      serving=candidate, error=str(error))
            return served
        raise ModelError(f"{name}@{version} does not load ({error}) and no earlier version of {self.ref} does") from error

    def _load(self, name: str, version: str) -> ServedModel:
        key = (name, version)
        try:
            served = load_served(self.store, f"{name}@{version}", self.make_engine)
        except LOAD_ERRORS as exc:
            self._record_failure(key, exc)
            raise
        self._failed.pop(key, None)
        metrics.MODEL_LOADS.labels("ok").inc()
        return served

    def _record_failure(self, key: tuple[str, str], exc: BaseException) -> None:
        metrics.MODEL_LOADS.labels("failed").inc()
        old = self._failed.get(key)
        attempts = old.attempts + 1 if old else 1
        # An integrity failure will not heal by itself soon; a transient one (I/O) may.
        base = 60.0 if isinstance(exc, ModelIntegrityError) else max(self.poll_s, 1.0)
        delay = min(base * 2 ** (attempts - 1), _RETRY_MAX_S)
        self._failed[key] = _Failure(str(exc), attempts, time.monotonic() + delay)

    def _serve(self, served: ServedModel) -> None:
        self.current = served
        metrics.MODEL_INFO.labels(served.name, served.version).set(1)
        log.info("model loaded", model=served.name, version=served.version, spec=str(served.spec))

    # -- watching ---------------------------------------------------------------------------------
    def start(self, supervisor: Supervisor) -> None:
        if self.poll_s <= 0:
            return
        holder = self

        class Watcher(SupervisedThread):
            def loop(self) -> None:
                while not holder._stop.wait(holder.poll_s):
                    holder.poll_once()

        self._thread = Watcher("model-watch", supervisor)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=10)

    def poll_once(self) -> None:
        """One poll; whatever goes wrong inside it is logged and the next poll tries again."""
        try:
            self.check_once()
            self._refresh_camera_thresholds()
        except Exception:  # noqa: BLE001 - the watcher must outlive any single bad poll
            log.exception("model poll failed; trying again next poll", ref=self.ref)

    def take_update(self) -> ServedModel | None:
        """Called between batches: the newly staged model, now current, or None."""
        with self._lock:
            staged, self._staged = self._staged, None
        if staged is None:
            return None
        old = self.current
        self.current = staged
        if old is not None:
            metrics.MODEL_INFO.remove(old.name, old.version)
        metrics.MODEL_INFO.labels(staged.name, staged.version).set(1)
        log.info("model swapped", model=staged.name, version=staged.version, previous=old.version if old else None)
        return staged

    def check_once(self) -> bool:
        """Stage the version the reference points to if it differs; True when one was staged."""
        try:
            name, version = self.store.resolve(self.ref)
        except LinewatchError as exc:
            log.warning("model reference does not resolve; keeping current", ref=self.ref, error=str(exc))
            return False
        with self._lock:
            target = self._staged or self.current
        if target is not None and (target.name, target.version) == (name, version):
            return False
        failure = self._failed.get((name, version))
        if failure is not None and time.monotonic() < failure.retry_at:
            return False
        try:
            fresh = self._load(name, version)
        except LOAD_ERRORS as exc:
            log.error("model version failed to load; the current one keeps serving", model=name, version=version,
                      error=str(exc), retry_in_s=round(self._failed[(name, version)].retry_at - time.monotonic()))
            return False
        with self._lock:
            self._staged = fresh
        if self.fallback is not None:
            log.info("model target loads now; leaving the fallback", model=name, version=version)
            self.fallback = None
            metrics.MODEL_FALLBACK.set(0)
        log.info("model staged for swap", model=name, version=version)
        return True

    def _refresh_camera_thresholds(self) -> None:
        served = self.current
        if served is None:
            return
        fresh = self.store.camera_thresholds(served.name, served.version)
        if fresh != served.camera_thresholds:
            served.camera_thresholds = fresh  # one reference assignment: the publish thread sees old or new
            log.info("per-camera thresholds reloaded", model=served.name, version=served.version, cameras=len(fresh))
