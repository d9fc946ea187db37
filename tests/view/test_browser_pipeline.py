"""The view on a live pipeline, in a real browser: synthetic cameras -> real Kafka -> an in-process
worker with a really trained model -> Redis -> linewatch-view -> chromium."""

from __future__ import annotations

import threading

import pytest
import redis
from playwright.sync_api import expect

from linewatch.contract import RedisKeys
from producer.app import produce_synthetic
from tests.worker.helpers import running_worker

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.slow]

CAMERAS = ["cam-1", "cam-2", "cam-3"]


def test_defect_turns_its_tile_ng_and_a_false_alarm_reaches_the_feedback_stream(
    kafka_bootstrap, topic_base, redis_prefix, redis_client: redis.Redis, worker_settings, serve, page
) -> None:
    view = serve()
    page.goto(view.url)
    expect(page.locator("#empty")).to_be_visible()  # nothing scored yet
    result: dict = {}
    # Paced like real cameras (8 fps, 12 s); cam-1 develops a defect at frame 20 that stays (the frames
    # the worker tests use: the small test model scores them around its threshold, so the tile turns NG
    # on many of them, not all).
    producing = threading.Thread(target=lambda: result.setdefault("sent", produce_synthetic(
        {"kafka_bootstrap": kafka_bootstrap, "topic_base": topic_base}, cameras=len(CAMERAS), frames_per_camera=96,
        fps=8, defect_rate=0.0, defects={"cam-1": (20, None)})))
    with running_worker(worker_settings(debounce_n=3, debounce_m=5, alert_cooldown_s=3600)):
        producing.start()
        tiles = page.locator(".tile")
        expect(tiles).to_have_count(len(CAMERAS), timeout=90_000)
        assert tiles.locator(".cam").all_inner_texts() == CAMERAS
        for camera in CAMERAS:  # each tile shows the camera's preview frame
            page.wait_for_function(
                f"() => document.querySelector('.tile[data-camera=\"{camera}\"] img.shot')?.naturalWidth > 0",
                timeout=30_000)
        expect(page.locator('.tile[data-camera="cam-2"] .verdict')).to_have_text("OK")
        expect(page.locator('.tile[data-camera="cam-1"] .verdict')).to_have_text("NG", timeout=60_000)
        expect(page.locator("#pending")).not_to_have_text("0", timeout=30_000)
        producing.join(60)

        page.get_by_role("link", name="Alert review").click()
        cards = page.locator('.alert-card[data-camera="cam-1"]')
        expect(cards).to_have_count(1, timeout=30_000)  # one alert for a persistent defect (debounce, cool-down)
        card = cards.first
        page.wait_for_function("() => document.querySelector('.alert-card[data-camera=\"cam-1\"] img.shot')?.naturalWidth > 0")
        expect(card.locator("svg.boxes rect").first).to_be_attached()  # the worker's boxes drawn over the frame
        frame_id = card.get_attribute("data-frame-id")
        card.get_by_role("button", name="False alarm").click()
        expect(cards).to_have_count(0)
    entries = redis_client.xrange(RedisKeys(redis_prefix).feedback)
    assert [(e[b"camera"], e[b"frame_id"].decode(), e[b"verdict"]) for _, e in entries] == [
        (b"cam-1", frame_id, b"false_alarm")]
    assert result["sent"].sent == 96 * len(CAMERAS)
    assert page.errors == [] and page.dialogs == []
