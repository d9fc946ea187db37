"""The models one worker serves, keyed by model reference, and the thread that keeps them current.

`ModelRegistry` holds one ModelHolder (worker/serving.py) per reference a recipe names, plus the
one of `LW_MODEL` (served when the line has no recipes). Each holder keeps today's rules for its
model: hot swap between batches when its alias moves, fallback to an older version of the alias's
history when the target will not load.

Memory bound: at most `max_loaded` models are loaded. Loading one more first unloads the least
recently used other (by the time of its last batch); a batch already holding an unloaded model
finishes with it (the reference keeps it alive until then). A reference whose load fails in every
version is `unavailable`: retried with back-off (10 s doubling to 10 min), and meanwhile the frames
routed to it are dead-lettered with reason `model_unavailable` (only those cameras); the cameras
are named in /readyz.

The watcher thread (`RegistryWatcher`): every `recipe_poll_s` it checks the recipe table's stamp
and, when it moved, publishes the new routes (worker/routing.py) and loads and warms the models the
table names (up to `max_loaded`), so the batch thread normally finds them ready; every `poll_s` it
runs each loaded holder's alias check. The batch thread loads a model itself only when a frame
needs one that is not loaded (evicted, or beyond `max_loaded`).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import structlog

from model_store.recipes import RecipeBook
from worker import metrics
from worker.decode import InputSpec
from worker.routing import Routes, routes_of
from worker.serving import LOAD_ERRORS, EngineFactory, ModelHolder, ServedModel
from worker.supervision import SupervisedThread, Supervisor

log = structlog.get_logger(__name__)

_RETRY_FIRST_S = 10.0
_RETRY_MAX_S = 600.0
_CAMERAS_NAMED = 20  # cameras named per unavailable model in /readyz


@dataclass
class Unavailable:
    error: str
    retry_at: float
    attempts: int
    cameras: set[str]


class ModelRegistry:
    """Reference -> ModelHolder; at most `max_loaded` loaded (least recently used unloaded)."""

    def __init__(self, store, make_engine: EngineFactory, poll_s: float, max_loaded: int, default: ModelHolder) -> None:
        self.store, self.make_engine, self.poll_s, self.max_loaded = store, make_engine, poll_s, max_loaded
        self.default = default
        self._holders: dict[str, ModelHolder] = {default.ref: default}
        self._used: dict[str, float] = {}
        self._specs: dict[str, InputSpec] = {}
        self._unavailable: dict[str, Unavailable] = {}
        self._lock = threading.RLock()  # loading and unloading; the batch thread's fast path takes none

    # -- the batch thread -------------------------------------------------------------------------
    def holder(self, ref: str) -> ModelHolder:
        holder = self._holders.get(ref)
        if holder is None:
            with self._lock:
                holder = self._holders.setdefault(ref, ModelHolder(self.store, ref, self.make_engine, self.poll_s))
        return holder

    def served(self, ref: str) -> ServedModel | None:
        """The model serving `ref` now, loaded here if need be; None while it is unavailable."""
        self._used[ref] = time.monotonic()
        served = self.holder(ref).current
        return served if served is not None else self.ensure(ref)

    def spec(self, ref: str) -> InputSpec | None:
        """The input spec of `ref` as last loaded (kept after an unload), for decoding at intake."""
        return self._specs.get(ref)

    def note_unavailable(self, ref: str, camera: str) -> str:
        """Record a camera whose frame `ref` could not score; the reason for its dead letter."""
        down = self._unavailable.get(ref)
        if down is None:
            return f"model {ref} is not loaded"
        if len(down.cameras) < _CAMERAS_NAMED:
            down.cameras.add(camera)
        return f"model {ref} loads in no version: {down.error}"[:300]

    # -- loading ----------------------------------------------------------------------------------
    def ensure(self, ref: str) -> ServedModel | None:
        """Load `ref` unless loaded or in back-off; unload the least recently used first if full."""
        with self._lock:
            holder = self.holder(ref)
            if holder.current is not None:
                return holder.current
            down = self._unavailable.get(ref)
            if down is not None and time.monotonic() < down.retry_at:
                return None
            self._make_room(ref)
            try:
                served = holder.load_initial()
            except LOAD_ERRORS as exc:
                attempts = down.attempts + 1 if down else 1
                delay = min(_RETRY_FIRST_S * 2 ** (attempts - 1), _RETRY_MAX_S)
                self._unavailable[ref] = Unavailable(str(exc), time.monotonic() + delay, attempts,
                                                     down.cameras if down else set())
                log.error("model unavailable; its cameras are dead-lettered", ref=ref, error=str(exc),
                          retry_in_s=delay)
                return None
            if self._unavailable.pop(ref, None) is not None:
                log.info("model available again", ref=ref)
            self._specs[ref] = served.spec
            self._used.setdefault(ref, time.monotonic())
            return served

    def _make_room(self, ref: str) -> None:
        loaded = [r for r, h in self._holders.items() if h.current is not None and r != ref]
        while len(loaded) >= self.max_loaded:
            victim = min(loaded, key=lambda r: self._used.get(r, 0.0))
            loaded.remove(victim)
            self._unload(victim)

    def _unload(self, ref: str) -> None:
        holder = self._holders[ref]
        served, holder.current = holder.current, None
        holder._staged = None
        if served is not None:
            metrics.MODEL_INFO.remove(served.name, served.version)
            log.info("model unloaded (least recently used)", ref=ref, model=served.name, version=served.version)

    def load_default(self) -> ServedModel:
        """Load LW_MODEL at start (no recipes): as before recipes, it must load or the worker does not start."""
        with self._lock:
            served = self.default.load_initial()
            self._specs[self.default.ref] = served.spec
            self._used[self.default.ref] = time.monotonic()
            return served

    def preload(self, refs: list[str]) -> None:
        """Load and warm what a table names, up to the bound (the rest load when a frame needs them)."""
        for ref in refs[: self.max_loaded]:
            self.ensure(ref)

    def poll_models(self) -> None:
        """Each loaded holder's alias check (a moved alias is staged; the batch thread swaps it in)."""
        for holder in list(self._holders.values()):
            if holder.current is not None:
                holder.poll_once()

    # -- reporting --------------------------------------------------------------------------------
    def loaded(self) -> dict[str, str]:
        return {ref: f"{h.current.name}@{h.current.version}" for ref, h in list(self._holders.items()) if h.current}

    def failing(self) -> dict[str, dict]:
        out: dict[str, dict] = {}
        for ref, down in list(self._unavailable.items()):
            out[ref] = {"error": down.error[:200], "cameras": sorted(down.cameras)}
        for ref, h in list(self._holders.items()):
            if h.fallback:
                out.setdefault(ref, {"fallback": h.fallback})
        return out


