"""`linewatch-view`: the view's routes (view/app.py) under uvicorn, in the foreground (`main`) or in a
thread (`ViewServer`: the demo, tests, benchmarks and the screenshot command)."""

from __future__ import annotations

import argparse
import sys
import threading
import time
from types import FrameType

import structlog
import uvicorn

from linewatch.errors import ServiceUnavailable
from linewatch.startup import EXIT_BAD_SETTINGS, program_settings
from view.app import create_app
from view.live import HEARTBEAT_S
from view.settings import ViewSettings

log = structlog.get_logger(__name__)

# Open event streams end at their next heartbeat once the server is stopping; this is the margin.
GRACEFUL_S = HEARTBEAT_S + 2


class _Server(uvicorn.Server):
    """uvicorn's server, which also tells the event streams to end when it is asked to stop."""

    def __init__(self, settings: ViewSettings) -> None:
        self.closing = threading.Event()
        super().__init__(uvicorn.Config(
            create_app(settings, self.closing), host=settings.view_host, port=settings.view_port, lifespan="on",
            log_config=None,  # logging as the program configured it (structlog), not uvicorn's own
            log_level=settings.log_level.lower(), access_log=settings.log_level.lower() == "debug",
            timeout_graceful_shutdown=GRACEFUL_S,
        ))

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.closing.set()
        super().handle_exit(sig, frame)


def serve(settings: ViewSettings) -> None:
    """Serve until SIGINT/SIGTERM."""
    _Server(settings).run()


class ViewServer:
    """The view in a background thread of this process, on `settings.view_port` (0: a free port)."""

    def __init__(self, settings: ViewSettings) -> None:
        self.settings = settings
        self._server = _Server(settings)
        self._thread = threading.Thread(target=self._run, name="linewatch-view", daemon=True)
        self.exit_code: int | None = None

    def _run(self) -> None:
        try:
            self._server.run()
        except SystemExit as exc:  # uvicorn exits this way when it cannot bind; start() reports it
            self.exit_code = exc.code if isinstance(exc.code, int) else 1

    def start(self, timeout_s: float = 30) -> "ViewServer":
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise ServiceUnavailable(
                    f"linewatch-view did not start on {self.settings.view_host}:{self.settings.view_port}"
                )
            time.sleep(0.05)
        return self

    @property
    def port(self) -> int:
        return self._server.servers[0].sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        host = self.settings.view_host
        host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"

    def stop(self) -> None:
        self._server.closing.set()
        self._server.should_exit = True
        self._thread.join(timeout=GRACEFUL_S + 10)

    def __enter__(self) -> "ViewServer":
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="linewatch-view",
        description="Live inspection screen in the browser: camera wall with heatmaps, score timelines, alert "
        "review with feedback. Reads Redis only; writes only <prefix>:feedback. Settings: LW_* environment "
        "variables (README: Settings, linewatch-view).",
    )
    parser.add_argument("--host", dest="view_host", help="address to bind (LW_VIEW_HOST, default 127.0.0.1)")
    parser.add_argument("--port", dest="view_port", type=int, help="port (LW_VIEW_PORT, default 8090)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    settings = program_settings("linewatch-view", ViewSettings, vars(_parse_args(argv)))
    if settings is None:
        return EXIT_BAD_SETTINGS
    if settings.exposed_without_auth:
        log.warning("the view listens beyond loopback without auth: set LW_VIEW_TOKEN or basic auth",
                    host=settings.view_host)
    serve(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
