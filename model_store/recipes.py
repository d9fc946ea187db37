"""Recipes: what each camera's frames go through (model, regions of interest, overrides).

A line is stations that see different parts; a recipe names, for the cameras assigned to it, the
model reference (`name@alias` or `name@version`), optional regions of interest (rectangles in frame
pixels), and optional threshold and debounce overrides. Cameras are assigned by exact id or by a
glob pattern (`press-*`); a recipe named `default` covers every camera without an assignment.

Where they live, and why: in the model store, beside the models they name
(`<root>/_line/`), not in Redis. It is the one durable place every worker already reads (the local
Redis runs without persistence, and a Redis that loses its data must not lose the line's set-up
with it); a write can check the model reference against the very store workers load from; and the
store's atomic writes give readers the old table or the new one, never half. The view reads the
same folder (read-only).

    <root>/_line/changes/<seq>/change.json  one folder per change, created exclusively (never
                                      overwritten, so two writers cannot take one number): time,
                                      author, action, what changed, and the tables before and after
    <root>/_line/recipes.json         the newest table with its seq (rewritten atomically after each change)

Every change is recorded with its time and author and can be reverted (`revert` writes a new
change that restores the table as it was before the named one). Validation happens on write: an
unknown model, a bad rectangle, a pattern no camera id can match, an assignment to an unknown
recipe, or deleting a recipe still assigned is refused with the reason (RecipeRefused).
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import json
import re
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from linewatch.contract import MAX_CAMERA_ID, valid_camera_id
from linewatch.errors import ConfigError
from model_store.backend import StorageBackend

DEFAULT_RECIPE = "default"
MAX_REGIONS = 16
_FOLDER = "_line"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*@[A-Za-z0-9][A-Za-z0-9_.-]*$")
_WILDCARDS = set("*?[")


class RecipeRefused(ConfigError):
    """A recipe change that cannot work; the message says why."""


class Region(BaseModel):
    """A rectangle in frame pixels the model sees (x, y: top-left corner)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    x: int = Field(ge=0)
    y: int = Field(ge=0)
    w: int = Field(gt=0)
    h: int = Field(gt=0)


class Recipe(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    model: str = Field(description="model reference: name@alias or name@version")
    regions: tuple[Region, ...] = Field((), max_length=MAX_REGIONS, description="regions of interest; empty: the whole frame")
    threshold: float | None = Field(None, gt=0, lt=1, description="normalised threshold override")
    debounce: tuple[int, int] | None = Field(None, description="(n, m): alert when n of the last m frames are anomalous")
    note: str = Field("", max_length=500)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f"recipe name {value!r}: 1-64 letters, digits, '_', '.', '-'")
        return value

    @field_validator("model")
    @classmethod
    def _ref(cls, value: str) -> str:
        if not _REF.match(value):
            raise ValueError(f"model {value!r}: a reference name@alias or name@version")
        return value

    @model_validator(mode="after")
    def _debounce(self) -> "Recipe":
        if self.debounce is not None and not 1 <= self.debounce[0] <= self.debounce[1] <= 64:
            raise ValueError(f"debounce {self.debounce}: 1 <= n <= m <= 64")
        return self


class Table(BaseModel):
    """Recipes and assignments (camera id or glob pattern -> recipe name) at one change."""

    model_config = ConfigDict(extra="forbid")
    seq: int = 0
    recipes: dict[str, Recipe] = {}
    assignments: dict[str, str] = {}


def check_pattern(pattern: str) -> None:
    """A camera id, or a glob that some valid camera id can match."""
    if not pattern or len(pattern) > MAX_CAMERA_ID or not pattern.isprintable() or ":" in pattern:
        raise RecipeRefused(f"camera pattern {pattern!r}: 1-{MAX_CAMERA_ID} printable characters, no ':'")
    if not _WILDCARDS & set(pattern) and not valid_camera_id(pattern):
        raise RecipeRefused(f"camera pattern {pattern!r} is not a valid camera id")
    try:
        re.compile(fnmatch.translate(pattern))
    except re.error as exc:
        raise RecipeRefused(f"camera pattern {pattern!r} does not parse: {exc}") from None


def route(camera: str, assignments: dict[str, str], recipes: dict[str, Any]) -> str | None:
    """The recipe of `camera`: its exact assignment, else the most specific matching pattern (most
    characters that are not wildcards; ties by pattern text), else `default` if it exists, else None."""
    name = assignments.get(camera)
    if name is None:
        matches = [p for p in assignments if _WILDCARDS & set(p) and fnmatch.fnmatchcase(camera, p)]
        if matches:
            best = max(matches, key=lambda p: (sum(ch not in _WILDCARDS for ch in p), p))
            name = assignments[best]
    if name is None:
        name = DEFAULT_RECIPE
    return name if name in recipes else None


