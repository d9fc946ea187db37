"""`make demo` starts the view: on its port, or on a free one when that port is taken."""

from __future__ import annotations

import socket

import httpx
import pytest

from programs.demo import DemoSettings, start_view

pytestmark = pytest.mark.integration


def test_demo_view_moves_to_a_free_port_when_its_own_is_taken(redis_url: str, redis_prefix: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        view = start_view(DemoSettings(redis_url=redis_url, redis_prefix=redis_prefix, demo_view_port=port,
                                       log_json=False))
        try:
            assert view.port != port and view.url.startswith("http://127.0.0.1:")
            assert httpx.get(f"{view.url}/healthz").json()["ok"] is True
        finally:
            view.stop()
