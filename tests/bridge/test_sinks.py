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
from tests.bridge.helpers import (
    MqttWatcher, OpcUaWatcher, VerdictStream, WebhookReceiver, running_bridge, secure_client, wait_until,
)
from tests.bridge.plc import PlcServer
from tests.worker.helpers import history, running_worker, wait_for_results

CAMERAS = ["cam-1", "cam-2"]
SECRET = "hook-secret-1"


def history_of(redis_client, prefix: str, camera: str) -> list[dict]:
    return sorted(history(redis_client, prefix, camera), key=lambda h: int(h["seq"]))


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
    plc_server = PlcServer(tmp_path / "plc-server", ["cam-1", "Station2"])  # the PLC's own server: client mode writes there
    plc_server.start()
    settings = bridge_settings(
        bridge_sinks="opcua,opcua_client,mqtt,webhook", opcua_cameras=",".join(CAMERAS), mqtt_port=mosquitto.port,
        mqtt_username=mosquitto.user, mqtt_password=mosquitto.password, mqtt_prefix="line7",
        webhook_url=receiver.url, webhook_secret=SECRET, opcua_client_url=plc_server.url, opcua_client_username="bridge",
        opcua_client_password="plc-pass-1", opcua_client_cert_dir=tmp_path / "bridge-client",
        opcua_client_camera_nodes={"cam-2": "Station2"}, opcua_client_variables="LastVerdict,IsNg,Score,FrameId,Seq,ResultCounter",
    )
    mqtt = MqttWatcher(mosquitto, "line7")
    stations = {"cam-1": "cam-1", "cam-2": "Station2"}
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
                              and all(len(plc.seen[c]) >= len(expected[c]) for c in CAMERAS)
                              and all(len(plc_server.frames(stations[c])) >= len(expected[c]) for c in CAMERAS), 60)
            assert wait_until(lambda: bridge.readiness()[0], 10), bridge.readiness()
            refused = asyncio.run(_login(settings.opcua_endpoint, "wrong-password", tmp_path / "intruder"))
            ready, details = bridge.readiness()
            plc.close()
    finally:
        mqtt.close()
        receiver.stop()
        plc_server.close()
    # OPC UA: the subscribed client saw every verdict, once, in each camera's order
    for camera in CAMERAS:
        assert plc.seen[camera] == expected[camera]
    # OPC UA client mode: the PLC's own server took every verdict in order, the handshake counting 1, 2, 3 ...
    last = {camera: history_of(redis_client, redis_prefix, camera)[-1] for camera in CAMERAS}
    for camera, station in stations.items():
        assert plc_server.frames(station) == expected[camera]
        assert plc_server.counters(station) == list(range(1, len(expected[camera]) + 1))
        values = plc_server.values[station]
        verdict = "NG" if last[camera]["anomalous"] == "1" else "OK"
        assert (values["FrameId"], values["Seq"], values["LastVerdict"], values["IsNg"]) == (
            expected[camera][-1], int(last[camera]["seq"]), verdict, verdict == "NG")
        assert abs(values["Score"] - float(last[camera]["score"])) < 1e-6  # a Float (S7 Real) node
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


def dedupe_repeats(frames: list[str]) -> list[str]:
    """The frame ids with immediate repeats dropped: a verdict written again right after a lost answer
    (same FrameId, the counter + 1) is the redelivery docs/integrations.md tells a PLC to expect."""
    return [f for i, f in enumerate(frames) if i == 0 or frames[i - 1] != f]


async def _read_camera(endpoint: str, folder, camera: str) -> dict:
    client = await secure_client(endpoint, "plc", "opc-pass-1", folder)
    async with client:
        ns = await client.get_namespace_index("urn:linewatch:bridge")
        names = ("ResultCounter", "OkCount", "NgCount", "FrameId", "LastVerdict", "Seq")
        values = await client.read_values([client.get_node(f"ns={ns};s={camera}.{n}") for n in names])
    return dict(zip(names, values))


def committed_everything(kafka_bootstrap: str, group: str, topic: str) -> bool:
    """Kafka's view: the group's committed offsets are at the end of every partition of the topic."""
    from kafka import KafkaConsumer, TopicPartition
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    consumer = KafkaConsumer(bootstrap_servers=kafka_bootstrap)
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        ends = consumer.end_offsets(parts)
        committed = {tp: meta.offset for tp, meta in admin.list_group_offsets(group)[group].items()}
        return bool(parts) and all(committed.get(tp, 0) == end for tp, end in ends.items())
    finally:
        consumer.close()
        admin.close()


