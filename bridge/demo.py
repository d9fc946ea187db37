"""The demo's bridge (`linewatch-demo --bridge`): OPC UA and MQTT from the demo's results topic.

MQTT goes to the broker `scripts/mosquitto.sh start` runs (127.0.0.1:$LW_MQTT_PORT, 18830, user
linewatch, password in .run/mosquitto/password); the OPC UA server listens on 127.0.0.1:4840 with
user `plc` and a password made once into .run/bridge/opcua-password.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from bridge.app import Bridge
from bridge.settings import BridgeSettings
from linewatch.errors import ServiceUnavailable

RUN = Path(os.environ.get("LW_RUN_DIR", ".run"))


def _opcua_password() -> str:
    path = RUN / "bridge" / "opcua-password"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(12))
        path.chmod(0o600)
    return path.read_text().strip()


def start_demo_bridge(kafka: dict[str, Any], cameras: list[str]) -> tuple[Bridge, list[str]]:
    """The running bridge and the lines that tell a user how to connect."""
    mqtt_password = RUN / "mosquitto" / "password"
    if not mqtt_password.is_file():
        raise ServiceUnavailable("no MQTT broker: run  bash scripts/mosquitto.sh start  (make demo-bridge does)")
    port = int(os.environ.get("LW_MQTT_PORT", "18830"))
    settings = BridgeSettings(
        **kafka, bridge_sinks="opcua,mqtt", bridge_group_id="linewatch-demo-bridge", bridge_http_port=0,
        opcua_password=_opcua_password(), opcua_cameras=",".join(cameras), opcua_cert_dir=RUN / "bridge" / "opcua",
        mqtt_port=port, mqtt_username="linewatch", mqtt_password=mqtt_password.read_text().strip(),
    )
    bridge = Bridge(settings)
    bridge.start()
    bridge.wait_assigned(30)  # a new group starts at the topic's end: join before the cameras do
    return bridge, [
        f"bridge: OPC UA {settings.opcua_endpoint} (Basic256Sha256 SignAndEncrypt, user plc, password in "
        f"{RUN}/bridge/opcua-password), nodes Objects/Linewatch/Cameras/<camera>/LastVerdict ...",
        f"bridge: MQTT 127.0.0.1:{port} topics {settings.mqtt_prefix}/<camera>/verdict (QoS 1, retained); try: "
        f"mosquitto_sub -p {port} -u linewatch -P \"$(cat {mqtt_password})\" -v -t '{settings.mqtt_prefix}/+/verdict'",
    ]
