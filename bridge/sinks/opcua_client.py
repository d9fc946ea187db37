"""OPC UA client sink (asyncua): writes each verdict into nodes of the PLC's own OPC UA server.

Per camera the PLC holds one node per variable, at LW_OPCUA_CLIENT_NODE_TEMPLATE
(`ns={ns};s=Linewatch.{camera}.{var}`). Per verdict, in the camera's order:

    1. one Write request with the values (LastVerdict, Score, FrameId, Seq ... as configured)
    2. one Write request with ResultCounter + 1: the handshake; the PLC reads the values when it changes

A verdict is acknowledged (and its offset may be committed) only after the PLC's server answered
Good to both. Each node's data type is read once per connection and every value is written as
that type (an S7 DInt takes Seq, a Real takes Score, a UInt counter wraps at 65535). The counter
continues from the value the PLC holds when the bridge (re)connects.

The connection is kept by one task: connect, on loss reconnect with the project's back-off
(linewatch/backoff.py) up to LW_BRIDGE_RETRY_MAX_S; while it is down every delivery is SinkDown (the
backlog stays in Kafka) and `state()` names the PLC's endpoint and why (unreachable, login refused).
A write the PLC refuses for the record itself (no such node, wrong type, not writable) is Refused:
retried, then dead-lettered with the reason. A verdict written once in this run is not written
again (a redelivery after a restart is: same FrameId, counter + 1).
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections import OrderedDict
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any

import structlog
from asyncua import Client, Node, ua
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
from cryptography.x509.oid import ExtendedKeyUsageOID

from bridge import metrics
from bridge.records import KIND_RESULT, Envelope, Refused, SinkDown
from bridge.settings import BridgeSettings
from linewatch.backoff import Backoff
from linewatch.errors import ConfigError
from linewatch.logs import RateLimitedLog

log = structlog.get_logger(__name__)
Outcome = None | SinkDown | Refused

# Status codes that refuse this write, not the connection: the record is at fault (or the PLC's layout)
_REFUSALS = {"BadNodeIdUnknown", "BadNodeIdInvalid", "BadTypeMismatch", "BadOutOfRange", "BadAttributeIdInvalid", "BadIndexRangeInvalid"}
# ... and codes that deny the bridge's writes as such: a PLC setting to fix, held like a PLC that is down
_DENIED = {"BadUserAccessDenied", "BadNotWritable", "BadWriteNotSupported"}
_LOGIN_REFUSED = {"BadUserAccessDenied", "BadIdentityTokenInvalid", "BadIdentityTokenRejected", "BadCertificateUntrusted",
                  "BadSecurityChecksFailed", "BadCertificateInvalid"}
_INTS = {
    ua.VariantType.SByte: (-(2**7), 2**7 - 1), ua.VariantType.Byte: (0, 2**8 - 1),
    ua.VariantType.Int16: (-(2**15), 2**15 - 1), ua.VariantType.UInt16: (0, 2**16 - 1),
    ua.VariantType.Int32: (-(2**31), 2**31 - 1), ua.VariantType.UInt32: (0, 2**32 - 1),
    ua.VariantType.Int64: (-(2**63), 2**63 - 1), ua.VariantType.UInt64: (0, 2**64 - 1),
}
_FLOATS = {ua.VariantType.Float, ua.VariantType.Double}


def verdict_values(env: Envelope, names: list[str]) -> dict[str, Any]:
    """The verdict's value of each configured variable except the counter."""
    d = env.data
    every = {
        "LastVerdict": d["verdict"], "IsNg": d["verdict"] == "NG", "Score": float(d["score"]),
        "Threshold": float(d["threshold"]), "FrameId": env.frame_id, "Seq": int(d["seq"]), "Part": str(d.get("part", "")),
        "ModelVersion": f"{d['model_name']}@{d['model_version']}",
    }
    return {name: every[name] for name in names if name != "ResultCounter"}


