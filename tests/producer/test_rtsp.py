"""RTSP against a real server (Debian's GStreamer RTSP server, scripts/rtsp_server.py on loopback):
frames scored end to end, an outage survived and counted, newest-frame delivery, TCP and UDP, a
URL that never answers failing at start with its cause.

Each frame of the server carries the server's clock (camera_helpers.stamped_ns), so the lag of a
frame is measured: producer capture time minus the time the server made the frame.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import cv2
import numpy as np
import pytest

from camera_helpers import RtspServer, free_port, stamped_ns
from linewatch.contract import parse_frame_record
from linewatch.errors import ServiceUnavailable
from producer.app import ProducerApp
from producer.capture import OutgoingFrame
from producer.settings import CameraSpec, ProducerSettings
from producer.stream import StreamOptions, StreamSource
from tests.worker.helpers import history, running_worker, wait_for_results

pytestmark = pytest.mark.integration

OUTAGE_S = 10.0
# Back-off at most 1 s + connect and stream probing (~1 s; open timeout 3 s) + first frame; measured
# 4.7 s on the 2-core VM at load 26 (bench/bench_cameras.py), so 8 s leaves room for a busy CI box.
RECONNECT_BOUND_S = 8.0


def _settings(kafka_bootstrap: str, topic_base: str, cameras: list[CameraSpec], **kw: Any) -> ProducerSettings:
    base: dict[str, Any] = dict(
        kafka_bootstrap=kafka_bootstrap, topic_base=topic_base, cameras=cameras, metrics_port=0,
        stream_open_timeout_s=3, stream_read_timeout_s=1, reconnect_backoff_min_s=0.2, reconnect_backoff_max_s=1.0,
        camera_start_timeout_s=10,
    )
    return ProducerSettings(**{**base, **kw})


class Acks:
    """Every acknowledged frame with the time it was acknowledged."""

    def __init__(self) -> None:
        self.frames: list[tuple[float, OutgoingFrame]] = []
        self.lock = threading.Lock()

    def __call__(self, frame: OutgoingFrame, _metadata: Any) -> None:
        with self.lock:
            self.frames.append((time.monotonic(), frame))

    def since(self, t: float) -> list[OutgoingFrame]:
        with self.lock:
            return [f for at, f in self.frames if at >= t]


def _lag_ms(frame: OutgoingFrame) -> float:
    """Producer capture time minus the server's stamp in the frame's pixels."""
    image = cv2.imdecode(np.frombuffer(frame.value, np.uint8), cv2.IMREAD_GRAYSCALE)
    capture_ns = parse_frame_record(frame.camera.encode(), frame.headers).capture_ns
    return (capture_ns - stamped_ns(image)) / 1e6


def test_rtsp_frames_are_scored_end_to_end(kafka_bootstrap, topic_base, redis_prefix, redis_client, worker_settings) -> None:
    with RtspServer(fps=20) as server:
        camera = CameraSpec(id="rtsp-1", source=server.url, fps=5, part="counter")
        app = ProducerApp(_settings(kafka_bootstrap, topic_base, [camera], max_frames=12, drop_policy="block"))
        try:
            app.start()
            assert app.wait(20) and app.drain(10)
        finally:
            app.stop()
    assert app.counts("rtsp-1").sent == 12 and not app.errors
    with running_worker(worker_settings(max_batch=4)):
        assert wait_for_results(redis_client, redis_prefix, ["rtsp-1"], 12, timeout_s=90) == 12
    entries = history(redis_client, redis_prefix, "rtsp-1")
    assert [int(e["seq"]) for e in entries] == list(range(12))
    assert [e["part"] for e in entries] == [f"rtsp-1-{i}" for i in range(12)]  # part=counter, end to end
    assert all(0 <= float(e["score"]) for e in entries) and {e["model_name"] for e in entries} == {"synth"}


def test_rtsp_outage_is_survived_counted_and_leaves_no_lag(kafka_bootstrap, topic_base) -> None:
    server = RtspServer(fps=20)
    acks = Acks()
    camera = CameraSpec(id="rtsp-1", source=server.url, fps=10)
    app = ProducerApp(_settings(kafka_bootstrap, topic_base, [camera]), on_ack=acks)
    server.start()
    try:
        app.start()
        capture = app._captures[0]
        time.sleep(2.0)
        before = app.counts("rtsp-1").sent
        assert before >= 10
        server.kill()
        time.sleep(OUTAGE_S)
        assert app.metrics.value("linewatch_producer_camera_connected", "rtsp-1") == 0
        restarted = time.monotonic()
        server.start()
        deadline = restarted + RECONNECT_BOUND_S + 5
        while not acks.since(restarted) and time.monotonic() < deadline:
            time.sleep(0.05)
        first_after = acks.frames[-1][0] if acks.since(restarted) else None
        assert first_after is not None, "no frame after the server came back"
        assert first_after - restarted < RECONNECT_BOUND_S
        time.sleep(3.0)  # run on after the reconnect: lag must not build up
        after = acks.since(restarted)
        assert capture.is_alive() and not app.errors  # the same thread carried on: no restart
    finally:
        app.stop()
        server.kill()
    value = lambda name: app.metrics.value(name, "rtsp-1")  # noqa: E731
    assert value("linewatch_producer_source_gaps_total") == 1
    assert OUTAGE_S <= value("linewatch_producer_source_gap_seconds_total") < OUTAGE_S + RECONNECT_BOUND_S
    assert value("linewatch_producer_source_frames_missed_total") >= OUTAGE_S * 20 * 0.9  # the server's 20 fps
    assert value("linewatch_producer_reconnects_total") >= 1
    lags = [_lag_ms(f) for f in after]
    assert len(after) >= 20, len(after)  # ~10 fps for 3 s
    assert max(lags) < 500, lags  # newest frame: no backlog replayed after the reconnect
    seqs = [f.seq for _, f in acks.frames]
    assert seqs == list(range(len(seqs)))  # one sequence across the outage


def test_newest_frame_when_the_reader_is_slower_than_the_camera() -> None:
    with RtspServer(fps=20) as server:
        source = StreamSource(server.url, StreamOptions(open_timeout_s=3, read_timeout_s=2))
        source.open()
        try:
            assert source.native_fps == 20
            lags, skipped = [], 0
            for _ in range(4):
                time.sleep(0.5)  # a consumer at 2 fps behind a 20 fps camera
                frame = source.read()
                lags.append((time.time_ns() - stamped_ns(frame.image)) / 1e6)
                skipped += frame.skipped
        finally:
            source.close()
    assert max(lags) < 200, lags  # not 0.5 s, 1 s, 1.5 s ... of growing lag
    assert skipped >= 4 * 6  # ~9 of every 10 frames replaced unseen


@pytest.mark.parametrize("transport", ["tcp", "udp"])
def test_rtsp_transport(transport: str) -> None:
    with RtspServer(fps=20) as server:
        source = StreamSource(server.url, StreamOptions(open_timeout_s=3, read_timeout_s=2, transport=transport))
        source.open()
        try:
            frames = [source.read() for _ in range(5)]
        finally:
            source.close()
    assert all(f.image.shape == (240, 320, 3) for f in frames)
    stamps = [stamped_ns(f.image) for f in frames]
    assert stamps == sorted(stamps) and len(set(stamps)) == 5  # five different frames, in order


def test_a_url_that_never_answers_fails_at_start_with_the_cause(kafka_bootstrap, topic_base) -> None:
    silent = socket.socket()  # accepts TCP connections (the kernel does) and never says a word
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    url = f"rtsp://127.0.0.1:{silent.getsockname()[1]}/line1"
    settings = _settings(kafka_bootstrap, topic_base, [CameraSpec(id="mute", source=url)],
                         stream_open_timeout_s=1, camera_start_timeout_s=4)
    app = ProducerApp(settings)
    started = time.monotonic()
    try:
        with pytest.raises(ServiceUnavailable) as failure:
            app.start()
    finally:
        app.stop()
        silent.close()
    assert time.monotonic() - started < 8  # not OpenCV's 30 s, not a hang
    message = str(failure.value)
    assert "camera mute" in message and url in message and "did not open within 4 s" in message
    assert "cannot open" in message  # the source's own error, FFmpeg's cause after it


def test_a_refused_url_names_the_refusal(kafka_bootstrap, topic_base) -> None:
    url = f"rtsp://127.0.0.1:{free_port()}/line1"  # nothing listens there
    app = ProducerApp(_settings(kafka_bootstrap, topic_base, [CameraSpec(id="gone", source=url)], camera_start_timeout_s=2))
    try:
        with pytest.raises(ServiceUnavailable, match=r"(?i)connection refused"):
            app.start()
    finally:
        app.stop()
