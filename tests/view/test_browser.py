"""The three pages in a real browser (Debian's chromium via Playwright) on data written to the real
Redis in the workers' shapes."""

from __future__ import annotations

import time

import pytest
import redis
from playwright.sync_api import expect

from linewatch.contract import RedisKeys
from tests.view.shapes_writer import ShapesWriter

pytestmark = [pytest.mark.integration, pytest.mark.browser]

HOSTILE = "<img src=x onerror=alert(1)>"


def _no_script_ran(page) -> None:
    assert page.dialogs == [], f"a dialog opened: {page.dialogs}"
    assert page.errors == [], f"page errors: {page.errors}"
    assert page.locator('img[src="x"]').count() == 0  # the hostile id never became an element


def test_wall_shows_every_camera_and_hostile_ids_as_text(writer: ShapesWriter, view, page) -> None:
    for camera, score in [("cam-1", 0.2), ("cam-2", 0.9), ("cam-10", 0.3), (HOSTILE, 0.95)]:
        writer.result(camera, 25, score)
    page.goto(view.url)
    expect(page.locator(".tile")).to_have_count(4)
    assert page.locator(".tile .cam").all_inner_texts() == [HOSTILE, "cam-1", "cam-2", "cam-10"]  # natural order
    hostile = page.locator(".tile", has=page.get_by_text(HOSTILE, exact=True))
    expect(hostile.locator(".verdict")).to_have_text("NG")
    expect(page.locator('.tile[data-camera="cam-1"] .verdict')).to_have_text("OK")
    expect(page.locator('.tile[data-camera="cam-2"]')).to_have_class("tile ng")
    expect(page.locator('.tile[data-camera="cam-1"] .score')).to_have_text("0.20 / 0.50")
    expect(page.locator('.tile[data-camera="cam-1"] .model')).to_have_text("synth@3")
    # The preview frame really loaded.
    page.wait_for_function("() => document.querySelector('.tile[data-camera=\"cam-1\"] img.shot')?.naturalWidth > 0")
    _no_script_ran(page)


def test_wall_follows_results_live_and_marks_silent_cameras_stale(writer: ShapesWriter, serve, page) -> None:
    view = serve(view_stale_s=2)
    writer.result("cam-1", 1, 0.2)
    page.goto(view.url)
    verdict = page.locator('.tile[data-camera="cam-1"] .verdict')
    expect(verdict).to_have_text("OK")
    writer.result("cam-1", 25, 0.9)  # no reload: the event stream brings it
    expect(verdict).to_have_text("NG")
    writer.result("cam-2", 1, 0.2)  # a new camera appears by itself
    expect(page.locator(".tile")).to_have_count(2)
    expect(verdict).to_have_text("STALE", timeout=10_000)  # nothing more from cam-1
    expect(page.locator('.tile[data-camera="cam-1"]')).to_have_class("tile stale")
    _no_script_ran(page)


def test_overlay_switch(writer: ShapesWriter, view, page) -> None:
    writer.result("cam-1", 25, 0.9)
    page.goto(view.url)
    overlay = page.locator('.tile[data-camera="cam-1"] img.overlay')
    expect(overlay).to_have_attribute("src", "/img/overlay?camera=cam-1&mode=heat&v=0-0")
    page.get_by_label("Outline").check()
    expect(overlay).to_have_attribute("src", "/img/overlay?camera=cam-1&mode=outline&v=0-0")
    page.wait_for_function("() => document.querySelector('.tile img.overlay')?.naturalWidth > 0")
    page.get_by_label("Off").check()
    expect(overlay).not_to_have_attribute("src", "/img/overlay?camera=cam-1&mode=outline&v=0-0")
    assert overlay.get_attribute("src") is None
    page.reload()  # the choice is remembered
    expect(page.get_by_label("Off")).to_be_checked()


