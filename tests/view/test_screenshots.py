"""scripts/screenshots.py in a reduced form: its checks on the real view and Debian's chromium, with
data in the workers' shapes instead of the whole pipeline. A page without cameras is never shot."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tests.view.shapes_writer import ShapesWriter

pytestmark = [pytest.mark.integration, pytest.mark.browser]

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "screenshots.py"


def _script():
    spec = importlib.util.spec_from_file_location("screenshots_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_screenshot_of_a_wall_without_cameras(view, tmp_path: Path) -> None:
    shots = _script()
    with pytest.raises(shots.NotShown, match="camera wall"):
        shots.shoot(view.url, tmp_path, cameras=2, timeout_ms=3000)
    assert list(tmp_path.iterdir()) == []


def test_screenshots_once_every_page_shows_live_data(writer: ShapesWriter, view, tmp_path: Path) -> None:
    shots = _script()
    for camera in ("cam-1", "cam-2"):
        writer.counted(camera, ok=20, ng=1)
        for seq in range(3):
            writer.result(camera, seq, 0.2)
    writer.alert(writer.result("cam-1", 25, 0.9))
    paths = shots.shoot(view.url, tmp_path, cameras=2, timeout_ms=20_000)
    assert [p.name for p in paths] == ["view-wall.png", "view-camera.png", "view-review.png"]
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 20_000
