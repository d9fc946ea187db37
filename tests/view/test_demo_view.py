"""`make demo` starts the view: on its port, or on a free one when that port is taken."""

from __future__ import annotations

import socket

import httpx
import pytest

from programs.demo import DemoSettings, start_view

pytestmark = pytest.mark.integration


def test_demo_view_moves_to_a_free_port_when_its_own_is_taken(redis_url: str, redis_prefix: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        view = start_view(DemoSettings(redis_url=redis_url, redis_prefix=redis_prefix, demo_view_port=port,
                                       log_json=False))
        try:
            assert view.port != port and view.url.startswith("http://127.0.0.1:")
            assert httpx.get(f"{view.url}/healthz").json()["ok"] is True
        finally:
            view.stop()


def test_the_summary_prints_each_alert_once(redis_client, redis_url: str, redis_prefix: str) -> None:
    from linewatch.contract import Alert
    from programs.demo import summary

    class Tally:  # the summary reads only the per-camera counts of the demo's alert follower
        counts = {"cam-2": 1}

    settings = DemoSettings(redis_url=redis_url, redis_prefix=redis_prefix)
    alert = Alert(camera="cam-2", frame_seq=120, capture_ns=1, score_raw=0.1, score=0.8, threshold=0.5,
                  model_name="m", model_version="v1", mask_key="k", mask_size=(64, 64), frame_id="0-120")
    first = summary(redis_client, settings, {"cam-2": 5}, {"cam-2": "0-0"}, Tally(), [alert])
    later = summary(redis_client, settings, {"cam-2": 9}, {"cam-2": "0-0"}, Tally(), [])
    assert first.count("ALERT cam-2 frame 120") == 1
    assert "ALERT" not in later and later.splitlines()[1].split()[-1] == "1"  # still counted in the table


def test_demo_log_lines_go_to_the_file_not_the_terminal(tmp_path, capsys) -> None:
    import logging

    import structlog

    from linewatch.logs import configure_logging

    target = (tmp_path / "demo.log").open("a", encoding="utf-8", buffering=1)
    # Restore exactly what was configured before: a stream set here (pytest's captured stderr of this
    # test included) would be closed when later tests log.
    handlers, level, config = logging.root.handlers[:], logging.root.level, structlog.get_config()
    try:
        configure_logging("info", True, stream=target)
        structlog.get_logger("t").warning("calibration_short_of_target", detail="x")
        logging.getLogger("kafka.coordinator.consumer").warning("group_id is None: disabling auto-commit.")
    finally:
        for handler in logging.root.handlers[:]:
            logging.root.removeHandler(handler)
        for handler in handlers:
            logging.root.addHandler(handler)
        logging.root.setLevel(level)
        structlog.configure(**config)
        target.close()
    text = (tmp_path / "demo.log").read_text()
    assert "calibration_short_of_target" in text and "group_id is None" in text
    captured = capsys.readouterr()
    assert "calibration_short_of_target" not in captured.err + captured.out
    assert "group_id" not in captured.err + captured.out
