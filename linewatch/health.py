"""One small HTTP endpoint for a program: /metrics (Prometheus), /healthz (liveness), /readyz (readiness).

Probes and scrapers are the only clients, so the server is small and bounded: a fixed pool of
`workers` threads serves requests, each connection gets `timeout_s` to send its request and
receive the answer (a client that connects and says nothing cannot hold a thread), and
connections beyond `backlog` waiting ones are closed at once instead of queueing without limit.

Why not Starlette + uvicorn, which the view runs on (bench/health_server.py, figures in
docs/benchmarks.md): the worker and producer do not load them otherwise, and they would add about
2 s of imports and 6 MB to each process for three fixed paths; and uvicorn keeps a connection that
never sends a request open for ever (no timeout before the first request), while its one bound,
limit_concurrency, answers the probes themselves 503 once silent clients fill it. Here a silent
client loses its thread after `timeout_s`.
"""

from __future__ import annotations

import json
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, Callable

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

Check = Callable[[], tuple[bool, dict]]


class _PooledServer(HTTPServer):
    """HTTPServer whose requests run on a fixed thread pool, with a cap on waiting connections."""

    def __init__(self, address: tuple[str, int], handler: type, workers: int, backlog: int) -> None:
        super().__init__(address, handler)
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="http")
        self._slots = threading.BoundedSemaphore(workers + backlog)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)  # overloaded: refuse rather than queue without bound
            return
        self._pool.submit(self._serve_one, request, client_address)

    def _serve_one(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except (OSError, ValueError):  # client went away or timed out mid-request
            pass
        finally:
            self.shutdown_request(request)
            self._slots.release()

    def server_close(self) -> None:
        super().server_close()
        self._pool.shutdown(wait=False, cancel_futures=True)


class HealthServer:
    """Serves the three paths from a daemon thread; `live` and `ready` return (ok, details)."""

    def __init__(
        self,
        host: str,
        port: int,
        live: Check,
        ready: Check,
        registry: CollectorRegistry = REGISTRY,
        timeout_s: float = 5.0,
        workers: int = 4,
        backlog: int = 16,
    ) -> None:
        checks = {"/healthz": live, "/readyz": ready}

        class Handler(BaseHTTPRequestHandler):
            timeout = timeout_s  # socket timeout for reading the request and writing the answer

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                path = self.path.split("?")[0]
                if path == "/metrics":
                    self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST)
                elif path in checks:
                    ok, details = checks[path]()
                    body = json.dumps({"ok": ok, **details}, default=str).encode()
                    self._send(200 if ok else 503, body, "application/json")
                else:
                    self._send(404, b"not found\n", "text/plain")

            def _send(self, code: int, body: bytes, ctype: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:  # probes every few seconds: keep logs quiet
                pass

        self._server = _PooledServer((host, port), Handler, workers, backlog)
        self._server.socket.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        self._thread = threading.Thread(target=self._server.serve_forever, name="http", daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
