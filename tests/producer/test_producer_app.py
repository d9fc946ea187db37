from __future__ import annotations

import json
import threading
import time

import cv2
import numpy as np
import pytest
from kafka.errors import KafkaTimeoutError, MessageSizeTooLargeError

from linewatch.contract import parse_frame_record
from producer.app import ProducerApp, main, produce_synthetic, synthetic_specs
from producer.settings import CameraSpec
from producer.synthetic import SyntheticCamera
from testkit.probes import http_get
from testkit.services import free_port

from producer_helpers import FakeKafkaProducer, FlakySource, make_settings


def test_produce_synthetic_is_deterministic_and_complete() -> None:
    fake = FakeKafkaProducer()
    result = produce_synthetic(
        {"topic_base": "unit"}, cameras=2, frames_per_camera=25, size=64, defect_rate=0.2,
        defects={"cam-2": (5, 9)}, producer=fake,
    )
    assert result.topic == "unit.frames" and result.sent == 50 and result.dropped == 0
    for i, camera in enumerate(["cam-1", "cam-2"], start=1):
        truth = SyntheticCamera(i, width=64, height=64, defect_rate=0.2,
                                defect_from=5 if camera == "cam-2" else None, defect_to=9 if camera == "cam-2" else None)
        assert result.frames[camera] == [(seq, truth.is_defective(seq)) for seq in range(25)]
    assert {5, 6, 7, 8} <= set(result.defective("cam-2"))
    assert fake.flushed and fake.closed
    again = produce_synthetic({"topic_base": "unit"}, cameras=2, frames_per_camera=25, size=64, defect_rate=0.2,
                              defects={"cam-2": (5, 9)}, producer=FakeKafkaProducer())
    assert again.frames == result.frames


def test_records_carry_key_headers_and_decodable_frames() -> None:
    fake = FakeKafkaProducer()
    produce_synthetic({"topic_base": "unit", "jpeg_quality": 80}, cameras=3, frames_per_camera=5, size=96, producer=fake)
    per_camera: dict[str, list[int]] = {}
    for record in fake.records:
        assert record["topic"] == "unit.frames"
        meta = parse_frame_record(record["key"], record["headers"])
        per_camera.setdefault(meta.camera, []).append(meta.seq)
        assert (meta.encoding, meta.width, meta.height, meta.channels) == ("jpeg", 96, 96, 3)
        image = cv2.imdecode(np.frombuffer(record["value"], np.uint8), cv2.IMREAD_COLOR)
        assert image.shape == (96, 96, 3)
    assert per_camera == {f"cam-{i}": list(range(5)) for i in (1, 2, 3)}  # in order per camera


def test_send_failures_are_counted_not_silent() -> None:
    # Every third delivery fails (as an oversize record would), and one send raises at once.
    class Raising(FakeKafkaProducer):
        def send(self, topic, value=None, key=None, headers=None):  # type: ignore[no-untyped-def]
            n = len(self.records)
            if n == 4:
                self.records.append({})
                raise KafkaTimeoutError("metadata not available")
            return super().send(topic, value, key, headers)

    settings = make_settings(max_frames=12, drop_policy="block")
    app = ProducerApp(settings, producer=Raising(fail=lambda n: MessageSizeTooLargeError("too big") if n % 3 == 0 else None))
    app.start()
    assert app.wait(10)
    assert app.drain(5)
    app.stop()
    counts = app.counts("cam-1")
    assert counts.captured == 12 and counts.dropped == 0
    assert counts.send_errors == 4 + 1 and counts.sent == 12 - 5  # seq 0,3,6,9 fail; send 4 raised


def test_drop_oldest_under_a_slow_broker_accounts_for_every_frame() -> None:
    settings = make_settings(max_frames=40, queue_size=2, drop_policy="drop_oldest", encoding="raw")
    app = ProducerApp(settings, producer=FakeKafkaProducer(delay_s=0.01))
    app.start()
    assert app.wait(20)
    assert app.drain(10)
    app.stop()
    counts = app.counts("cam-1")
    assert counts.captured == 40 and counts.dropped > 0
    assert counts.sent + counts.dropped == 40


