"""The programs' health endpoint (/metrics, /healthz, /readyz): the hand-built pooled server of
linewatch/health.py against the same three paths on Starlette + uvicorn, the view's stack.

    .venv/bin/python bench/health_server.py                # 3 fresh processes per server, medians
    .venv/bin/python bench/health_server.py --silent 1     # one client that connects and says nothing

Each server runs in a fresh process (imports and memory are the server's own; prometheus_client,
which both need for /metrics, is imported before the clock starts) and is measured for what a
worker or producer pays and what a probe meets:

    import_ms     importing the server's modules
    start_ms      constructing and starting it until GET /healthz answers
    threads       threads it adds (from /proc: Python's and any others), after 200 requests
    rss_mb        resident memory it adds (imports + server), after 200 requests
    readyz_ms     median of 200 sequential GET /readyz
    silent_ok     GET /healthz answered while `--silent` clients are connected and say nothing
    silent_ms     how long that GET took
    silent_closed silent connections the server had closed 8 s later (the rest hold a socket each)
    stop_ms       stopping it

"asgi" is uvicorn as the view configures it (no connection limit); "asgi-limited" adds
limit_concurrency=20, uvicorn's bound on connections. Results: bench/results/health_server-silentN.json
and Markdown rows on stdout. Needs no Kafka or Redis.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

KINDS = ("pooled", "asgi", "asgi-limited")
Check = Callable[[], tuple[bool, dict]]


def _proc_status() -> tuple[int, int]:
    """(threads, RSS bytes) of this process, from /proc (counts threads Python does not know of)."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return int(fields["Threads"]), int(fields["VmRSS"].split()[0]) * 1024


class _Asgi:
    """The three paths as a Starlette app under uvicorn in a thread, as view/server.py runs the view."""

    def __init__(self, live: Check, ready: Check, limit: int | None) -> None:
        import uvicorn
        from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import Response
        from starlette.routing import Route

        def check(fn: Check) -> Callable[[Request], Any]:
            async def endpoint(_: Request) -> Response:  # async: no thread pool for a dict and a lock
                ok, details = fn()
                return Response(json.dumps({"ok": ok, **details}, default=str), 200 if ok else 503,
                                media_type="application/json")
            return endpoint

        async def metrics(_: Request) -> Response:
            return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

        app = Starlette(routes=[Route("/metrics", metrics), Route("/healthz", check(live)), Route("/readyz", check(ready))])
        self._server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off", log_config=None,
                                                     access_log=False, limit_concurrency=limit))
        self._thread = threading.Thread(target=self._server.run, name="http", daemon=True)

    def start(self) -> None:
        self._thread.start()
        while not self._server.started:
            time.sleep(0.001)

    @property
    def port(self) -> int:
        return self._server.servers[0].sockets[0].getsockname()[1]

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)


def _get(port: int, path: str, timeout_s: float = 5.0) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout_s) as reply:
            reply.read()
            return reply.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def child(kind: str, silent: int) -> dict[str, Any]:
    import prometheus_client  # noqa: F401 - both servers need it; the worker and producer import it anyway

    threads0, rss0 = _proc_status()
    live: Check = lambda: (True, {})  # noqa: E731
    ready: Check = lambda: (True, {"model": "synth", "partitions": 4})  # noqa: E731
    t0 = time.perf_counter()
    if kind == "pooled":
        from linewatch.health import HealthServer
    else:
        import uvicorn  # noqa: F401
        import starlette.applications  # noqa: F401
    t1 = time.perf_counter()
    server = HealthServer("127.0.0.1", 0, live, ready) if kind == "pooled" else _Asgi(
        live, ready, 20 if kind == "asgi-limited" else None)
    server.start()
    while _get(server.port, "/healthz") != 200:
        time.sleep(0.001)
    t2 = time.perf_counter()
    times = []
    for _ in range(200):
        started = time.perf_counter()
        assert _get(server.port, "/readyz") == 200
        times.append(time.perf_counter() - started)
    threads1, rss1 = _proc_status()
    quiet = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(silent)]
    time.sleep(0.5)
    started = time.perf_counter()
    silent_status = _get(server.port, "/healthz")
    silent_ms = (time.perf_counter() - started) * 1000
    threads_silent = _proc_status()[0]
    time.sleep(8)
    closed = 0
    for s in quiet:
        s.settimeout(0.05)
        try:
            closed += s.recv(1) == b""
        except OSError:  # still open, nothing to read
            pass
        s.close()
    t3 = time.perf_counter()
    server.stop()
    stop_ms = (time.perf_counter() - t3) * 1000
    return {
        "kind": kind, "import_ms": (t1 - t0) * 1000, "start_ms": (t2 - t1) * 1000, "threads": threads1 - threads0,
        "threads_with_silent": threads_silent - threads0, "rss_mb": (rss1 - rss0) / 2**20,
        "readyz_ms": statistics.median(times) * 1000, "silent": silent, "silent_status": silent_status,
        "silent_ok": silent_status == 200, "silent_ms": silent_ms, "silent_closed": closed, "stop_ms": stop_ms,
    }


def _median_row(runs: list[dict[str, Any]]) -> dict[str, Any]:
    row = dict(runs[0])
    for key, value in runs[0].items():
        if isinstance(value, float) or (isinstance(value, int) and not isinstance(value, bool)):
            row[key] = statistics.median(r[key] for r in runs)
    row["silent_ok"] = all(r["silent_ok"] for r in runs)
    row["silent_status"] = sorted({r["silent_status"] for r in runs})
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="fresh processes per server")
    parser.add_argument("--silent", type=int, default=50, help="clients that connect and say nothing")
    parser.add_argument("--child", choices=KINDS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        sys.stdout.write(json.dumps(child(args.child, args.silent)) + "\n")
        return 0
    rows = []
    for kind in KINDS:
        runs = []
        for _ in range(args.runs):
            done = subprocess.run([sys.executable, __file__, "--child", kind, "--silent", str(args.silent)], cwd=REPO,
                                  capture_output=True, text=True, timeout=120, check=True)
            runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
        rows.append(_median_row(runs))
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    out = REPO / "bench" / "results" / f"health_server-silent{args.silent}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                               "machine": machine, "runs": args.runs, "rows": rows}, indent=2))
    print(f"medians of {args.runs} fresh processes each; {machine}\n")
    print("| server | import ms | start ms | threads | RSS MB | /readyz p50 ms | "
          f"GET with {args.silent} silent clients | silent closed after 8 s | stop ms |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        answer = f"{r['silent_status']} in {r['silent_ms']:.0f} ms"
        print(f"| {r['kind']} | {r['import_ms']:.0f} | {r['start_ms']:.0f} | {r['threads']:.0f} "
              f"({r['threads_with_silent']:.0f} with silent) | {r['rss_mb']:.1f} | {r['readyz_ms']:.2f} | {answer} | "
              f"{r['silent_closed']:.0f} of {r['silent']} | {r['stop_ms']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
