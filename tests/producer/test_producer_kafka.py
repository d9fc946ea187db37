"""Against the real broker (127.0.0.1:9092 unless LW_KAFKA_BOOTSTRAP says otherwise)."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest
import structlog.testing
from kafka.admin import KafkaAdminClient

from linewatch.contract import parse_frame_record
from linewatch.topics import ensure_topics
from producer.app import ProducerApp, produce_synthetic
from producer.settings import CameraSpec, ProducerSettings

from producer_helpers import consume_all

pytestmark = pytest.mark.integration


def test_ensure_topics_is_idempotent(kafka_producer_settings: ProducerSettings) -> None:
    ensure_topics(kafka_producer_settings, partitions=3)
    ensure_topics(kafka_producer_settings, partitions=3)  # already there: no error
    admin = KafkaAdminClient(**kafka_producer_settings.kafka_client_kwargs())
    try:
        topics = kafka_producer_settings.topics
        described = {t["name"]: t for t in admin.describe_topics([topics.frames, topics.alerts, topics.dead_letter])}
    finally:
        admin.close()
    assert all(t["error_code"] == 0 and len(t["partitions"]) == 3 for t in described.values()), described


def test_two_synthetic_cameras_round_trip(kafka_producer_settings: ProducerSettings) -> None:
    settings = kafka_producer_settings
    ensure_topics(settings, partitions=2)
    result = produce_synthetic(settings, cameras=2, frames_per_camera=30, size=128, defect_rate=0.1,
                               defects={"cam-2": (10, 15)})
    assert result.sent == 60 and result.send_errors == 0 and result.dropped == 0
    records = consume_all(settings, expected=60)
    assert len(records) == 60

    seqs: dict[str, list[int]] = {}
    partition_of: dict[str, set[int]] = {}
    for record in records:
        meta = parse_frame_record(record.key, record.headers)
        assert record.key == meta.camera.encode()
        seqs.setdefault(meta.camera, []).append(meta.seq)
        partition_of.setdefault(meta.camera, set()).add(record.partition)
        assert (meta.encoding, meta.width, meta.height, meta.channels) == ("jpeg", 128, 128, 3)
        assert abs(meta.capture_ns - time.time_ns()) < 600 * 10**9
        image = cv2.imdecode(np.frombuffer(record.value, np.uint8), cv2.IMREAD_COLOR)
        assert image.shape == (128, 128, 3)
    # One partition per camera (keyed), and within it the frames in capture order.
    assert all(len(p) == 1 for p in partition_of.values())
    for camera in ("cam-1", "cam-2"):
        in_offset_order = [parse_frame_record(r.key, r.headers).seq for r in sorted(records, key=lambda r: r.offset)
                           if r.key == camera.encode()]
        assert in_offset_order == list(range(30))
    assert sorted(seqs) == ["cam-1", "cam-2"]
    assert set(range(10, 15)) <= set(result.defective("cam-2"))


def test_oversize_frames_are_counted_as_send_errors(kafka_producer_settings: ProducerSettings) -> None:
    # 256x256 raw frames (196 KB) against a 64 KB limit: Kafka refuses each one through its future.
    settings = kafka_producer_settings.model_copy(update={
        "cameras": [CameraSpec(id="big", source="synthetic://?seed=1", fps=0)],
        "encoding": "raw", "kafka_max_message_bytes": 64 * 1024, "max_frames": 3, "drop_policy": "block",
    })
    ensure_topics(settings, partitions=1)
    app = ProducerApp(settings)
    app.start()
    try:
        assert app.wait(30)
        app.drain(30)
    finally:
        app.stop()
    counts = app.counts("big")
    assert counts.captured == 3 and counts.send_errors == 3 and counts.sent == 0


def test_ensure_topics_warns_about_fewer_partitions(kafka_producer_settings: ProducerSettings) -> None:
    ensure_topics(kafka_producer_settings, partitions=1)
    with structlog.testing.capture_logs() as logs:
        ensure_topics(kafka_producer_settings, partitions=4)  # never repartitions; says so instead
    # One warning per topic it manages: frames, alerts, results, dead letters.
    assert sum(entry["event"] == "topic_has_fewer_partitions" for entry in logs) == 4
