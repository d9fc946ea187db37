"""The recipes page: the line's recipes, assignments and changes, read from the model store, read-only."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest

from model_store.recipes import Recipe, RecipeBook, Region
from model_store.store import ModelStore
from view.server import ViewServer

pytestmark = pytest.mark.integration


def test_the_recipes_page_lists_recipes_assignments_and_changes(serve, model_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "store"
    shutil.copytree(model_root, root)
    store = ModelStore(root)
    book = RecipeBook(store.backend, resolve=store.resolve)
    book.set_recipe(Recipe(name="weld", model="synth@production", regions=(Region(x=1, y=2, w=30, h=40),),
                           threshold=0.6), "tester")
    book.assign("weld-*", "weld", "tester")
    files = sorted((p, p.stat().st_mtime_ns) for p in (root / "_line").rglob("*"))
    view: ViewServer = serve(model_root=root)
    with httpx.Client(base_url=view.url, timeout=10) as http:
        data = http.get("/api/recipes").json()
        assert http.get("/recipes").status_code == 200
    assert [r["name"] for r in data["recipes"]] == ["weld"]
    assert data["recipes"][0]["regions"] == [{"x": 1, "y": 2, "w": 30, "h": 40}]
    assert data["assignments"] == [{"pattern": "weld-*", "recipe": "weld"}]
    assert [(c["action"], c["author"]) for c in data["history"][:2]] == [("assign", "tester"), ("set", "tester")]
    assert sorted((p, p.stat().st_mtime_ns) for p in (root / "_line").rglob("*")) == files  # read, never written


def test_without_a_store_the_page_says_why(serve, tmp_path: Path) -> None:
    view: ViewServer = serve(model_root=tmp_path / "absent")
    with httpx.Client(base_url=view.url, timeout=10) as http:
        data = http.get("/api/recipes").json()
    assert data["recipes"] == [] and data["seq"] == 0
