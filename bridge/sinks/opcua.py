"""OPC UA sink (asyncua): a server the PLC connects to, one object per camera.

    Objects/Linewatch/Cameras/<camera>           node ids ns=<urn:linewatch:bridge>;s=<camera>.<Name>
        LastVerdict   String   "OK" / "NG"
        Score         Double   normalised score, [0, 1]
        Threshold     Double   threshold in force (NG when Score >= Threshold)
        FrameId       String   the frame's identity "<partition>-<offset>" (with the camera: the idempotency key)
        Seq           Int64    the camera's sequence number
        Part          String   the frame's part id (lw-part), "" when it has none
        ModelVersion  String   "<model>@<version>"
        ResultCounter UInt32   +1 per new verdict, written last: the PLC's handshake
        OkCount       UInt32   OK verdicts since the bridge started
        NgCount       UInt32   NG verdicts since the bridge started
        WorkerState   String   RUNNING while verdicts arrive, STALE after LW_BRIDGE_STALE_S without one

Security: Basic256Sha256 SignAndEncrypt only, user name and password required (anonymous and the
unencrypted endpoint only when allowed in settings). The server certificate is made into
LW_OPCUA_CERT_DIR when missing. A refused login is logged with the user name and counted.
A redelivered verdict (same camera and frame id as one of the last few thousand) is not counted twice.
"""

from __future__ import annotations

import asyncio
import hmac
import socket
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import structlog
from asyncua import Server, ua
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from asyncua.crypto.permission_rules import User, UserRole
from cryptography.x509.oid import ExtendedKeyUsageOID

from bridge import metrics
from bridge.records import KIND_RESULT, Envelope, SinkDown
from bridge.settings import BridgeSettings
from linewatch.errors import ConfigError
from linewatch.logs import RateLimitedLog

log = structlog.get_logger(__name__)

VARIABLES: dict[str, tuple[Any, ua.VariantType]] = {
    "LastVerdict": ("", ua.VariantType.String),
    "Score": (0.0, ua.VariantType.Double),
    "Threshold": (0.0, ua.VariantType.Double),
    "FrameId": ("", ua.VariantType.String),
    "Seq": (0, ua.VariantType.Int64),
    "Part": ("", ua.VariantType.String),
    "ModelVersion": ("", ua.VariantType.String),
    "ResultCounter": (0, ua.VariantType.UInt32),
    "OkCount": (0, ua.VariantType.UInt32),
    "NgCount": (0, ua.VariantType.UInt32),
    "WorkerState": ("UNKNOWN", ua.VariantType.String),
}


class _Users:
    """asyncua's user manager: one user name and password; refusals logged and kept for /readyz."""

    def __init__(self, username: str, password: str, anonymous: bool) -> None:
        self.username, self.password, self.anonymous = username, password.encode(), anonymous
        self.last_refusal = ""
        self._log = RateLimitedLog(interval_s=10.0)

    def get_user(self, iserver: Any, username: str | None = None, password: str | None = None, certificate: Any = None) -> User | None:
        if username is None and self.anonymous:
            return User(role=UserRole.User)
        if username == self.username and hmac.compare_digest((password or "").encode(), self.password):
            return User(role=UserRole.User, name=username)
        why = "unknown user" if username != self.username else "wrong password"
        self.last_refusal = f"refused a login as {username!r} ({why}) at {time.strftime('%H:%M:%S')}"
        metrics.LOGINS_REFUSED.inc()
        suppressed = self._log.allow("refused")
        if suppressed is not None:
            log.warning("opcua login refused", user=username, why=why, suppressed=suppressed)
        return None


class _Camera:
    def __init__(self, nodes: dict[str, Any]) -> None:
        self.nodes = nodes
        self.counter = self.ok = self.ng = 0
        self.last_ns = 0
        self.state = "UNKNOWN"


