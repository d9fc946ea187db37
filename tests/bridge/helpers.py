"""Real servers and clients for the bridge's tests: a private mosquitto, a signed-webhook receiver,
an MQTT subscriber and a subscribed OPC UA client, each stoppable mid-stream."""

from __future__ import annotations

import asyncio
import getpass
import json
import shutil
import socket
import subprocess
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import paho.mqtt.client as mqtt
from kafka import KafkaProducer

from bridge.app import Bridge
from bridge.settings import BridgeSettings
from bridge.signing import H_KEY, H_SIGNATURE, H_TIMESTAMP, verify
from linewatch.contract import FrameVerdict
from testkit.services import free_port

MOSQUITTO = "/usr/sbin/mosquitto"


def wait_until(check: Any, timeout_s: float, step_s: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(step_s)
    return bool(check())


class Mosquitto:
    """Debian's mosquitto on a private port with a password file; stop() and start() keep the port."""

    def __init__(self, folder: Path, user: str = "line", password: str = "s3cret-mqtt") -> None:
        if not shutil.which(MOSQUITTO) and not Path(MOSQUITTO).exists():
            raise RuntimeError("mosquitto is missing: bash scripts/mosquitto.sh install")
        self.folder, self.user, self.password, self.port = folder, user, password, free_port()
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mosquitto_passwd", "-b", "-c", str(folder / "passwd"), user, password], check=True, capture_output=True)
        (folder / "mosquitto.conf").write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous false\npassword_file {folder / 'passwd'}\n"
            f"persistence true\npersistence_location {folder}/\nlog_dest file {folder / 'mosquitto.log'}\n"
            f"user {getpass.getuser()}\n"  # as root it would switch to user mosquitto, who cannot read this folder
        )
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.folder / "mosquitto.conf")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert wait_until(self._listening, 10), f"mosquitto did not listen on {self.port}"

    def _listening(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
            return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


class MqttWatcher:
    """Subscribes to <prefix>/# with QoS 1 in a persistent session (what docs/integrations.md asks of
    a line's subscriber: messages published while it reconnects are kept for it) and keeps
    (topic, payload, retain) of every message."""

    def __init__(self, broker: Mosquitto, prefix: str, persistent: bool = True) -> None:
        self.messages: list[tuple[str, dict, bool]] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"watch-{free_port()}", clean_session=not persistent)
        self.client.username_pw_set(broker.user, broker.password)
        self.client.on_connect = lambda c, *_: c.subscribe(f"{prefix}/#", qos=1)
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(1, 1)
        self.client.connect(  "127.0.0.1", broker.port, keepalive=15)
        self.client.loop_start()

    def _on_message(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages.append((msg.topic, json.loads(msg.payload), bool(msg.retain)))

    def keys(self) -> set[tuple[str, str]]:
        with self.lock:
            return {(m["camera"], m["frame_id"]) for _, m, _ in self.messages}

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class WebhookReceiver:
    """An HTTP receiver that verifies every request's signature; stop() and start() keep the port."""

    def __init__(self, secret: bytes, refuse_camera: str = "") -> None:
        self.secret, self.refuse_camera, self.port = secret, refuse_camera, free_port()
        self.received: list[tuple[str, dict]] = []
        self.bad_signatures = 0
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if not verify(receiver.secret, self.headers.get(H_TIMESTAMP), self.headers.get(H_SIGNATURE), body):
                    with receiver.lock:
                        receiver.bad_signatures += 1
                    self.send_response(401)
                    self.end_headers()
                    return
                data = json.loads(body)
                if receiver.refuse_camera and data["camera"] == receiver.refuse_camera:
                    self.send_response(422)
                    self.end_headers()
                    self.wfile.write(b"camera not configured here")
                    return
                with receiver.lock:
                    receiver.received.append((self.headers[H_KEY], data))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def keys(self) -> set[tuple[str, str]]:
        with self.lock:
            return {(d["camera"], d["frame_id"]) for _, d in self.received}


class OpcUaWatcher:
    """An asyncua client (Basic256Sha256 SignAndEncrypt, user + password) subscribed to each camera's
    FrameId; keeps the values it was notified of, in order, per camera."""

    def __init__(self, endpoint: str, user: str, password: str, cameras: list[str], folder: Path) -> None:
        self.endpoint, self.user, self.password, self.cameras, self.folder = endpoint, user, password, cameras, folder
        self.seen: dict[str, list[str]] = {c: [] for c in cameras}
        self.error: BaseException | None = None
        self.subscribed = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    def start(self) -> None:
        self._thread.start()

    async def _main(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        try:
            client = await secure_client(self.endpoint, self.user, self.password, self.folder)
            async with client:
                ns = await client.get_namespace_index("urn:linewatch:bridge")
                sub = await client.create_subscription(20, self)
                from asyncua import ua

                nodes = [client.get_node(ua.NodeId(f"{c}.FrameId", ns)) for c in self.cameras]
                self._names = {n.nodeid: c for n, c in zip(nodes, self.cameras)}
                await sub.subscribe_data_change(nodes, queuesize=10000)
                self.subscribed.set()
                await self._stop.wait()
        except BaseException as exc:  # noqa: BLE001 - handed to the test, which fails with it
            self.error = exc
            self.subscribed.set()

    def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
        if val:
            self.seen[self._names[node.nodeid]].append(val)

    def close(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=15)


async def secure_client(endpoint: str, user: str, password: str, folder: Path) -> Any:
    """An asyncua client with its own self-signed certificate, Basic256Sha256 SignAndEncrypt."""
    from asyncua import Client
    from asyncua.crypto.cert_gen import setup_self_signed_certificate
    from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
    from cryptography.x509.oid import ExtendedKeyUsageOID

    folder.mkdir(parents=True, exist_ok=True)
    key, cert = folder / "client-key.pem", folder / "client-cert.der"
    uri = "urn:linewatch:test-client"
    await setup_self_signed_certificate(key, cert, uri, socket.gethostname(), [ExtendedKeyUsageOID.CLIENT_AUTH], {"commonName": "test-client"})
    client = Client(endpoint, timeout=10)
    client.application_uri = uri
    client.set_user(user)
    client.set_password(password)
    await client.set_security(SecurityPolicyBasic256Sha256, str(cert), str(key))
    return client


@contextmanager
def running_bridge(settings: BridgeSettings) -> Iterator[Bridge]:
    bridge = Bridge(settings)
    bridge.start()
    try:
        assert bridge.wait_assigned(60), "the bridge's consumers got no partitions within 60 s"
        yield bridge
    finally:
        bridge.stop()


class VerdictStream(threading.Thread):
    """Publishes synthetic verdicts (the worker's FrameVerdict records) to a results topic, keyed by
    camera, at a steady rate per camera; `sent[camera]` is each camera's verdicts in order."""

    def __init__(self, bootstrap: str, topic: str, cameras: list[str], per_camera: int, fps: float) -> None:
        super().__init__(name="verdict-stream", daemon=True)
        self.bootstrap, self.topic, self.cameras, self.per_camera, self.fps = bootstrap, topic, cameras, per_camera, fps
        self.sent: dict[str, list[FrameVerdict]] = {c: [] for c in cameras}
        self.error: BaseException | None = None

    def run(self) -> None:
        producer = KafkaProducer(bootstrap_servers=self.bootstrap, acks="all")
        try:
            start = time.monotonic()
            for seq in range(self.per_camera):
                time.sleep(max(0.0, start + seq / self.fps - time.monotonic()))
                for n, camera in enumerate(self.cameras):
                    score = ((seq * 7 + n) % 10) / 10 + 0.05  # about half NG
                    v = FrameVerdict(camera=camera, frame_id=f"{n}-{seq}", seq=seq, capture_ns=time.time_ns(),
                                     verdict="NG" if score >= 0.5 else "OK", score=score, threshold=0.5,
                                     model_name="synth", model_version="1", part=f"{camera}-{seq}")
                    producer.send(self.topic, key=camera.encode(), value=v.to_json()).get(timeout=30)
                    self.sent[camera].append(v)
        except BaseException as exc:  # noqa: BLE001 - handed to the test, which fails with it
            self.error = exc
        finally:
            producer.close()

    def frame_ids(self, camera: str) -> list[str]:
        return [v.frame_id for v in self.sent[camera]]