def test_camera_page_timeline_opens_a_frame(writer: ShapesWriter, view, page) -> None:
    written = [writer.result("cam-1", seq, 0.9 if seq in (22, 23) else 0.2) for seq in range(20, 30)]
    writer.alert(written[2])
    page.goto(f"{view.url}/camera?id=cam-1")
    expect(page.locator("h1")).to_have_text("cam-1")
    expect(page.locator(".pt")).to_have_count(10)
    expect(page.locator(".pt.anomalous")).to_have_count(2)
    expect(page.locator("path.threshold")).to_have_count(1)
    # Points written milliseconds apart sit on one pixel: step to the newest anomalous one, then back.
    page.get_by_role("button", name="◀ anomalous").click()
    detail = page.locator("#detail")
    expect(detail.locator("h2")).to_have_text(f"Frame {written[3].frame_id}")
    page.get_by_role("button", name="◀ anomalous").click()
    expect(detail.locator("h2")).to_have_text(f"Frame {written[2].frame_id}")
    expect(page.locator(f'.pt.selected[data-id="{written[2].entry_id}"]')).to_have_count(1)
    page.wait_for_function("() => document.querySelector('#detail img.shot')?.naturalWidth > 0")
    page.wait_for_function("() => document.querySelector('#detail img.overlay')?.naturalWidth > 0")
    expect(detail.locator("svg.boxes rect")).to_have_count(1)
    expect(detail).to_contain_text("0.900 / 0.500")
    expect(page.locator("#alerts tbody tr")).to_have_count(1)
    expect(page.locator("#alerts tbody tr")).to_contain_text("pending review")
    # A normal frame has no stored image: the page says so instead of a broken picture.
    page.locator(".pt.normal").first.dispatch_event("click")  # a point's own click handler
    expect(detail.locator("h2")).to_have_text(f"Frame {written[0].frame_id}")
    expect(detail.locator(".noimg")).to_be_visible()
    expect(detail.locator(".noimg")).to_have_text("only anomalous frames keep their image")
    # Live: a new result appears on the timeline without a reload.
    writer.result("cam-1", 30, 0.95)
    expect(page.locator(".pt.anomalous")).to_have_count(3)
    _no_script_ran(page)


def test_hostile_camera_page(writer: ShapesWriter, view, page) -> None:
    writer.result(HOSTILE, 25, 0.9)
    page.goto(view.url)
    page.get_by_role("link", name=HOSTILE, exact=True).click()
    expect(page.locator("h1")).to_have_text(HOSTILE)
    expect(page.locator(".pt")).to_have_count(1)
    page.locator(".pt").first.dispatch_event("click")
    page.wait_for_function("() => document.querySelector('#detail img.shot')?.naturalWidth > 0")
    _no_script_ran(page)


def test_review_false_alarm_lands_in_the_feedback_stream(writer: ShapesWriter, view, page,
                                                         redis_client: redis.Redis, redis_prefix: str) -> None:
    first = writer.result("cam-1", 25, 0.9)
    writer.alert(first)
    hostile = writer.result(HOSTILE, 26, 0.95)
    writer.alert(hostile)
    page.goto(f"{view.url}/review")
    cards = page.locator(".alert-card")
    expect(cards).to_have_count(2)
    expect(page.locator("#pending")).to_have_text("2")
    card = cards.filter(has=page.get_by_text(HOSTILE, exact=True))
    page.wait_for_function("() => [...document.querySelectorAll('.alert-card img.shot')].every(i => i.naturalWidth > 0)")
    expect(card.locator("svg.boxes rect")).to_have_count(1)
    page.locator("#user").fill("ana")
    card.locator("textarea").fill("reflection on the <b>belt</b>")
    card.get_by_role("button", name="False alarm").click()
    expect(cards).to_have_count(1)
    expect(page.locator("#pending")).to_have_text("1")
    entries = redis_client.xrange(RedisKeys(redis_prefix).feedback)
    assert len(entries) == 1
    entry = {k.decode(): v.decode() for k, v in entries[0][1].items()}
    assert entry["camera"] == HOSTILE and entry["frame_id"] == hostile.frame_id
    assert entry["verdict"] == "false_alarm" and entry["note"] == "reflection on the <b>belt</b>" and entry["user"] == "ana"
    # A new alert arrives in the open queue by itself.
    writer.alert(writer.result("cam-2", 27, 0.9))
    expect(cards).to_have_count(2)
    cards.filter(has=page.get_by_text("cam-1", exact=True)).get_by_role("button", name="Confirmed defect").click()
    expect(cards).to_have_count(1)
    page.reload()  # acknowledged alerts stay out of the queue
    expect(cards).to_have_count(1)
    expect(cards.locator(".cam")).to_have_text("cam-2")
    _no_script_ran(page)


