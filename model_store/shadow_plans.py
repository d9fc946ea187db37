"""Shadow plans: which candidate versions workers score beside production, and on which frames.

    linewatch-models shadow start CANDIDATE --against REF [--cameras CAM,PATTERN...] [--fraction F]
    linewatch-models shadow stop CANDIDATE
    linewatch-models shadow status

A plan names a candidate (resolved to `name@version` when it starts, so promoting or moving an
alias later does not change what is being measured), the production reference it is compared
with (its model name decides which frames are shadowed: those production scored with that model;
with recipes, the frames of the recipes that serve it, or of the recipes named), optional camera ids
or glob patterns, and
the fraction of those frames to shadow (chosen by frame sequence, so each worker picks the same
frames without talking to the others).

Plans live in the model store beside the recipes (`<root>/_line/shadows.json`), for the reasons
model_store/recipes.py gives: durable, read by every worker from the store it already polls, and
rewritten atomically. Workers poll its stamp.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
from typing import Callable

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from linewatch.errors import ConfigError
from model_store.backend import StorageBackend
from model_store.recipes import check_pattern

_KEY = "_line/shadows.json"
MAX_PLANS = 8  # each plan is a model every worker keeps loaded: memory, and compute when idle


class ShadowRefused(ConfigError):
    """A shadow change that cannot work; the message says why."""


class Plan(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    candidate: str = Field(description="name@version, resolved at start")
    against: str = Field(description="the production reference compared with (name@alias or name@version)")
    production_model: str = Field(description="model name of `against`: frames scored by it are shadowed")
    cameras: tuple[str, ...] = Field((), description="camera ids or glob patterns; empty: every camera")
    recipes: tuple[str, ...] = Field((), description="recipes whose frames are shadowed; empty: any (and frames without recipes)")
    fraction: float = Field(1.0, gt=0, le=1, description="share of matching frames scored by the candidate")
    started: str = ""
    author: str = ""

    def covers(self, camera: str, recipe: str | None = None) -> bool:
        if self.recipes and recipe not in self.recipes:
            return False
        return not self.cameras or any(fnmatch.fnmatchcase(camera, p) for p in self.cameras)

    def picks(self, seq: int) -> bool:
        """Deterministic by frame sequence: every worker picks the same frames of a camera."""
        if self.fraction >= 1.0:
            return True
        # Knuth's multiplicative hash spreads consecutive sequences over [0, 1).
        return ((seq * 2654435761) % 2**32) / 2**32 < self.fraction


class Plans(BaseModel):
    model_config = ConfigDict(extra="forbid")
    plans: dict[str, Plan] = {}  # candidate name@version -> plan


class ShadowBook:
    """Reads and changes the shadow plans in a model store's backend."""

    def __init__(self, backend: StorageBackend, resolve: Callable[[str], tuple[str, str]] | None = None) -> None:
        self.backend = backend
        self.resolve = resolve

    def stamp(self) -> str | None:
        return self.backend.stamp(_KEY)

    def plans(self) -> Plans:
        try:
            return Plans.model_validate_json(self.backend.read_bytes(_KEY))
        except FileNotFoundError:
            return Plans()
        except ValidationError as exc:
            raise ConfigError(f"{_KEY} is invalid: {exc}") from exc

    def start(self, candidate: str, against: str, cameras: list[str], fraction: float, author: str,
              recipes: list[str] = ()) -> Plan:
        if self.resolve is None:
            raise ShadowRefused("starting a shadow needs the model store to resolve references")
        try:
            cand = "@".join(self.resolve(candidate))
            prod_name, prod_version = self.resolve(against)
        except Exception as exc:  # noqa: BLE001 - the store's reason (unknown model, bad alias) is the answer
            raise ShadowRefused(f"shadow {candidate} against {against}: {exc}") from None
        if cand == f"{prod_name}@{prod_version}":
            raise ShadowRefused(f"{cand} is what {against} serves: a shadow of production compares nothing")
        for pattern in cameras:
            try:
                check_pattern(pattern)
            except ConfigError as exc:
                raise ShadowRefused(str(exc)) from None
        if not 0 < fraction <= 1:
            raise ShadowRefused(f"fraction {fraction}: a share in (0, 1]")
        current = self.plans()
        if cand not in current.plans and len(current.plans) >= MAX_PLANS:
            raise ShadowRefused(f"{MAX_PLANS} shadows run already; stop one first")
        plan = Plan(candidate=cand, against=against, production_model=prod_name, cameras=tuple(cameras), recipes=tuple(recipes),
                    fraction=fraction, started=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), author=author)
        current.plans[cand] = plan
        self._write(current)
        return plan

    def stop(self, candidate: str) -> Plan:
        current = self.plans()
        key = candidate
        if key not in current.plans and self.resolve is not None:
            try:
                key = "@".join(self.resolve(candidate))
            except Exception:  # noqa: BLE001 - an unresolvable name simply has no plan
                pass
        plan = current.plans.pop(key, None)
        if plan is None:
            raise ShadowRefused(f"no shadow of {candidate} is running")
        self._write(current)
        return plan

    def _write(self, plans: Plans) -> None:
        self.backend.write_atomic(_KEY, plans.model_dump_json(indent=2).encode())
