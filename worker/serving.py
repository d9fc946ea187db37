"""The model a worker serves, and its hot reload.

A watcher thread asks the store every `poll_s` which version the reference (``name@alias``)
points to. When it moved, the new version is loaded and warmed *beside* the old one; the batch
thread picks it up between two batches (`take_update`), so no frame is scored by a half-loaded
model. A version that fails to load is counted and logged, and the old one keeps serving.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable

import numpy as np
import structlog

from linewatch.errors import LinewatchError
from model_store.store import ModelStore
from worker import metrics
from worker.decode import InputSpec
from worker.engine import Engine

log = structlog.get_logger(__name__)


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


class ModelHolder:
    """Owns the served model; swaps to a new version only when the batch thread asks."""

    def __init__(self, store: ModelStore, ref: str, make_engine: EngineFactory, poll_s: float) -> None:
        self.store = store
        self.ref = ref
        self.make_engine = make_engine
        self.poll_s = poll_s
        self.current: ServedModel | None = None
        self._staged: ServedModel | None = None
        self._failed: set[tuple[str, str]] = set()  # versions that failed once are not retried every poll
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="model-watch", daemon=True)

    def load_initial(self) -> ServedModel:
        self.current = load_served(self.store, self.ref, self.make_engine)
        metrics.MODEL_LOADS.labels("ok").inc()
        metrics.MODEL_INFO.labels(self.current.name, self.current.version).set(1)
        log.info("model loaded", model=self.current.name, version=self.current.version, spec=str(self.current.spec))
        return self.current

    def start(self) -> None:
        if self.poll_s > 0:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

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
        current = self.current
        try:
            name, version = self.store.resolve(self.ref)
        except LinewatchError as exc:
            log.warning("model reference does not resolve; keeping current", ref=self.ref, error=str(exc))
            return False
        with self._lock:
            staged = self._staged
        target = staged or current
        if target is not None and (target.name, target.version) == (name, version):
            return False
        if (name, version) in self._failed:
            return False
        try:
            fresh = load_served(self.store, f"{name}@{version}", self.make_engine)
        except (LinewatchError, RuntimeError, OSError, ValueError) as exc:
            metrics.MODEL_LOADS.labels("failed").inc()
            self._failed.add((name, version))
            log.error("new model version failed to load; old one keeps serving", model=name, version=version, error=str(exc))
            return False
        metrics.MODEL_LOADS.labels("ok").inc()
        with self._lock:
            self._staged = fresh
        log.info("model staged for swap", model=name, version=version)
        return True

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_s):
            self.check_once()
