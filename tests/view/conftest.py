"""Fixtures of the view's tests: the view served from a thread on a free port, reading the test's
own Redis prefix; data written in the workers' shapes; Debian's chromium driven by Playwright."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
import pytest
import redis

from tests.view.shapes_writer import ShapesWriter
from view.server import ViewServer
from view.settings import ViewSettings

CHROMIUM = Path("/usr/bin/chromium")
# No sandbox: CI and these machines run as root, where chromium's sandbox cannot start.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture
def writer(redis_client: redis.Redis, redis_prefix: str) -> ShapesWriter:
    return ShapesWriter(redis_client, redis_prefix)


@pytest.fixture
def view_settings(redis_url: str, redis_prefix: str) -> Callable[..., ViewSettings]:
    def make(**overrides: Any) -> ViewSettings:
        base: dict[str, Any] = dict(redis_url=redis_url, redis_prefix=redis_prefix, view_port=0, view_push_ms=100,
                                    log_json=False, log_level="warning")
        return ViewSettings(**{**base, **overrides})
    return make


@pytest.fixture
def serve(view_settings: Callable[..., ViewSettings]) -> Iterator[Callable[..., ViewServer]]:
    """Starts views (keyword arguments override settings); all are stopped after the test."""
    started: list[ViewServer] = []

    def start(**overrides: Any) -> ViewServer:
        server = ViewServer(view_settings(**overrides)).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def view(serve: Callable[..., ViewServer]) -> ViewServer:
    return serve()


@pytest.fixture
def http(view: ViewServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=view.url, timeout=10) as client:
        yield client


@pytest.fixture(scope="module")
def browser():
    """Debian's chromium under Playwright (no browser download). Missing chromium fails, naming the fix.

    Module scope: Playwright's sync API keeps an event loop marked running in this thread while it
    is open, which would break asyncio.run() in other test modules."""
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists() and not shutil.which("chromium"):
        pytest.fail("chromium is not installed: apt-get install -y chromium (scripts/test.sh does it)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    """A fresh browser context per test; page errors and dialogs are recorded for assertions."""
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    page.errors, page.dialogs = [], []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    page.on("dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss()))
    page.set_default_timeout(15_000)
    yield page
    context.close()


# The live-pipeline test trains the same small model as the worker tests (session scope per conftest:
# a run of both folders trains it once for each).