def test_sixty_four_cameras(writer: ShapesWriter, serve, page) -> None:
    view = serve(view_stale_s=300)  # on a loaded machine writing 64 cameras can outlast the default 10 s
    cameras = [f"line{i // 8}-cam{i % 8}" for i in range(64)]
    for i, camera in enumerate(cameras):
        writer.result(camera, 25 if i % 9 == 0 else 1, 0.9 if i % 9 == 0 else 0.2, images=False)
    page.goto(view.url)
    expect(page.locator(".tile")).to_have_count(64)
    expect(page.locator(".tile.ng")).to_have_count(len(range(0, 64, 9)))
    width = page.evaluate("document.querySelector('.tile').getBoundingClientRect().width")
    assert 150 <= width < 300  # small tiles for a big wall
    started = time.monotonic()
    writer.result("line7-cam7", 30, 0.95, images=False)
    expect(page.locator('.tile[data-camera="line7-cam7"] .verdict')).to_have_text("NG")
    assert time.monotonic() - started < 15  # sanity bound only; the benchmark measures the delay
    _no_script_ran(page)


def test_part_search_page_finds_a_part_and_the_wall_shows_it(writer: ShapesWriter, view, page) -> None:
    writer.result("cam-1", 1, 0.2, part="SN-0007")
    writer.result("cam-2", 1, 0.9, part="SN-0007")
    writer.result("cam-3", 1, 0.2, part=HOSTILE)  # part ids come from senders too: text only
    page.goto(view.url)
    expect(page.locator('.tile[data-camera="cam-1"] .part')).to_have_text("part SN-0007")
    expect(page.locator('.tile[data-camera="cam-3"] .part')).to_have_text(f"part {HOSTILE}")
    _no_script_ran(page)
    page.get_by_role("link", name="Part search").click()
    page.locator("#part-id").fill("SN-0007")
    page.get_by_role("button", name="Find").click()
    expect(page.locator("#results .card")).to_have_count(2)
    expect(page.locator("#results .card.ng .cam")).to_have_text("cam-2")
    page.wait_for_function("() => document.querySelector('#results .card.ng img.shot')?.naturalWidth > 0")
    assert "id=SN-0007" in page.url  # a search is a link someone can send
    page.goto(f"{view.url}/part?id=nothing-here")
    expect(page.locator("#status")).to_contain_text("No result for part nothing-here")
    _no_script_ran(page)


def test_shadow_page_shows_each_candidates_report(view, page, redis_client, redis_prefix) -> None:
    keys = RedisKeys(redis_prefix)
    for seq in range(10):  # production calls all ten normal; the candidate flags two of them
        redis_client.xadd(keys.shadow("ae@v0002", "cam-1"), {
            "camera": "cam-1", "frame_id": f"0-{seq}", "seq": str(seq), "production_model": "ae@v0001",
            "production_score": f"{0.1 + seq / 100:.3f}", "production_anomalous": "0",
            "candidate_score": f"{0.1 + seq / 50:.3f}", "candidate_anomalous": "1" if seq >= 8 else "0",
            "candidate_ms": "2.0", "production_ms": "1.0", "time_ns": "1"})
    page.goto(f"{view.url}/shadow")
    card = page.locator('.card.shadow[data-candidate="ae@v0002"]')
    expect(card.locator("h2")).to_have_text("ae@v0002 against ae@v0001")
    expect(card).to_contain_text("80.00 %")  # verdict agreement
    expect(card).to_contain_text("2 of 10 = 20.00 %")  # alarms on production-normal frames
    expect(card).to_contain_text("OK·NG 2")
    _no_script_ran(page)
    page.get_by_role("link", name="Camera wall").click()
    expect(page.get_by_role("link", name="Shadow")).to_be_visible()
