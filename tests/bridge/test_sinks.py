"""A synthetic run through a real worker and the bridge to a real OPC UA client, mosquitto and a
webhook receiver: every verdict arrives, as documented; then one sink after another is stopped
mid-stream for 20 s and nothing is missing once it is back."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest

from linewatch.contract import FrameVerdict
from producer.app import produce_synthetic
from tests.bridge.helpers import MqttWatcher, OpcUaWatcher, WebhookReceiver, running_bridge, secure_client, wait_until
from tests.worker.helpers import history, running_worker, wait_for_results

CAMERAS = ["cam-1", "cam-2"]
SECRET = "hook-secret-1"


def scored(redis_client, prefix: str) -> dict[str, list[str]]:
    """Each camera's frame ids in seq order, as the worker stored them."""
    out = {}
    for camera in CAMERAS:
        entries = sorted(history(redis_client, prefix, camera), key=lambda h: int(h["seq"]))
        out[camera] = [h["frame_id"] for h in entries]
    return out


@pytest.mark.integration
def test_every_verdict_reaches_opcua_mqtt_and_webhook(tmp_path, kafka_bootstrap, topic_base, redis_prefix, redis_client,
                                                       worker_settings, bridge_settings, mosquitto) -> None:
    receiver = WebhookReceiver(SECRET.encode())
    receiver.start()
    settings = bridge_settings(
        bridge_sinks="opcua,mqtt,webhook", opcua_cameras=",".join(CAMERAS), mqtt_port=mosquitto.port,
        mqtt_username=mosquitto.user, mqtt_password=mosquitto.password, mqtt_prefix="line7",
        webhook_url=receiver.url, webhook_secret=SECRET,
    )
    mqtt = MqttWatcher(mosquitto, "line7")
    try:
        with running_bridge(settings) as bridge:
            plc = OpcUaWatcher(settings.opcua_endpoint, "plc", "opc-pass-1", CAMERAS, tmp_path / "plc")
            plc.start()
            assert plc.subscribed.wait(60) and plc.error is None, plc.error
            sent = produce_synthetic({"kafka_bootstrap": kafka_bootstrap, "topic_base": topic_base}, cameras=2,
                                     frames_per_camera=30, defects={"cam-2": (10, 20)})
            with running_worker(worker_settings(max_batch=8, results_topic=True)):
                assert wait_for_results(redis_client, redis_prefix, CAMERAS, sent.sent, timeout_s=90) == sent.sent
            expected = scored(redis_client, redis_prefix)
            keys = {(c, f) for c, ids in expected.items() for f in ids}
            assert wait_until(lambda: keys <= mqtt.keys() and keys <= receiver.keys()
                              and all(len(plc.seen[c]) >= len(expected[c]) for c in CAMERAS), 60)
            assert wait_until(lambda: bridge.readiness()[0], 10), bridge.readiness()
            refused = asyncio.run(_login(settings.opcua_endpoint, "wrong-password", tmp_path / "intruder"))
            ready, details = bridge.readiness()
            plc.close()
    finally:
        mqtt.close()
        receiver.stop()
    # OPC UA: the subscribed client saw every verdict, once, in each camera's order
    for camera in CAMERAS:
        assert plc.seen[camera] == expected[camera]
    assert "BadUserAccessDenied" in refused, refused
    assert "wrong password" in details["sinks"]["opcua"]["opcua_last_refused_login"] and ready
    # MQTT: one QoS 1 message per verdict on <prefix>/<camera>/verdict, payload = the contract's JSON
    for topic, payload, _ in mqtt.messages:
        v = FrameVerdict.from_json(json.dumps(payload).encode())
        assert topic == f"line7/{v.camera}/verdict"
    assert len(mqtt.messages) == sent.sent
    late = MqttWatcher(mosquitto, "line7", persistent=False)  # a subscriber arriving now gets the retained last verdicts
    try:
        assert wait_until(lambda: len(late.messages) == 2, 10)
    finally:
        late.close()
    assert {(m["camera"], m["frame_id"]) for _, m, retained in late.messages if retained} == {(c, expected[c][-1]) for c in CAMERAS}
    # Webhook: every verdict at least once, signed (the receiver verified each), with the idempotency key
    assert receiver.bad_signatures == 0
    assert all(key == f"{d['camera']}/{d['frame_id']}" for key, d in receiver.received)
    ng = {d["frame_id"] for _, d in receiver.received if d["verdict"] == "NG"}
    assert ng and ng <= set(expected["cam-2"]) | set(expected["cam-1"])


async def _login(endpoint: str, password: str, folder) -> str:
    client = await secure_client(endpoint, "plc", password, folder)
    try:
        await client.connect()
    except Exception as exc:  # noqa: BLE001 - asyncua raises its own status errors; the test reads the name
        return f"{type(exc).__name__}: {exc}"
    await client.disconnect()
    return "connected"


@pytest.mark.integration
@pytest.mark.slow
def test_a_sink_stopped_for_20_s_misses_nothing(kafka_bootstrap, topic_base, redis_prefix, redis_client, worker_settings,
                                                bridge_settings, mosquitto) -> None:
    receiver = WebhookReceiver(SECRET.encode())
    receiver.start()
    settings = bridge_settings(
        bridge_sinks="mqtt,webhook", mqtt_port=mosquitto.port, mqtt_username=mosquitto.user,
        mqtt_password=mosquitto.password, webhook_url=receiver.url, webhook_secret=SECRET, webhook_timeout_s=2,
    )
    mqtt = MqttWatcher(mosquitto, "linewatch")
    produced: dict = {}
    try:
        with running_bridge(settings) as bridge, running_worker(worker_settings(max_batch=8, results_topic=True)):
            producer = threading.Thread(target=lambda: produced.update(sent=produce_synthetic(
                {"kafka_bootstrap": kafka_bootstrap, "topic_base": topic_base}, cameras=2, frames_per_camera=120, fps=4,
                timeout_s=90)))
            producer.start()
            assert wait_until(lambda: len(receiver.keys()) >= 20 and len(mqtt.keys()) >= 20, 30)
            mosquitto.stop()
            receiver.stop()
            stopped_at = len(receiver.keys())
            assert wait_until(lambda: set(bridge.readiness()[1]["down"]) == {"mqtt", "webhook"}, 10), bridge.readiness()
            time.sleep(20)
            assert len(receiver.keys()) == stopped_at  # nothing could arrive meanwhile
            mosquitto.start()
            receiver.start()
            producer.join(timeout=90)
            sent = produced["sent"]
            assert wait_for_results(redis_client, redis_prefix, CAMERAS, sent.sent, timeout_s=60) == sent.sent
            expected = {(c, f) for c, ids in scored(redis_client, redis_prefix).items() for f in ids}
            assert wait_until(lambda: expected <= mqtt.keys() and expected <= receiver.keys(), 60), (
                len(expected - mqtt.keys()), len(expected - receiver.keys()))
            assert wait_until(lambda: bridge.readiness()[0], 10), bridge.readiness()
    finally:
        mqtt.close()
        receiver.stop()
    assert receiver.bad_signatures == 0
