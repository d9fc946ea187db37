"""Recipes in the worker, pure parts: routing a camera, regions onto the model's input and back."""

from __future__ import annotations

import numpy as np
import pytest

from linewatch.contract import Alert
from linewatch.errors import FrameRejected
from model_store.recipes import Recipe, Region, Table
from worker.routing import Route, Routes, crop, decode_target, frame_map, routes_of
from worker.scoring import anomaly_mask


def _table(**assignments: str) -> Table:
    recipes = {n: Recipe(name=n, model=f"{n}-model@production") for n in ("weld", "press", "default")}
    return Table(seq=3, recipes=recipes, assignments=assignments)


def test_no_recipes_means_no_routes_and_every_camera_gets_lw_model() -> None:
    assert routes_of(Table()) is None


def test_a_camera_is_routed_by_its_assignment_then_pattern_then_default() -> None:
    routes = Routes(_table(**{"cam-1": "weld", "press-*": "press"}))
    assert routes.route("cam-1").model == "weld-model@production"
    assert routes.route("press-7").recipe == "press"
    assert routes.route("other").recipe == "default"
    assert routes.models()[:2] == ["weld-model@production", "press-model@production"]
    without_default = Table(recipes={"weld": Recipe(name="weld", model="w@v1")}, assignments={"cam-1": "weld"})
    assert Routes(without_default).route("cam-2") is None  # -> no_recipe


def test_the_model_sees_the_regions_box_and_masks_come_back_in_frame_coordinates() -> None:
    route = Route("r", "m@1", regions=((100, 50, 200, 100),))
    assert route.box == (100, 50, 200, 100)
    frame = np.zeros((300, 400, 3), np.uint8)
    frame[50:150, 100:300] = 255
    assert (crop(frame, route.box, 400, 300) == 255).all()
    half = frame[::2, ::2]  # a JPEG decoded at 1/2: the same box, in the reduced image
    assert crop(half, route.box, 400, 300).shape[:2] == (50, 100)
    assert decode_target(route.box, (64, 64), 400, 300) == (192, 128)  # the crop still covers 64x64
    amap = np.zeros((64, 64), np.float32)
    amap[:16, :16] = 1.0  # a defect in the box's top-left quarter
    whole = frame_map(amap, route, 400, 300)
    assert whole.shape == (64, 64)
    box = anomaly_mask(whole, 0.5).boxes[0]
    x, y = box[0] * 400 / 64, box[1] * 300 / 64  # mask pixels -> frame pixels, as consumers scale them
    assert abs(x - 100) <= 7 and abs(y - 50) <= 5
    assert whole[40:, :].max() == 0 and whole[:, :15].max() == 0  # nothing outside the box


def test_several_regions_mask_what_lies_between_them() -> None:
    route = Route("r", "m@1", regions=((0, 0, 100, 100), (300, 200, 100, 100)))
    assert route.box == (0, 0, 400, 300)
    whole = frame_map(np.ones((60, 80), np.float32), route, 400, 300)
    assert whole[0, 0] == 1 and whole[-1, -1] == 1 and whole[30, 40] == 0


def test_a_region_outside_the_frame_is_refused() -> None:
    with pytest.raises(FrameRejected):
        crop(np.zeros((100, 100, 3), np.uint8), (200, 200, 50, 50), 100, 100)


def test_recipe_regions_become_the_route() -> None:
    recipe = Recipe(name="p", model="m@1", regions=(Region(x=1, y=2, w=3, h=4),), threshold=0.6, debounce=(2, 3))
    route = Route.of(recipe)
    assert route.regions == ((1, 2, 3, 4),) and route.threshold == 0.6 and route.debounce == (2, 3)


def test_an_alert_carries_its_recipe_and_older_alerts_read_without_one() -> None:
    alert = Alert(camera="cam-1", frame_seq=1, capture_ns=1, score_raw=0.1, score=0.6, threshold=0.5, model_name="m",
                  model_version="v0001", mask_key="k", mask_size=(8, 8), recipe="press")
    assert Alert.from_json(alert.to_json()).recipe == "press"
    import json
    old = json.loads(alert.to_json())
    del old["recipe"]
    assert Alert.from_json(json.dumps(old).encode()).recipe == ""