def as_type(value: Any, vtype: ua.VariantType, name: str) -> ua.DataValue:
    """`value` as the PLC node's own data type; ValueError when it cannot be (a wiring mistake)."""
    if vtype in _INTS and not isinstance(value, (str, float)):
        low, high = _INTS[vtype]
        if not low <= int(value) <= high:
            raise ValueError(f"{name}={value} does not fit the PLC's {vtype.name}")
        converted: Any = int(value)
    elif vtype in _FLOATS and isinstance(value, (int, float)) and not isinstance(value, bool):
        converted = float(value)
    elif vtype == ua.VariantType.String and isinstance(value, str):
        converted = value
    elif vtype == ua.VariantType.Boolean and isinstance(value, bool):
        converted = value
    else:
        raise ValueError(f"{name} ({type(value).__name__}) cannot be written to a node of type {vtype.name}")
    # No timestamps and no status: many PLC servers (S7-1500 among them) refuse writes carrying them
    return ua.DataValue(ua.Variant(converted, vtype), StatusCode=None)


def next_counter(current: int, vtype: ua.VariantType) -> int:
    """The handshake's next value: +1, wrapping to 0 past the node type's largest value."""
    high = _INTS.get(vtype, (0, 2**32 - 1))[1]
    return 0 if current >= high else current + 1


class _Camera:
    """One camera's nodes on the PLC for the current connection, with their types and the counter."""

    def __init__(self, values: dict[str, tuple[Node, ua.VariantType]], counter: tuple[Node, ua.VariantType] | None, count: int) -> None:
        self.values, self.counter, self.count = values, counter, count
        self.lock = asyncio.Lock()  # one verdict at a time per camera: the PLC sees them in order


