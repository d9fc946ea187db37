from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from linewatch.errors import ConfigError
from producer.settings import CameraSpec, ProducerSettings, parse_cameras


def test_cameras_from_json_env(monkeypatch: pytest.MonkeyPatch) -> None:
    cams = [{"id": "cam-1", "source": "synthetic://?seed=1&defect_rate=0.05", "fps": 10, "loop": True},
            {"id": "line2-top", "source": "rtsp://10.0.0.2/stream"}]
    monkeypatch.setenv("LW_CAMERAS", json.dumps(cams))
    settings = ProducerSettings()
    assert [c.id for c in settings.cameras] == ["cam-1", "line2-top"]
    assert settings.cameras[0].fps == 10 and settings.cameras[1].fps is None and settings.cameras[1].loop


def test_synthetic_shorthand(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LW_CAMERAS", "synthetic:4")
    cameras = ProducerSettings().cameras
    assert [c.id for c in cameras] == ["cam-1", "cam-2", "cam-3", "cam-4"]
    assert all(c.source.startswith("synthetic://?seed=") for c in cameras)
    assert len({c.source for c in cameras}) == 4  # one seed each


def test_env_prefix_is_lw(monkeypatch: pytest.MonkeyPatch) -> None:
    # LW_ prefix, not the bare field name, whatever the base classes' configs are.
    monkeypatch.setenv("LW_JPEG_QUALITY", "55")
    monkeypatch.setenv("LW_TOPIC_BASE", "plant7")
    monkeypatch.setenv("JPEG_QUALITY", "12")
    settings = ProducerSettings()
    assert settings.jpeg_quality == 55 and settings.topics.frames == "plant7.frames"


@pytest.mark.parametrize(
    "value",
    [
        "synthetic:0",
        "synthetic:x",
        "not json",
        '[{"id": "a:b", "source": "0"}]',
        '[{"id": "a", "source": "0"}, {"id": "a", "source": "1"}]',
        '[{"id": "a", "source": "0", "colour": "red"}]',
        '{"id": "a", "source": "0"}',
    ],
)
def test_bad_cameras_rejected(value: str) -> None:
    with pytest.raises((ValidationError, ValueError)):
        ProducerSettings(cameras=value)


def test_parse_cameras_accepts_specs() -> None:
    spec = CameraSpec(id="x", source="0")
    assert parse_cameras([spec, {"id": "y", "source": "1"}])[0] is spec


def test_field_checks() -> None:
    with pytest.raises(ValidationError):
        ProducerSettings(encoding="webp")
    with pytest.raises(ValidationError):
        ProducerSettings(jpeg_quality=0)
    with pytest.raises(ValidationError):
        ProducerSettings(drop_policy="newest")
    with pytest.raises(ValidationError):
        ProducerSettings(no_such_option=1)
    assert ProducerSettings(encoding="PNG").encoding == "png"


def test_cross_field_checks() -> None:
    with pytest.raises(ConfigError, match="no cameras"):
        ProducerSettings().check()
    with pytest.raises(ConfigError):
        ProducerSettings(cameras="synthetic:1", reconnect_backoff_min_s=5, reconnect_backoff_max_s=1).check()
    with pytest.raises(ConfigError):
        ProducerSettings(cameras="synthetic:1", resize_width=128).check()
    ProducerSettings(cameras="synthetic:1", resize_width=128, resize_height=96).check()


def test_every_field_is_documented() -> None:
    for name, info in ProducerSettings.model_fields.items():
        assert info.description, f"{name} needs a description (the README table is generated from them)"