class RecipeWatch:
    """The recipe table as the worker serves it: `routes` (None: no recipes, LW_MODEL for all)."""

    def __init__(self, book: RecipeBook, registry: ModelRegistry) -> None:
        self.book, self.registry = book, registry
        self.routes: Routes | None = None
        self._stamp: str | None = None
        self._read = False

    def refresh(self) -> bool:
        """Read the table if its stamp moved; True when new routes were published."""
        stamp = self.book.stamp()
        if self._read and stamp == self._stamp:
            return False
        table = self.book.table()  # a table that does not read keeps the last routes (the caller logs)
        fresh = routes_of(table)
        if fresh is not None:
            self.registry.preload(fresh.models())  # warm first, so the first routed frames find them loaded
        self.routes, self._stamp, self._read = fresh, stamp, True
        log.info("recipe table read", seq=table.seq, recipes=len(table.recipes), assignments=len(table.assignments))
        return True


class RegistryWatcher(SupervisedThread):
    """Polls the recipe table and the loaded models' aliases; one bad poll is logged, never fatal."""

    def __init__(self, recipes: RecipeWatch, registry: ModelRegistry, recipe_poll_s: float, model_poll_s: float,
                 supervisor: Supervisor) -> None:
        super().__init__("model-watch", supervisor)
        self.recipes, self.registry = recipes, registry
        self.recipe_poll_s, self.model_poll_s = recipe_poll_s, model_poll_s
        self.stopping = threading.Event()

    def loop(self) -> None:
        tick = min(p for p in (self.recipe_poll_s, self.model_poll_s) if p > 0) if self.model_poll_s > 0 else self.recipe_poll_s
        next_models = time.monotonic() + self.model_poll_s
        while not self.stopping.wait(tick):
            try:
                self.recipes.refresh()
            except Exception:  # noqa: BLE001 - an unreadable table (half-copied store, I/O) keeps the last routes
                log.exception("recipe poll failed; keeping the current routes")
            if self.model_poll_s > 0 and time.monotonic() >= next_models:
                next_models = time.monotonic() + self.model_poll_s
                self.registry.poll_models()  # each holder's poll_once logs its own failures