class OpcUaClientSink:
    name = "opcua_client"

    def __init__(self, s: BridgeSettings) -> None:
        if not s.opcua_client_url:
            raise ConfigError("the opcua_client sink needs LW_OPCUA_CLIENT_URL (the PLC's OPC UA server)")
        if s.opcua_client_username and s.opcua_client_password is None:
            raise ConfigError("LW_OPCUA_CLIENT_USERNAME is set without LW_OPCUA_CLIENT_PASSWORD")
        self.s, self.url = s, s.opcua_client_url
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="opcua-client", daemon=True)
        self._client: Client | None = None
        self._reason = "connecting"
        self._lost: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._cameras: dict[str, _Camera] = {}
        self._ns = 0
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._log = RateLimitedLog(interval_s=10.0)

    # -- life cycle -------------------------------------------------------------------------------
    def start(self) -> None:
        """Starts the connection task; the PLC may be down now (state() says so until it answers)."""
        self._thread.start()
        self._task = asyncio.run_coroutine_threadsafe(self._start_task(), self.loop).result(timeout=10)

    async def _start_task(self) -> asyncio.Task:
        self._lost = asyncio.Event()
        return asyncio.get_running_loop().create_task(self._keep_connected())

    def close(self) -> None:
        async def _close() -> None:
            if self._task is not None:
                self._task.cancel()
            if self._client is not None:
                await self._disconnect(self._client)

        try:
            asyncio.run_coroutine_threadsafe(_close(), self.loop).result(timeout=10)
        except FutureTimeout:
            log.warning("opcua client did not close within 10 s", plc=self.url)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)

    def state(self) -> tuple[bool, str]:
        if self._client is None:
            return False, f"opcua_client: PLC server {self.url}: {self._reason}"
        return True, ""

    def details(self) -> dict[str, str]:
        return {"plc": self.url}

    # -- the connection ---------------------------------------------------------------------------
    async def _keep_connected(self) -> None:
        backoff = Backoff(0.5, max(0.5, self.s.bridge_retry_max_s))
        assert self._lost is not None
        while True:
            try:
                client = await self._connect()
            except (ua.UaError, OSError, asyncio.TimeoutError, ValueError) as exc:  # down, refused, or laid out otherwise
                self._reason = self._why(exc)
                metrics.PLC_CONNECTS.labels("failed").inc()
                suppressed = self._log.allow("connect")
                if suppressed is not None:
                    log.warning("opcua client cannot connect to the PLC", plc=self.url, reason=self._reason, suppressed=suppressed)
                await asyncio.sleep(backoff.next())
                continue
            backoff.reset()
            self._lost.clear()
            self._cameras = {}
            self._client, self._reason = client, ""
            metrics.PLC_CONNECTS.labels("connected").inc()
            log.info("opcua client connected to the PLC", plc=self.url, security=self.s.opcua_client_security)
            await self._lost.wait()
            self._client = None
            log.warning("opcua client lost the PLC; reconnecting", plc=self.url, reason=self._reason)
            await self._disconnect(client)

    async def _connect(self) -> Client:
        s = self.s
        client = Client(self.url, timeout=s.opcua_client_timeout_s, watchdog_intervall=1.0)
        client.application_uri = f"urn:{socket.gethostname()}:linewatch:bridge-client"
        client.name = client.description = "linewatch bridge"
        if s.opcua_client_username:
            client.set_user(s.opcua_client_username)
            client.set_password(s.opcua_client_password.get_secret_value() if s.opcua_client_password else "")
        if s.opcua_client_security != "None":
            key, cert = await self._certificate(client.application_uri)
            mode = ua.MessageSecurityMode.SignAndEncrypt if s.opcua_client_security.endswith("SignAndEncrypt") else ua.MessageSecurityMode.Sign
            await asyncio.wait_for(client.set_security(SecurityPolicyBasic256Sha256, str(cert), str(key), mode=mode), s.opcua_client_timeout_s * 2)
        client.connection_lost_callback = self._on_lost
        await asyncio.wait_for(client.connect(), s.opcua_client_timeout_s * 2)
        try:
            if "{ns}" in s.opcua_client_node_template:
                self._ns = await client.get_namespace_index(s.opcua_client_namespace)
        except (ua.UaError, OSError, asyncio.TimeoutError, ValueError):
            await self._disconnect(client)
            raise
        return client

    async def _certificate(self, uri: str) -> tuple[Path, Path]:
        folder = Path(self.s.opcua_client_cert_dir)
        folder.mkdir(parents=True, exist_ok=True)
        key, cert = folder / "client-key.pem", folder / "client-cert.der"
        await setup_self_signed_certificate(key, cert, uri, socket.gethostname(), [ExtendedKeyUsageOID.CLIENT_AUTH],
                                            {"commonName": "linewatch-bridge-client", "organizationName": "linewatch"})
        key.chmod(0o600)
        return key, cert

    def _why(self, exc: BaseException) -> str:
        name = type(exc).__name__
        if name in _LOGIN_REFUSED:
            user = self.s.opcua_client_username or "anonymous"
            return f"refused the login as {user!r}: {name} (wrong user name or password, or the PLC does not trust the bridge's certificate)"
        if isinstance(exc, ValueError) and self.s.opcua_client_namespace in str(exc):
            return f"has no namespace {self.s.opcua_client_namespace!r} (LW_OPCUA_CLIENT_NAMESPACE)"
        if isinstance(exc, (OSError, asyncio.TimeoutError)):
            return f"unreachable: {name}: {exc}".rstrip(": ")
        return f"connect failed: {name}: {exc}"[:300]

    async def _on_lost(self, exc: Exception) -> None:
        self._lose(f"connection lost: {type(exc).__name__}: {exc}")

    def _lose(self, reason: str) -> None:
        if self._client is not None and self._lost is not None and not self._lost.is_set():
            self._reason = reason[:300]
            self._client = None
            self._lost.set()

    @staticmethod
    async def _disconnect(client: Client) -> None:
        try:
            await asyncio.wait_for(client.disconnect(), 3)
        except (ua.UaError, OSError, asyncio.TimeoutError, ConnectionError):  # already gone: nothing to close
            client.disconnect_socket()

    # -- delivery ---------------------------------------------------------------------------------
    def deliver(self, batch: list[Envelope]) -> list[Outcome]:
        if self._client is None:
            return [SinkDown(self.state()[1])] * len(batch)
        future = asyncio.run_coroutine_threadsafe(self._write(batch), self.loop)
        try:
            return future.result(timeout=self.s.opcua_client_timeout_s * 3 + 5)
        except FutureTimeout:
            future.cancel()
            self.loop.call_soon_threadsafe(self._lose, "writes timed out")
            return [SinkDown(f"opcua_client: PLC server {self.url}: writes timed out")] * len(batch)

    async def _write(self, batch: list[Envelope]) -> list[Outcome]:
        """Cameras in parallel, each camera's verdicts in order; one outcome per envelope."""
        by_camera: dict[str, list[int]] = {}
        for i, env in enumerate(batch):
            by_camera.setdefault(env.camera, []).append(i)
        outcomes: list[Outcome] = [None] * len(batch)
        await asyncio.gather(*(self._write_camera(cam, [batch[i] for i in idx], idx, outcomes) for cam, idx in by_camera.items()))
        return outcomes

    async def _write_camera(self, camera: str, envs: list[Envelope], idx: list[int], outcomes: list[Outcome]) -> None:
        client = self._client
        for n, (i, env) in enumerate(zip(idx, envs)):
            if env.kind != KIND_RESULT or env.key in self._seen:
                continue  # alerts have no node; a verdict written in this run is not written twice
            if client is None or self._client is not client:
                down = SinkDown(self.state()[1])
                for j in idx[n:]:
                    outcomes[j] = down
                return
            try:
                cam = await self._camera(client, camera)
                async with cam.lock:
                    await self._write_one(client, cam, env)
            except ua.UaStatusCodeError as exc:
                code = type(exc).__name__
                if code in _REFUSALS:
                    outcomes[i] = Refused(f"PLC {self.url} refused a write for camera {camera}: {code} ({exc})"[:400])
                    continue
                if code not in _DENIED:
                    self._lose(f"write failed: {code}")
                    client = None
                down = SinkDown(f"opcua_client: PLC server {self.url} {'denied' if code in _DENIED else 'failed'} a write: {code}")
                for j in idx[n:]:
                    outcomes[j] = down
                return
            except ValueError as exc:  # a node of a type the value cannot take
                outcomes[i] = Refused(f"PLC {self.url}, camera {camera}: {exc}")
            except (ua.UaError, OSError, asyncio.TimeoutError, ConnectionError) as exc:  # the connection went
                self._lose(f"write failed: {type(exc).__name__}: {exc}")
                down = SinkDown(f"opcua_client: PLC server {self.url}: write failed: {type(exc).__name__}")
                for j in idx[n:]:
                    outcomes[j] = down
                return

    async def _camera(self, client: Client, camera: str) -> _Camera:
        """The camera's nodes and their data types (read once per connection), the PLC's counter value."""
        cam = self._cameras.get(camera)
        if cam is not None:
            return cam
        s = self.s
        mapped = s.opcua_client_camera_nodes.get(camera, camera)
        nodes = {var: client.get_node(s.opcua_client_node_template.format(ns=self._ns, camera=mapped, var=var)) for var in s.plc_variables}
        types = await asyncio.gather(*(node.read_data_type_as_variant_type() for node in nodes.values()))
        typed = {var: (node, vtype) for (var, node), vtype in zip(nodes.items(), types)}
        counter = typed.pop("ResultCounter", None)
        count = 0
        if counter is not None:
            count = int(await counter[0].read_value() or 0)
        cam = self._cameras[camera] = _Camera(typed, counter, count)
        return cam

    async def _write_one(self, client: Client, cam: _Camera, env: Envelope) -> None:
        values = verdict_values(env, list(cam.values))
        if values:
            nodes = [cam.values[name][0] for name in values]
            data = [as_type(value, cam.values[name][1], name) for name, value in values.items()]
            await self._write_checked(client, nodes, data)
        if cam.counter is not None:
            node, vtype = cam.counter
            count = next_counter(cam.count, vtype)
            # Its own request, after the values answered Good: the PLC that sees it change reads a whole verdict
            await self._write_checked(client, [node], [as_type(count, vtype, "ResultCounter")])
            cam.count = count
        self._seen[env.key] = None
        if len(self._seen) > 20000:
            self._seen.popitem(last=False)

    @staticmethod
    async def _write_checked(client: Client, nodes: list[Node], data: list[ua.DataValue]) -> None:
        results = await client.uaclient.write_attributes([n.nodeid for n in nodes], data, ua.AttributeIds.Value)
        for result in results:
            result.check()
