"""What the bridge refuses and says: a wrong MQTT password (OPC UA: test_sinks.py), forged or old webhook
signatures, records a receiver refuses for good (dead-letter topic) and unreadable records."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest
from kafka import KafkaConsumer, KafkaProducer

from bridge.dead_letters import H_DLQ_SINK
from bridge.signing import sign, verify
from linewatch.contract import H_DLQ_DETAIL, H_DLQ_REASON, FrameVerdict
from tests.bridge.helpers import OpcUaWatcher, WebhookReceiver, running_bridge, wait_until


def verdict(camera: str, seq: int) -> bytes:
    return FrameVerdict(camera=camera, frame_id=f"0-{seq}", seq=seq, capture_ns=time.time_ns(), verdict="OK", score=0.1,
                        threshold=0.5, model_name="m", model_version="1").to_json()


def test_signature_check_refuses_forgeries_and_replays() -> None:
    secret, body, now = b"k", b'{"camera":"c"}', 1_800_000_000
    good = sign(secret, now, body)
    assert verify(secret, str(now), good, body, now=now + 10)
    assert not verify(secret, str(now), good, body + b" ", now=now)  # body changed
    assert not verify(b"other", str(now), good, body, now=now)  # wrong key
    assert not verify(secret, str(now), good, body, max_age_s=300, now=now + 301)  # replayed later
    assert not verify(secret, str(now + 1), good, body, now=now)  # timestamp changed
    assert not verify(secret, None, good, body) and not verify(secret, "x1", good, body)


@pytest.mark.integration
def test_wrong_mqtt_password_is_refused_and_readiness_says_why(bridge_settings, mosquitto) -> None:
    settings = bridge_settings(bridge_sinks="mqtt", mqtt_port=mosquitto.port, mqtt_username=mosquitto.user, mqtt_password="wrong")
    with running_bridge(settings) as bridge:
        assert wait_until(lambda: "refused" in json.dumps(bridge.readiness()[1]), 15)
        ok, details = bridge.readiness()
    assert not ok and details["down"] == ["mqtt"]
    reason = details["sinks"]["mqtt"]["reason"]
    assert "refused the connection" in reason and "authori" in reason.lower(), reason


@pytest.mark.integration
def test_refused_and_unreadable_records_go_to_the_dead_letter_topic(bridge_settings, kafka_bootstrap, topic_base) -> None:
    receiver = WebhookReceiver(b"hook-secret", refuse_camera="cam-bad")
    receiver.start()
    settings = bridge_settings(bridge_sinks="webhook", webhook_url=receiver.url, webhook_secret="hook-secret", webhook_max_attempts=2)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    topic = f"{topic_base}.results"
    for seq in range(5):
        producer.send(topic, key=b"cam-1", value=verdict("cam-1", seq))
    producer.send(topic, key=b"cam-bad", value=verdict("cam-bad", 0))
    producer.send(topic, key=b"cam-1", value=b"not json")
    producer.flush()
    try:
        with running_bridge(settings):
            assert wait_until(lambda: len(receiver.keys()) == 5, 30)
            consumer = KafkaConsumer(f"{topic_base}.bridge.dlq", bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest")
            letters: list = []
            deadline = time.monotonic() + 30
            while len(letters) < 2 and time.monotonic() < deadline:
                for batch in consumer.poll(timeout_ms=500).values():
                    letters.extend(batch)
            consumer.close()
    finally:
        receiver.stop()
    assert receiver.bad_signatures == 0
    assert sorted(k for k, _ in receiver.received) == [f"cam-1/0-{s}" for s in range(5)]  # POSTs run 4 at a time
    by_reason = {dict(r.headers)[H_DLQ_REASON].decode(): r for r in letters}
    assert set(by_reason) == {"sink_refused", "unparseable"}
    refused = by_reason["sink_refused"]
    assert refused.key == b"cam-bad" and b"HTTP 422" in dict(refused.headers)[H_DLQ_DETAIL]
    assert dict(refused.headers)[H_DLQ_SINK] == b"webhook"
    assert by_reason["unparseable"].value == b"not json"