@pytest.mark.integration
@pytest.mark.slow
def test_opcua_client_away_and_plc_server_down_for_20_s_miss_nothing(tmp_path, kafka_bootstrap, topic_base, bridge_settings) -> None:
    """Server mode: the subscribed client leaves for 20 s; client mode: the PLC's own server is down
    for 20 s. Both mid-stream, at the same time, on one stream of verdicts."""
    plc_server = PlcServer(tmp_path / "plc-server", CAMERAS)
    plc_server.start()
    settings = bridge_settings(
        bridge_sinks="opcua,opcua_client", opcua_cameras=",".join(CAMERAS), opcua_client_url=plc_server.url,
        opcua_client_username="bridge", opcua_client_password="plc-pass-1", opcua_client_cert_dir=tmp_path / "bridge-client",
    )
    stream = VerdictStream(kafka_bootstrap, f"{topic_base}.results", CAMERAS, per_camera=160, fps=5)  # 32 s
    try:
        with running_bridge(settings) as bridge:
            client = OpcUaWatcher(settings.opcua_endpoint, "plc", "opc-pass-1", CAMERAS, tmp_path / "client")
            client.start()
            assert client.subscribed.wait(60) and client.error is None, client.error
            stream.start()
            assert wait_until(lambda: all(len(plc_server.frames(c)) >= 15 and len(client.seen[c]) >= 15 for c in CAMERAS), 30)
            plc_server.stop()
            client.close()
            assert wait_until(lambda: bridge.readiness()[1]["down"] == ["opcua_client"], 10), bridge.readiness()
            reason = bridge.readiness()[1]["sinks"]["opcua_client"]["reason"]
            assert plc_server.url in reason, reason  # /readyz names the PLC's server
            at_stop = {c: len(plc_server.frames(c)) for c in CAMERAS}
            time.sleep(20)
            assert {c: len(plc_server.frames(c)) for c in CAMERAS} == at_stop  # it was down: nothing arrived
            assert bridge.readiness()[1]["down"] == ["opcua_client"]
            plc_server.start()
            back = OpcUaWatcher(settings.opcua_endpoint, "plc", "opc-pass-1", CAMERAS, tmp_path / "client")
            back.start()
            assert back.subscribed.wait(60) and back.error is None, back.error
            stream.join(timeout=60)
            assert stream.error is None and not stream.is_alive(), stream.error
            expected = {c: stream.frame_ids(c) for c in CAMERAS}
            assert wait_until(lambda: all(dedupe_repeats(plc_server.frames(c)) == expected[c] for c in CAMERAS), 60), (
                {c: len(plc_server.frames(c)) for c in CAMERAS})
            assert wait_until(lambda: committed_everything(kafka_bootstrap, f"{settings.bridge_group_id}.opcua", f"{topic_base}.results"), 30)
            assert wait_until(lambda: bridge.readiness()[0], 15), bridge.readiness()
            shown = {c: asyncio.run(_read_camera(settings.opcua_endpoint, tmp_path / "reader", c)) for c in CAMERAS}
            assert wait_until(lambda: all(back.seen[c][-1:] == expected[c][-1:] for c in CAMERAS), 10)
            back.close()
    finally:
        plc_server.close()
    for camera in CAMERAS:
        sent = stream.sent[camera]
        # Client mode: every verdict reached the PLC in order across its outage; the handshake went on from
        # the PLC's own counter, one step per write (a verdict written twice counts twice, same FrameId)
        counters = plc_server.counters(camera)
        assert counters == list(range(1, len(counters) + 1))
        assert plc_server.values[camera]["FrameId"] == sent[-1].frame_id
        # Server mode: what the client reads after coming back is the whole run, counted once per verdict
        ng = sum(v.verdict == "NG" for v in sent)
        assert shown[camera] == {"ResultCounter": len(sent), "OkCount": len(sent) - ng, "NgCount": ng,
                                 "FrameId": sent[-1].frame_id, "LastVerdict": sent[-1].verdict, "Seq": sent[-1].seq}
        # ... and what it saw while subscribed, before and after, was in the camera's order
        order = {f: i for i, f in enumerate(expected[camera])}
        for seen in (client.seen[camera], back.seen[camera]):
            assert [order[f] for f in seen] == sorted(order[f] for f in seen) and len(set(seen)) == len(seen)
