"""Recipes: routing (a table of cases), validation on write, the change log and revert, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from linewatch.errors import ModelNotFound
from model_store.backend import LocalBackend
from model_store.cli import main as models_cli
from model_store.recipes import Recipe, RecipeBook, RecipeRefused, Region, check_pattern, route

RECIPES = {"default": 1, "press": 1, "weld": 1, "weld-left": 1}
ASSIGNMENTS = {"press-1": "press", "weld-*": "weld", "weld-l*": "weld-left", "gone": "removed"}


@pytest.mark.parametrize("camera, expected", [
    ("press-1", "press"),          # exact id
    ("weld-7", "weld"),            # the only matching pattern
    ("weld-l2", "weld-left"),      # the more specific of two patterns
    ("paint-3", "default"),        # no assignment: default
    ("gone", None),                # assigned to a recipe that no longer exists
    ("press-10", "default"),       # an exact id matches itself only
])
def test_route(camera: str, expected: str | None) -> None:
    assert route(camera, ASSIGNMENTS, RECIPES) == expected


def test_without_a_default_an_unassigned_camera_has_no_recipe() -> None:
    assert route("paint-3", {"press-1": "press"}, {"press": 1}) is None


def _known(ref: str) -> tuple[str, str]:
    if not ref.startswith(("ae@", "draem@")):
        raise ModelNotFound(f"no model {ref}")
    return ref.split("@")[0], "v0001"


@pytest.fixture
def book(tmp_path: Path) -> RecipeBook:
    return RecipeBook(LocalBackend(tmp_path), resolve=_known)


def test_changes_are_recorded_and_reverted(book: RecipeBook) -> None:
    book.set_recipe(Recipe(name="default", model="ae@production"), "ana")
    book.set_recipe(Recipe(name="weld", model="draem@production", regions=(Region(x=10, y=0, w=64, h=32),)), "ana")
    book.assign("weld-*", "weld", "ben")
    seq = book.set_recipe(Recipe(name="weld", model="draem@v0002", threshold=0.7), "carl")
    assert book.table().recipes["weld"].threshold == 0.7 and book.table().seq == seq == 4
    history = book.history()
    assert [(h["seq"], h["author"], h["action"], h["subject"]) for h in history] == [
        (4, "carl", "set", "weld"), (3, "ben", "assign", "weld-*"), (2, "ana", "set", "weld"), (1, "ana", "set", "default")]
    book.revert(4, "dora")
    table = book.table()
    assert table.recipes["weld"].model == "draem@production" and table.recipes["weld"].regions[0].w == 64
    assert table.assignments == {"weld-*": "weld"} and table.seq == 5


@pytest.mark.parametrize("change, reason", [
    (lambda b: b.set_recipe(Recipe(name="x", model="nosuch@production"), "a"), "model nosuch@production is unknown"),
    (lambda b: b.assign("cam-1", "nosuch", "a"), "no recipe 'nosuch'"),
    (lambda b: b.assign("cam:1", "default", "a"), "no ':'"),
    (lambda b: b.assign("", "default", "a"), "printable"),
    (lambda b: b.delete_recipe("default", "a"), "is assigned to cam-9"),
    (lambda b: b.unassign("cam-2", "a"), "has no assignment"),
])
def test_bad_changes_are_refused_with_the_reason(book: RecipeBook, change, reason: str) -> None:
    book.set_recipe(Recipe(name="default", model="ae@production"), "a")
    book.assign("cam-9", "default", "a")
    before = book.table()
    with pytest.raises(RecipeRefused, match=reason.replace("(", r"\(").replace("*", r"\*")):
        change(book)
    assert book.table() == before  # nothing half-applied


@pytest.mark.parametrize("region", [dict(x=-1, y=0, w=4, h=4), dict(x=0, y=0, w=0, h=4), dict(x=0, y=0, w=4)])
def test_bad_rectangles_do_not_make_a_recipe(region: dict) -> None:
    with pytest.raises(ValueError):
        Recipe(name="r", model="ae@production", regions=(Region(**region),))


def test_patterns() -> None:
    check_pattern("press-*")
    check_pattern("cam-1")
    for bad in ("", "a:b", "x" * 200, "tab\there"):
        with pytest.raises(RecipeRefused):
            check_pattern(bad)


def test_a_writer_that_lost_the_race_reapplies_on_the_newest_table(tmp_path: Path) -> None:
    first, second = RecipeBook(LocalBackend(tmp_path), _known), RecipeBook(LocalBackend(tmp_path), _known)
    first.set_recipe(Recipe(name="default", model="ae@production"), "a")
    (tmp_path / "_line" / "recipes.json").unlink()  # the current file lags: the change log is the authority
    second.set_recipe(Recipe(name="weld", model="draem@production"), "b")
    assert sorted(first.table().recipes) == ["default", "weld"] and first.table().seq == 2


def test_cli_sets_assigns_and_refuses(model_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    store = tmp_path / "store"
    import shutil

    shutil.copytree(model_root, store)
    base = ["--store", str(store), "recipes", "--author", "tester"]
    assert models_cli([*base, "set", "default", "--model", "synth@production", "--roi", "0,0,128,128",
                       "--debounce", "2/4"]) == 0
    assert models_cli([*base, "assign", "press-*", "default"]) == 0
    capsys.readouterr()
    assert models_cli([*base, "show", "press-3"]) == 0
    assert json.loads(capsys.readouterr().out) == {"camera": "press-3", "recipe": "default"}
    assert models_cli([*base, "set", "bad", "--model", "synth@production", "--roi", "0,0,0,5"]) == 2
    assert "greater than 0" in capsys.readouterr().err
    assert models_cli([*base, "set", "bad", "--model", "missing@production"]) == 2
    assert "missing@production is unknown" in capsys.readouterr().err
