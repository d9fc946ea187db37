"""GigE Vision through Aravis against a real GigE Vision device: Aravis's fake camera on loopback
(scripts/gige_camera.py). Software trigger driven by POST /trigger with part ids, exposure and
gain written from the camera's config, reconnect after the camera vanished."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from typing import Any

import pytest

from camera_helpers import GigeCamera, free_port
from linewatch.contract import parse_frame_record
from producer.app import ProducerApp
from producer.capture import OutgoingFrame
from producer.settings import CameraSpec, ProducerSettings

pytestmark = pytest.mark.integration


@pytest.fixture
def gige() -> GigeCamera:
    camera = GigeCamera(serial=f"LW{uuid.uuid4().hex[:6].upper()}")
    camera.start()
    yield camera
    camera.kill()


def _post(port: int, **query: str) -> tuple[int, dict]:
    url = f"http://127.0.0.1:{port}/trigger?" + "&".join(f"{k}={v}" for k, v in query.items())
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=5) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _app(kafka_bootstrap: str, topic_base: str, spec: CameraSpec, **kw: Any) -> tuple[ProducerApp, list[OutgoingFrame]]:
    acked: list[OutgoingFrame] = []
    lock = threading.Lock()

    def on_ack(frame: OutgoingFrame, _metadata: Any) -> None:
        with lock:
            acked.append(frame)

    settings = ProducerSettings(
        kafka_bootstrap=kafka_bootstrap, topic_base=topic_base, cameras=[spec], metrics_port=0,
        reconnect_backoff_min_s=0.2, reconnect_backoff_max_s=1.0, camera_start_timeout_s=10, **kw,
    )
    return ProducerApp(settings, on_ack=on_ack), acked


def _wait(check, timeout_s: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not check():
        time.sleep(0.05)
    return bool(check())


def test_software_trigger_takes_one_frame_per_http_trigger_with_its_part(gige, kafka_bootstrap, topic_base) -> None:
    port = free_port()
    spec = CameraSpec(id="gige-1", source="genicam://127.0.0.1?exposure_us=5000&gain_db=2&trigger=software", trigger="http")
    app, acked = _app(kafka_bootstrap, topic_base, spec, trigger_port=port)
    try:
        app.start()
        camera = app._captures[0].source._camera
        assert camera.get_device_serial_number() == gige.serial  # our fake camera, not another one on lo
        assert camera.get_exposure_time() == 5000 and camera.get_gain() == 2  # from the camera's config
        time.sleep(1.0)
        assert acked == []  # no trigger, no frame
        replies = [_post(port, camera="gige-1", part=f"SN-{i}") for i in range(3)]
        assert [status for status, _ in replies] == [202, 202, 202]
        assert _wait(lambda: len(acked) >= 3)
        assert _post(port, camera="gige-1")[1]["part"] == "gige-1-4"  # no part given: camera-<trigger count>
        assert _wait(lambda: len(acked) >= 4)
        assert _post(port, camera="nope", part="x")[0] == 404
        assert _post(port, camera="gige-1", part="bad%09tab")[0] == 400
        time.sleep(0.5)
    finally:
        app.stop()
    metas = [parse_frame_record(f.camera.encode(), f.headers) for f in acked]
    assert [m.part for m in metas] == ["SN-0", "SN-1", "SN-2", "gige-1-4"]  # one frame per trigger, in order
    assert all((m.width, m.height, m.channels) == (512, 512, 1) for m in metas)
    assert app.metrics.value("linewatch_producer_triggers_total", "gige-1") == 4


def test_free_running_camera_reconnects_after_it_vanished(gige, kafka_bootstrap, topic_base) -> None:
    spec = CameraSpec(id="gige-2", source="genicam://127.0.0.1?timeout_s=1", fps=10)
    app, acked = _app(kafka_bootstrap, topic_base, spec)
    try:
        app.start()
        assert _wait(lambda: len(acked) >= 5)
        gige.kill()
        time.sleep(3.0)
        restarted = time.monotonic()
        count = len(acked)
        gige.start()
        assert _wait(lambda: len(acked) >= count + 5, timeout_s=15)
        back_after = time.monotonic() - restarted
        assert app._captures[0].is_alive() and not app.errors
    finally:
        app.stop()
    assert back_after < 10
    assert app.metrics.value("linewatch_producer_source_gaps_total", "gige-2") == 1
    assert app.metrics.value("linewatch_producer_source_gap_seconds_total", "gige-2") >= 3
    seqs = [f.seq for f in acked]
    assert seqs == list(range(len(seqs)))
