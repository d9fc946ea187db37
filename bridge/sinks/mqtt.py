"""MQTT sink (paho-mqtt 2.x): QoS 1, one topic per camera, the last verdict retained.

    <prefix>/<camera>/verdict   every result, retained (a subscriber gets the last one at once)
    <prefix>/<camera>/alert     every alert, not retained

The payload is the record's JSON unchanged (FrameVerdict or Alert of linewatch/contract.py); its
camera and frame_id are the idempotency key. A window is acknowledged when the broker has sent
a PUBACK for every message of it; while not connected nothing is published (the backlog stays in
Kafka). Paho re-sends unacknowledged messages after a reconnect, so a subscriber may see a
message twice: at least once.
"""

from __future__ import annotations

import threading
import time

import paho.mqtt.client as mqtt
import structlog

from bridge.records import KIND_RESULT, Envelope, SinkDown
from bridge.settings import BridgeSettings

log = structlog.get_logger(__name__)


def topic_for(prefix: str, env: Envelope) -> str:
    return f"{prefix}/{env.camera}/{'verdict' if env.kind == KIND_RESULT else 'alert'}"


class MqttSink:
    name = "mqtt"

    def __init__(self, s: BridgeSettings) -> None:
        self.s = s
        self._connected = threading.Event()
        self._reason = "connecting"
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=s.mqtt_client_id, clean_session=True)
        if s.mqtt_username:
            client.username_pw_set(s.mqtt_username, s.mqtt_password.get_secret_value() if s.mqtt_password else None)
        if s.mqtt_tls:
            client.tls_set(ca_certs=s.mqtt_ca_file)
        client.max_inflight_messages_set(s.bridge_window)
        client.reconnect_delay_set(1, max(1, int(s.bridge_retry_max_s)))
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        self.client = client

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: object, reason: object, props: object) -> None:
        if getattr(reason, "is_failure", False):
            self._reason = f"broker {self.s.mqtt_host}:{self.s.mqtt_port} refused the connection: {reason}"
            self._connected.clear()
            log.warning("mqtt connection refused", reason=str(reason), user=self.s.mqtt_username)
            return
        self._reason = ""
        self._connected.set()
        log.info("mqtt connected", host=self.s.mqtt_host, port=self.s.mqtt_port)

    def _on_disconnect(self, client: mqtt.Client, userdata: object, flags: object, reason: object, props: object) -> None:
        if self._connected.is_set():
            log.warning("mqtt disconnected", reason=str(reason))
        self._connected.clear()
        if not self._reason or self._reason == "connecting":
            self._reason = f"disconnected from {self.s.mqtt_host}:{self.s.mqtt_port}: {reason}"

    def start(self) -> None:
        self.client.connect_async(self.s.mqtt_host, self.s.mqtt_port, keepalive=15)
        self.client.loop_start()  # paho's network thread; it reconnects by itself with back-off

    def state(self) -> tuple[bool, str]:
        return (True, "") if self._connected.is_set() else (False, f"mqtt: {self._reason}")

    def deliver(self, batch: list[Envelope]) -> list[None | SinkDown]:
        if not self._connected.is_set():
            return [SinkDown(f"mqtt: {self._reason}")] * len(batch)
        infos = [
            self.client.publish(topic_for(self.s.mqtt_prefix, env), env.body, qos=1, retain=env.kind == KIND_RESULT)
            for env in batch
        ]
        deadline = time.monotonic() + self.s.mqtt_ack_timeout_s
        outcomes: list[None | SinkDown] = []
        for info in infos:
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                outcomes.append(SinkDown(f"mqtt: publish not sent ({mqtt.error_string(info.rc)})"))
                continue
            try:
                info.wait_for_publish(max(0.0, deadline - time.monotonic()))
            except (RuntimeError, ValueError) as exc:  # paho: the message could not be queued / connection lost
                outcomes.append(SinkDown(f"mqtt: {exc}"))
                continue
            outcomes.append(None if info.is_published() else SinkDown(f"mqtt: no PUBACK within {self.s.mqtt_ack_timeout_s} s"))
        return outcomes

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
