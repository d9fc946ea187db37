from __future__ import annotations

import pytest

from worker.debounce import Debouncer

SEC = 1_000_000_000


def feed(d: Debouncer, camera: str, verdicts: list[bool], start_s: float = 0, fps: float = 10) -> list[int]:
    return [i for i, bad in enumerate(verdicts) if d.observe(camera, bad, int((start_s + i / fps) * SEC))]


def test_persistent_defect_alerts_once_per_cooldown() -> None:
    d = Debouncer(n=3, m=5, cooldown_s=30)
    alerts = feed(d, "cam", [True] * 200)  # 20 s of defect at 10 fps
    assert alerts == [2]  # third anomalous frame of five


def test_reminder_after_cooldown() -> None:
    d = Debouncer(n=3, m=5, cooldown_s=5)
    alerts = feed(d, "cam", [True] * 120)  # 12 s
    assert alerts == [2, 52, 102]


def test_isolated_spikes_do_not_alert() -> None:
    d = Debouncer(n=3, m=5, cooldown_s=0)
    assert feed(d, "cam", [True, False, False, True, False, False, True, False] * 5) == []


def test_cameras_are_independent() -> None:
    d = Debouncer(n=2, m=3, cooldown_s=60)
    assert feed(d, "a", [True, True]) == [1]
    assert feed(d, "b", [True, True]) == [1]


def test_n_larger_than_m_is_rejected() -> None:
    with pytest.raises(ValueError):
        Debouncer(n=4, m=3)