def test_reconnect_through_the_app_with_a_fake_source() -> None:
    settings = make_settings(max_frames=6, reconnect_backoff_min_s=0.01, reconnect_backoff_max_s=0.02, drop_policy="block")
    source = FlakySource(lose_at=(2,))
    fake = FakeKafkaProducer()
    app = ProducerApp(settings, producer=fake, source_factory=lambda spec: source)
    app.start()
    assert app.wait(10) and app.drain(5)
    app.stop()
    assert app.counts("cam-1").reconnects == 1
    assert [parse_frame_record(r["key"], r["headers"]).seq for r in fake.records] == list(range(6))


def test_stop_without_drain_is_prompt_for_an_endless_camera() -> None:
    settings = make_settings(cameras=[CameraSpec(id="cam-1", source="synthetic://?seed=1", fps=200)])
    app = ProducerApp(settings, producer=FakeKafkaProducer())
    app.start()
    assert not app.wait(0.3)
    assert app.drain(5)
    app.stop()
    app.stop()  # idempotent
    assert app.counts("cam-1").sent > 5 and not app.errors


def test_metrics_endpoint_reports_zero_drops_per_camera() -> None:
    port = free_port()
    settings = make_settings(cameras=synthetic_specs(2, size=64), max_frames=3, metrics_port=port)
    app = ProducerApp(settings, producer=FakeKafkaProducer())
    app.start()
    try:
        app.wait(10)
        app.drain(5)
        status, reply = http_get(port, "/metrics")
    finally:
        app.stop()
    body = reply.decode()
    assert status == 200
    assert 'linewatch_producer_frames_dropped_total{camera="cam-1"} 0.0' in body
    assert 'linewatch_producer_camera_errors_total{camera="cam-1"} 0.0' in body
    assert 'linewatch_producer_frames_dropped_total{camera="cam-2"} 0.0' in body
    assert 'linewatch_producer_frames_sent_total{camera="cam-2"} 3.0' in body


def test_liveness_follows_the_sender_thread() -> None:
    port = free_port()
    settings = make_settings(cameras=synthetic_specs(1, size=64), metrics_port=port, metrics_host="127.0.0.1")
    app = ProducerApp(settings, producer=FakeKafkaProducer())
    app.start()
    try:
        status, body = http_get(port, "/healthz")
        assert status == 200 and json.loads(body)["sender_alive"] is True
        app._sender.abort()  # the sender thread ends: the producer is no longer alive
        app._sender.join(5)
        assert http_get(port, "/healthz")[0] == 503
    finally:
        app.stop()


def test_cli_help_and_bad_settings(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    assert "LW_" in capsys.readouterr().out
    assert main(["--cameras", "synthetic:0"]) == 2
    assert main([]) == 2  # no cameras configured
    monkeypatch.setenv("LW_JPEG_QUALTY", "50")  # typo: refused, not ignored
    assert main(["--cameras", "synthetic:1"]) == 2


def test_stop_without_drain_counts_queued_frames_as_dropped() -> None:
    class Hung(FakeKafkaProducer):
        """A broker that does not answer until released."""

        def __init__(self) -> None:
            super().__init__()
            self.release = threading.Event()

        def send(self, topic, value=None, key=None, headers=None):  # type: ignore[no-untyped-def]
            self.release.wait(10)
            return super().send(topic, value, key, headers)

    hung = Hung()
    app = ProducerApp(make_settings(max_frames=20, queue_size=50, drop_policy="block"), producer=hung)
    app.start()
    assert app.wait(10)  # all 20 captured: one stuck in send, the rest queued
    stopper = threading.Thread(target=app.stop)
    stopper.start()
    time.sleep(0.2)
    hung.release.set()
    stopper.join(10)
    counts = app.counts("cam-1")
    assert counts.captured == 20 and counts.sent + counts.dropped == 20 and counts.dropped >= 18
