"""The wall's counts, alarm marker, acknowledge, station filter and fit, in a real browser (Debian's
chromium via Playwright) on the real Redis; counts written by the worker's own script."""

from __future__ import annotations

import pytest
import redis
from playwright.sync_api import expect

from linewatch.contract import RedisKeys
from tests.view.shapes_writer import ShapesWriter

pytestmark = [pytest.mark.integration, pytest.mark.browser]


def test_tiles_and_summary_show_the_shift_counts(writer: ShapesWriter, view, page) -> None:
    writer.counted("cam-1", ok=30, ng=10)
    writer.counted("cam-2", ok=60, ng=0)
    writer.result("cam-1", 1, 0.2)
    writer.result("cam-2", 1, 0.2)
    page.goto(view.url)
    tile = page.locator('.tile[data-camera="cam-1"]')
    expect(tile.locator(".c-frames")).to_have_text("40 frames")
    expect(tile.locator(".c-ng")).to_have_text("NG 10")
    expect(tile.locator(".c-rate")).to_have_text("25.0 %")
    expect(page.locator("#summary .s-frames .value")).to_have_text("100")
    expect(page.locator("#summary .s-ng .value")).to_have_text("10")
    expect(page.locator("#summary .s-rate .value")).to_have_text("10.0 %")
    expect(page.locator("#summary .s-hour .value")).to_have_text("100 frames · NG 10 · 10.0 %")
    csv = page.locator("#summary a.csv").get_attribute("href")
    assert csv.startswith("/api/shift.csv?shift=")
    assert page.errors == []


def test_an_alarm_stays_on_its_tile_until_acknowledged(writer: ShapesWriter, view, page,
                                                       redis_client: redis.Redis, redis_prefix: str) -> None:
    writer.result("cam-1", 1, 0.2)
    page.goto(view.url)
    marker = page.locator('.tile[data-camera="cam-1"] .alarm-marker')
    expect(page.locator('.tile[data-camera="cam-1"] .verdict')).to_have_text("OK")
    expect(marker).to_be_hidden()
    writer.alert(writer.result("cam-1", 25, 0.9))  # an alert arrives while the page is open
    expect(marker).to_be_visible()
    expect(page.locator("#banner")).to_contain_text("cam-1")
    writer.result("cam-1", 26, 0.1)  # the defect is gone; the alarm is not
    expect(page.locator('.tile[data-camera="cam-1"] .verdict')).to_have_text("OK")
    expect(marker).to_be_visible()
    expect(page.locator('.tile[data-camera="cam-1"]')).to_have_class("tile ok alarm")
    page.locator("#banner .ack").click()
    expect(marker).to_be_hidden()
    expect(page.locator("#banner")).to_be_hidden()
    [(_, entry)] = redis_client.xrange(RedisKeys(redis_prefix).feedback)
    assert entry[b"verdict"] == b"acknowledged" and entry[b"camera"] == b"cam-1"
    expect(page.locator("#pending")).to_have_text("1")  # still waiting for a judgement in the review
    page.reload()  # the acknowledgement is in Redis, not only in this page
    expect(page.locator('.tile[data-camera="cam-1"] .verdict')).to_have_text("OK")
    expect(marker).to_be_hidden()
    assert page.errors == []


def test_a_station_screen_shows_its_cameras_fitted_to_the_window(writer: ShapesWriter, serve, browser) -> None:
    view = serve(view_layouts={"press": ["cam-2", "cam-4"]})
    for n in range(1, 7):
        writer.result(f"cam-{n}", 1, 0.2)
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    try:
        page.goto(f"{view.url}/?cameras=cam-1,cam-3,cam-5,cam-6")
        expect(page.locator(".tile")).to_have_count(4)
        assert page.locator(".tile .cam").all_inner_texts() == ["cam-1", "cam-3", "cam-5", "cam-6"]
        writer.alert(writer.result("cam-2", 25, 0.9))  # another station's alarm: not on this screen
        writer.alert(writer.result("cam-3", 25, 0.9))  # the banner pushes the wall down; it still fits
        expect(page.locator("#banner")).to_be_visible()
        expect(page.locator("#banner .banner-item")).to_have_count(1)
        expect(page.locator(".tile")).to_have_count(4)
        page.wait_for_timeout(300)
        fits = page.evaluate("""() => [...document.querySelectorAll('.tile')].every((t) => {
            const r = t.getBoundingClientRect(); return r.bottom <= innerHeight && r.right <= innerWidth; })""")
        assert fits, "a tile is cut off at 1400x1000"
        assert page.evaluate("() => document.scrollingElement.scrollHeight <= innerHeight")
        page.goto(f"{view.url}/?layout=press")
        expect(page.locator(".tile")).to_have_count(2)
        assert page.locator(".tile .cam").all_inner_texts() == ["cam-2", "cam-4"]
    finally:
        context.close()
