"""Recipes in the worker: which model, region and overrides each frame goes through.

The line's recipe table lives in the model store (model_store/recipes.py). The worker's model
watcher (worker/registry.py) reads `RecipeBook.stamp()` every `recipe_poll_ms` and, when it moved,
the table, and replaces `Routes` (one immutable snapshot) in a single reference assignment.

Changeover semantics
    The consumer loop takes one snapshot per poll and routes every frame of that poll by it, at
    intake (worker/app.py). A frame keeps that route to the end: frames taken in before the new
    table was read finish with the old recipe, frames taken in after use the new one. The switch
    point is therefore the first frame taken in after a worker read the new table: at most
    `recipe_poll_ms` (+ one poll) after the change was written, on every worker. Camera clocks play
    no part in it (the contract module says why); each result carries `recipe` and
    `model_name`/`model_version`, so the history shows where the switch fell.

No recipes at all: `Routes` is None and every frame is served `LW_MODEL` exactly as before recipes
existed. A table with recipes but none for a camera (no assignment, no `default`): its frames are
dead-lettered with reason `no_recipe`; the line goes on.

Regions of interest: the model sees the bounding box of the recipe's regions (cropped before the
one preprocessing function, model_store/preprocess.py), so its image score covers that box; the
anomaly map comes back onto a frame-shaped canvas at model resolution (`frame_map`), zero outside
the regions, so masks and boxes are in frame coordinates (mask pixels scale to the frame by
mask_size, as without a region) and only the regions can show defects.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from linewatch import contract as c
from linewatch.errors import FrameRejected
from model_store.recipes import Recipe, Table, route

Box = tuple[int, int, int, int]  # x, y, w, h in frame pixels
_ROUTE_CACHE_MAX = 4096  # camera ids remembered per snapshot; beyond it, routed on every frame


@dataclass(frozen=True, slots=True)
class Route:
    """What one frame goes through (the worker's form of a Recipe)."""

    recipe: str
    model: str  # the reference as the recipe names it: the model registry's key
    regions: tuple[Box, ...] = ()
    threshold: float | None = None
    debounce: tuple[int, int] | None = None

    @property
    def box(self) -> Box | None:
        """The bounding box of the regions (None: the whole frame)."""
        if not self.regions:
            return None
        x0 = min(r[0] for r in self.regions)
        y0 = min(r[1] for r in self.regions)
        x1 = max(r[0] + r[2] for r in self.regions)
        y1 = max(r[1] + r[3] for r in self.regions)
        return (x0, y0, x1 - x0, y1 - y0)

    @classmethod
    def of(cls, recipe: Recipe) -> "Route":
        return cls(recipe.name, recipe.model, tuple((r.x, r.y, r.w, r.h) for r in recipe.regions), recipe.threshold,
                   recipe.debounce)


class Routes:
    """One snapshot of the table: camera -> Route, remembered per camera (bounded)."""

    def __init__(self, table: Table) -> None:
        self.seq = table.seq
        self._assignments = dict(table.assignments)
        self._recipes = dict(table.recipes)
        self._routes = {name: Route.of(r) for name, r in table.recipes.items()}
        self._cache: dict[str, Route | None] = {}

    def route(self, camera: str) -> Route | None:
        try:
            return self._cache[camera]
        except KeyError:
            pass
        name = route(camera, self._assignments, self._recipes)
        found = self._routes.get(name) if name is not None else None
        if len(self._cache) < _ROUTE_CACHE_MAX:
            self._cache[camera] = found
        return found

    def models(self) -> list[str]:
        """Model references the table names: assigned recipes' first (in assignment order), then the rest."""
        assigned = [self._routes[n].model for n in self._assignments.values() if n in self._routes]
        default = [self._routes[n].model for n in ("default",) if n in self._routes]
        rest = [r.model for r in self._routes.values()]
        return list(dict.fromkeys(assigned + default + rest))


def routes_of(table: Table) -> Routes | None:
    """The snapshot to serve by; None when the table has no recipes (every camera: LW_MODEL)."""
    return Routes(table) if table.recipes else None


def clip_box(box: Box, width: int, height: int) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of `box` inside a width x height frame; FrameRejected when nothing is left."""
    x, y, w, h = box
    x0, y0, x1, y1 = max(0, x), max(0, y), min(width, x + w), min(height, y + h)
    if x1 - x0 < 2 or y1 - y0 < 2:
        raise FrameRejected(c.R_WRONG_DIMENSIONS, f"recipe region {box} lies outside the {width}x{height} frame")
    return x0, y0, x1, y1


def crop(image: np.ndarray, box: Box, width: int, height: int) -> np.ndarray:
    """The part of a decoded frame (possibly decoded reduced: image size != width x height) that `box` covers."""
    x0, y0, x1, y1 = clip_box(box, width, height)
    sy, sx = image.shape[0] / height, image.shape[1] / width
    top, left = int(y0 * sy), int(x0 * sx)
    return image[top : max(top + 1, round(y1 * sy)), left : max(left + 1, round(x1 * sx))]


def decode_target(box: Box, spec_hw: tuple[int, int], width: int, height: int) -> tuple[int, int]:
    """The size (h, w) the whole frame must decode to, so that the crop still covers the model's input
    (a JPEG is then decoded reduced only as far as the crop allows)."""
    x0, y0, x1, y1 = clip_box(box, width, height)
    return -(-spec_hw[0] * height // (y1 - y0)), -(-spec_hw[1] * width // (x1 - x0))


def frame_map(amap: np.ndarray, route: Route, width: int, height: int) -> np.ndarray:
    """A map of the cropped box -> the same map size over the whole frame: the box's map resized into
    its place, zero outside the recipe's regions (so masks and boxes are in frame coordinates)."""
    mh, mw = amap.shape
    sx, sy = mw / width, mh / height
    canvas = np.zeros_like(amap)
    x0, y0, x1, y1 = clip_box(route.box, width, height)  # type: ignore[arg-type]
    cx0, cy0 = int(x0 * sx), int(y0 * sy)
    cx1, cy1 = max(cx0 + 1, round(x1 * sx)), max(cy0 + 1, round(y1 * sy))
    canvas[cy0:cy1, cx0:cx1] = cv2.resize(amap, (cx1 - cx0, cy1 - cy0), interpolation=cv2.INTER_LINEAR)
    if len(route.regions) > 1:  # inside the box but outside every region: not looked at
        keep = np.zeros(amap.shape, bool)
        for x, y, w, h in route.regions:
            keep[int(y * sy) : max(int(y * sy) + 1, round((y + h) * sy)), int(x * sx) : max(int(x * sx) + 1, round((x + w) * sx))] = True
        canvas[~keep] = 0
    return canvas
