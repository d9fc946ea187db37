"""The trigger board: pending triggers per camera, bounded, and the settings rule for it."""

from __future__ import annotations

import threading

import pytest

from linewatch.errors import ConfigError
from producer.settings import CameraSpec
from producer.trigger import MAX_PENDING, TriggerBoard
from producer_helpers import make_settings


def test_triggers_are_served_in_order_and_bounded() -> None:
    board = TriggerBoard(["a", "b"])
    stop = threading.Event()
    assert board.fire("a", "P-1") == ("P-1", 1)
    assert board.fire("a") == ("a-2", 2)  # no part given: <camera>-<trigger count>
    assert board.wait("a", stop) == "P-1" and board.wait("a", stop) == "a-2"
    for _ in range(MAX_PENDING):
        assert board.fire("b") is not None
    assert board.fire("b") is None  # the PLC is told 429: the camera cannot keep up
    assert board.refused.labels("b")._value.get() == 1
    stop.set()
    assert board.wait("a", stop) is None  # nothing pending and stopping: the capture thread leaves


def test_triggered_cameras_need_the_trigger_port() -> None:
    cameras = [CameraSpec(id="c", source="synthetic://?seed=1", trigger="http")]
    with pytest.raises(ConfigError, match="LW_TRIGGER_PORT"):
        make_settings(cameras=cameras).check()
    make_settings(cameras=cameras, trigger_port=9300).check()