class OpcUaSink:
    name = "opcua"

    def __init__(self, s: BridgeSettings) -> None:
        if s.opcua_password is None and not s.opcua_allow_anonymous:
            raise ConfigError("the OPC UA sink needs LW_OPCUA_PASSWORD (or LW_OPCUA_ALLOW_ANONYMOUS=true)")
        self.s = s
        self.users = _Users(s.opcua_username, s.opcua_password.get_secret_value() if s.opcua_password else "", s.opcua_allow_anonymous)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="opcua", daemon=True)
        self._server: Server | None = None
        self._cameras: dict[str, _Camera] = {}
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._error = "starting"
        self._folder: Any = None
        self._ns = 0

    # -- life cycle -------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(timeout=60)
        self._error = ""

    async def _start(self) -> None:
        s = self.s
        cert_dir = Path(s.opcua_cert_dir)
        cert_dir.mkdir(parents=True, exist_ok=True)
        key, cert = cert_dir / "server-key.pem", cert_dir / "server-cert.der"
        host = socket.gethostname()
        app_uri = f"urn:{host}:linewatch:bridge"
        await setup_self_signed_certificate(
            key, cert, app_uri, host, [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
            {"commonName": "linewatch-bridge", "organizationName": "linewatch"},
        )
        key.chmod(0o600)
        server = Server(user_manager=self.users)
        await server.init()
        server.set_endpoint(s.opcua_endpoint)
        server.set_server_name("linewatch bridge")
        await server.set_application_uri(app_uri)
        policies = [ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt]
        if s.opcua_allow_insecure:
            policies.append(ua.SecurityPolicyType.NoSecurity)
        server.set_security_policy(policies)
        tokens = [ua.UserNameIdentityToken] + ([ua.AnonymousIdentityToken] if s.opcua_allow_anonymous else [])
        server.set_identity_tokens(tokens)
        await server.load_certificate(str(cert))
        await server.load_private_key(str(key))
        self._ns = await server.register_namespace(s.opcua_namespace)
        root = await server.nodes.objects.add_object(ua.NodeId("Linewatch", self._ns), ua.QualifiedName("Linewatch", self._ns))
        self._folder = await root.add_folder(ua.NodeId("Cameras", self._ns), ua.QualifiedName("Cameras", self._ns))
        for camera in (c.strip() for c in s.opcua_cameras.split(",")):
            if camera:
                await self._camera(camera)
        await server.start()
        self._server = server
        self._stale_task = self.loop.create_task(self._watch_stale())
        log.info("opcua server started", endpoint=s.opcua_endpoint, policies=[p.name for p in policies],
                 anonymous=s.opcua_allow_anonymous, certificate=str(cert))

    def close(self) -> None:
        if self._server is not None:
            self.loop.call_soon_threadsafe(self._stale_task.cancel)
            asyncio.run_coroutine_threadsafe(self._server.stop(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)

    def state(self) -> tuple[bool, str]:
        if self._error:
            return False, f"opcua: {self._error}"
        return True, ""

    def details(self) -> dict[str, str]:
        return {"opcua_last_refused_login": self.users.last_refusal} if self.users.last_refusal else {}

    # -- delivery ---------------------------------------------------------------------------------
    def deliver(self, batch: list[Envelope]) -> list[None | SinkDown]:
        try:
            asyncio.run_coroutine_threadsafe(self._write(batch), self.loop).result(timeout=30)
        except (TimeoutError, ua.UaError, OSError) as exc:  # the address space refused a write
            self._error = f"writing values failed: {exc}"
            return [SinkDown(f"opcua: {self._error}")] * len(batch)
        self._error = ""
        return [None] * len(batch)

    async def _camera(self, name: str) -> _Camera:
        cam = self._cameras.get(name)
        if cam is None:
            obj = await self._folder.add_object(ua.NodeId(name, self._ns), ua.QualifiedName(name, self._ns))
            nodes = {}
            for var, (initial, vtype) in VARIABLES.items():
                nodes[var] = await obj.add_variable(ua.NodeId(f"{name}.{var}", self._ns), ua.QualifiedName(var, self._ns),
                                                    ua.Variant(initial, vtype))
            cam = self._cameras[name] = _Camera(nodes)
        return cam

    def _written(self, key: str) -> None:
        """Remember a verdict once all its values are written (a failed write is retried in full)."""
        self._seen[key] = None
        if len(self._seen) > 20000:
            self._seen.popitem(last=False)

    async def _write(self, batch: list[Envelope]) -> None:
        for env in batch:
            if env.kind != KIND_RESULT or env.key in self._seen:
                continue  # alerts have no node; a redelivered verdict is already shown and counted
            cam = await self._camera(env.camera)
            d = env.data
            ng = d["verdict"] == "NG"
            cam.counter = (cam.counter + 1) & 0xFFFFFFFF
            cam.ng += ng
            cam.ok += not ng
            cam.last_ns = time.monotonic_ns()
            values = {
                "LastVerdict": d["verdict"], "Score": float(d["score"]), "Threshold": float(d["threshold"]),
                "FrameId": env.frame_id, "Seq": int(d["seq"]), "Part": str(d.get("part", "")),
                "ModelVersion": f"{d['model_name']}@{d['model_version']}", "OkCount": cam.ok, "NgCount": cam.ng,
            }
            if cam.state != "RUNNING":
                cam.state = values["WorkerState"] = "RUNNING"
            for var, value in values.items():
                await self._set(cam, var, value)
            await self._set(cam, "ResultCounter", cam.counter)  # last: a PLC that sees it change reads a whole verdict
            self._written(env.key)

    async def _set(self, cam: _Camera, var: str, value: Any) -> None:
        await cam.nodes[var].write_value(ua.DataValue(ua.Variant(value, VARIABLES[var][1])))

    async def _watch_stale(self) -> None:
        stale_ns = int(self.s.bridge_stale_s * 1e9)
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic_ns()
            for cam in self._cameras.values():
                if cam.state == "RUNNING" and now - cam.last_ns > stale_ns:
                    cam.state = "STALE"
                    await self._set(cam, "WorkerState", "STALE")
