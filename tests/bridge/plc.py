"""A PLC's own OPC UA server for the opcua_client sink's tests: a real asyncua server (Basic256Sha256
SignAndEncrypt, user + password) with the node layout docs/integrations.md asks of a PLC, types as an
S7 would have them (Seq Int32 = DInt, Score Float = Real, ResultCounter UInt16 = UInt).

It keeps every write it accepted, in the order it accepted them: per camera, each ResultCounter
write is paired with the FrameId written before it, so a test sees what the PLC's handshake sees.
stop() and start() keep the address space and the port, as a PLC whose server restarts keeps its data.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from asyncua import Server, ua
from asyncua.common.callback import CallbackType
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from asyncua.crypto.permission_rules import User, UserRole
from cryptography.x509.oid import ExtendedKeyUsageOID

from testkit.services import free_port

NAMESPACE = "urn:linewatch:line"
TYPES: dict[str, tuple[Any, ua.VariantType]] = {
    "LastVerdict": ("", ua.VariantType.String), "IsNg": (False, ua.VariantType.Boolean), "Score": (0.0, ua.VariantType.Float),
    "FrameId": ("", ua.VariantType.String), "Seq": (0, ua.VariantType.Int32), "ResultCounter": (0, ua.VariantType.UInt16),
}


class _Users:
    def __init__(self, user: str, password: str) -> None:
        self.user, self.password = user, password

    def get_user(self, iserver: Any, username: str | None = None, password: str | None = None, certificate: Any = None) -> User | None:
        return User(role=UserRole.User, name=username) if (username, password) == (self.user, self.password) else None


class PlcServer:
    """The PLC: objects Linewatch/<station> with one variable per TYPES entry, id ns=<ns>;s=Linewatch.<station>.<var>."""

    def __init__(self, folder: Path, stations: list[str], user: str = "bridge", password: str = "plc-pass-1") -> None:
        self.folder, self.stations, self.user, self.password = folder, stations, user, password
        self.port = free_port()
        self.url = f"opc.tcp://127.0.0.1:{self.port}/plc/"
        self.handshakes: dict[str, list[tuple[str, int]]] = {s: [] for s in stations}  # (FrameId, ResultCounter) per write
        self.values: dict[str, dict[str, Any]] = {s: {} for s in stations}  # last written value per variable
        self.lock = threading.Lock()
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="plc", daemon=True)
        self._thread.start()
        self._server: Server | None = None
        self._running = False

    def _run(self, coro: Any, timeout_s: float = 120) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=timeout_s)

    def start(self) -> None:
        self._run(self._start())

    def stop(self) -> None:
        self._run(self._stop())

    def close(self) -> None:
        if self._running:
            self.stop()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)

    async def _start(self) -> None:
        if self._server is None:
            self._server = await self._build()
        await self._server.start()
        self._running = True

    async def _stop(self) -> None:
        if self._server is not None and self._running:
            await self._server.stop()
            self._running = False

    async def _build(self) -> Server:
        self.folder.mkdir(parents=True, exist_ok=True)
        key, cert = self.folder / "plc-key.pem", self.folder / "plc-cert.der"
        uri = "urn:linewatch:test-plc"
        await setup_self_signed_certificate(key, cert, uri, "127.0.0.1", [ExtendedKeyUsageOID.SERVER_AUTH], {"commonName": "test-plc"})
        server = Server(user_manager=_Users(self.user, self.password))
        await server.init()
        server.set_endpoint(self.url)
        await server.set_application_uri(uri)
        server.set_security_policy([ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt])
        server.set_identity_tokens([ua.UserNameIdentityToken])
        await server.load_certificate(str(cert))
        await server.load_private_key(str(key))
        ns = await server.register_namespace(NAMESPACE)
        root = await server.nodes.objects.add_object(ua.NodeId("Linewatch", ns), ua.QualifiedName("Linewatch", ns))
        self._names: dict[ua.NodeId, tuple[str, str]] = {}
        for station in self.stations:
            obj = await root.add_object(ua.NodeId(f"Linewatch.{station}", ns), ua.QualifiedName(station, ns))
            for var, (initial, vtype) in TYPES.items():
                node = await obj.add_variable(ua.NodeId(f"Linewatch.{station}.{var}", ns), ua.QualifiedName(var, ns), ua.Variant(initial, vtype))
                await node.set_writable()
                self._names[node.nodeid] = (station, var)
        server.subscribe_server_callback(CallbackType.PostWrite, self._written)
        return server

    def _written(self, event: Any, dispatcher: Any) -> None:
        """Every Write request the PLC answered: keep the values it took, pair counters with frame ids."""
        with self.lock:
            for item, status in zip(event.request_params.NodesToWrite, event.response_params):
                if not status.is_good() or item.NodeId not in self._names:
                    continue
                station, var = self._names[item.NodeId]
                value = item.Value.Value.Value
                self.values[station][var] = value
                if var == "ResultCounter":
                    self.handshakes[station].append((self.values[station].get("FrameId", ""), int(value)))

    def frames(self, station: str) -> list[str]:
        """The frame ids the PLC's handshake announced, in order."""
        with self.lock:
            return [f for f, _ in self.handshakes[station]]

    def counters(self, station: str) -> list[int]:
        with self.lock:
            return [c for _, c in self.handshakes[station]]