class RecipeBook:
    """Reads and changes the line's recipes in a model store's backend.

    `resolve(ref)` checks model references on write (ModelStore.resolve); readers need none."""

    def __init__(self, backend: StorageBackend, resolve: Callable[[str], Any] | None = None) -> None:
        self.backend = backend
        self.resolve = resolve

    # -- reading ------------------------------------------------------------------------------
    def stamp(self) -> str | None:
        """Changes whenever the table does (one stat): what a worker polls."""
        return self.backend.stamp(f"{_FOLDER}/recipes.json")

    def table(self) -> Table:
        """The newest table (the change log is the authority when the current file lags behind it)."""
        newest = self._newest_seq()
        try:
            current = Table.model_validate_json(self.backend.read_bytes(f"{_FOLDER}/recipes.json"))
        except FileNotFoundError:
            current = Table()
        except ValidationError as exc:
            raise ConfigError(f"{_FOLDER}/recipes.json is invalid: {exc}") from exc
        if newest > current.seq:
            current = Table.model_validate(self.change(newest)["after"])
        return current

    def change(self, seq: int) -> dict[str, Any]:
        try:
            return json.loads(self.backend.read_bytes(f"{_FOLDER}/changes/{seq:08d}/change.json"))
        except FileNotFoundError:
            raise RecipeRefused(f"no change {seq}") from None

    def history(self, limit: int = 50) -> list[dict[str, Any]]:
        """The newest `limit` changes, newest first, without the tables."""
        seqs = sorted(self._seqs(), reverse=True)[:limit]
        return [{k: v for k, v in self.change(s).items() if k not in ("before", "after")} for s in seqs]

    def _seqs(self) -> list[int]:
        return [int(n) for n in self.backend.list_children(f"{_FOLDER}/changes") if n.isdigit()]

    def _newest_seq(self) -> int:
        return max(self._seqs(), default=0)

    # -- changing -----------------------------------------------------------------------------
    def set_recipe(self, recipe: Recipe, author: str) -> int:
        if self.resolve is not None:
            try:
                self.resolve(recipe.model)
            except Exception as exc:  # noqa: BLE001 - the store's reason (not found, bad alias) is the answer
                raise RecipeRefused(f"recipe {recipe.name}: model {recipe.model} is unknown: {exc}") from None
        return self._commit(author, "set", recipe.name, lambda t: t.recipes.__setitem__(recipe.name, recipe))

    def delete_recipe(self, name: str, author: str) -> int:
        def apply(t: Table) -> None:
            if name not in t.recipes:
                raise RecipeRefused(f"no recipe {name!r}")
            users = sorted(p for p, r in t.assignments.items() if r == name)
            if users:
                raise RecipeRefused(f"recipe {name!r} is assigned to {', '.join(users)}: unassign first")
            del t.recipes[name]

        return self._commit(author, "delete", name, apply)

    def assign(self, pattern: str, recipe: str, author: str) -> int:
        check_pattern(pattern)

        def apply(t: Table) -> None:
            if recipe not in t.recipes:
                raise RecipeRefused(f"no recipe {recipe!r} to assign")
            t.assignments[pattern] = recipe

        return self._commit(author, "assign", pattern, apply)

    def unassign(self, pattern: str, author: str) -> int:
        def apply(t: Table) -> None:
            if t.assignments.pop(pattern, None) is None:
                raise RecipeRefused(f"{pattern!r} has no assignment")

        return self._commit(author, "unassign", pattern, apply)

    def revert(self, seq: int, author: str) -> int:
        """A new change restoring the table as it was before change `seq`."""
        before = Table.model_validate(self.change(seq)["before"])

        def apply(t: Table) -> None:
            t.recipes, t.assignments = dict(before.recipes), dict(before.assignments)

        return self._commit(author, "revert", str(seq), apply)

    def _commit(self, author: str, action: str, subject: str, apply: Callable[[Table], None]) -> int:
        """Apply a change to the newest table and record it as the next change; a writer that loses
        the race for the number re-reads and applies again (changes are never overwritten)."""
        for _ in range(20):
            before = self.table()
            after = before.model_copy(deep=True)
            apply(after)
            after.seq = self._newest_seq() + 1
            record = {
                "seq": after.seq, "time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "author": author,
                "action": action, "subject": subject, "before": before.model_dump(mode="json"),
                "after": after.model_dump(mode="json"),
            }
            try:
                self.backend.put_tree_exclusive(
                    f"{_FOLDER}/changes/{after.seq:08d}", {"change.json": json.dumps(record, indent=2).encode()})
            except OSError:
                if self.backend.exists(f"{_FOLDER}/changes/{after.seq:08d}"):
                    continue  # another writer took this number: re-read and apply again
                raise
            self.backend.write_atomic(f"{_FOLDER}/recipes.json", after.model_dump_json(indent=2).encode())
            return after.seq
        raise RecipeRefused("too many concurrent recipe changes; try again")
