"""Screenshots of the live view for docs/, taken from a real pipeline.

    bash scripts/screenshots.sh        # installs what is missing, starts Kafka and Redis, runs this

Four synthetic cameras at 8 fps -> Kafka -> an in-process worker serving the demo's model (trained
on the spot when the store lacks it, as `make demo` does) -> Redis -> linewatch-view -> Debian's
chromium at 1400x1000. cam-1 develops a persistent defect after 2.5 s, cam-4 after 7.5 s. Each page
is captured only once it shows live data (checked in its DOM: every camera's tile with a loaded
frame, counts and an alarm marker; alert cards with their frames; the camera page with its timeline
and an opened anomalous frame), else the run fails with NotShown: docs/view-wall.png,
docs/view-review.png and docs/view-camera.png. Topics and Redis keys are the run's own and are deleted afterwards.
"""

from __future__ import annotations

import argparse
import sys
import threading
import uuid
from pathlib import Path
from urllib.parse import urlencode

import redis
from kafka.admin import KafkaAdminClient

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from linewatch.logs import configure_logging  # noqa: E402
from linewatch.settings import KafkaSettings, RedisSettings  # noqa: E402
from linewatch.topics import ensure_topics  # noqa: E402
from programs.demo import DemoSettings, ensure_default_model  # noqa: E402
from tests.view.conftest import CHROMIUM, CHROMIUM_ARGS  # noqa: E402
from view.server import ViewServer  # noqa: E402
from view.settings import ViewSettings  # noqa: E402

FPS = 8.0
CAMERAS = 4  # the demo model knows the parts of cameras 1-4 (it was trained on them)
FRAMES = 40 * int(FPS)  # long enough that the pipeline is still live when the pictures are taken


def _pipeline(settings: DemoSettings, ref: str):
    from producer.app import ProducerApp, synthetic_specs
    from producer.settings import ProducerSettings
    from worker.app import Worker
    from worker.settings import WorkerSettings

    shared = settings.model_dump(include=set(KafkaSettings.model_fields) | set(RedisSettings.model_fields))
    shared.update(log_level="warning")
    kafka_only = {k: v for k, v in shared.items() if k in KafkaSettings.model_fields}
    worker = Worker(WorkerSettings(**shared, model=ref, model_root=settings.model_root,
                                   group_id=f"shots-{uuid.uuid4().hex[:6]}", max_wait_ms=20, alert_cooldown_s=600))
    specs = synthetic_specs(CAMERAS, defect_rate=0.0, fps=FPS,
                            defects={"cam-1": (20, None), "cam-4": (60, None)})
    producer = ProducerApp(ProducerSettings(**kafka_only, cameras=specs, max_frames=FRAMES, metrics_port=0))
    return worker, producer


class NotShown(AssertionError):
    """The page did not show what the screenshot is meant to show (no camera, no frame, no data)."""


# Every check runs in the page just before its shot: a screenshot of an empty or half-loaded page
# would otherwise land in docs/ silently.
WALL_READY = """(n) => {
  const tiles = [...document.querySelectorAll('#wall .tile')];
  const inView = (el) => { const r = el.getBoundingClientRect(); return r.bottom <= innerHeight && r.right <= innerWidth; };
  return tiles.length === n && document.querySelector('#empty').hidden
    && tiles.every((t) => t.querySelector('img.shot').naturalWidth > 0 && inView(t)
                          && /^[1-9]\\d* frames$/.test(t.querySelector('.c-frames').textContent))
    && document.querySelector('.tile.alarm') !== null;
}"""
REVIEW_READY = """() => { const cards = [...document.querySelectorAll('.alert-card')];
  return cards.length > 0 && cards.every((c) => c.querySelector('img.shot').naturalWidth > 0); }"""
CAMERA_READY = """() => document.querySelector('#now')?.textContent !== '' && document.querySelectorAll('.pt').length > 0
  && document.querySelector('#detail img.shot')?.naturalWidth > 0"""


def _ready(page, script: str, what: str, arg=None, timeout_ms: float = 90_000) -> None:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(script, arg=arg, timeout=timeout_ms)
    except PlaywrightTimeout:
        raise NotShown(f"{what}: the page never showed live data within {timeout_ms / 1000:.0f} s; no screenshot") from None


def shoot(url: str, out: Path, cameras: int = CAMERAS, timeout_ms: float = 90_000) -> list[Path]:
    """The three screenshots, each taken only once its page shows live data (NotShown otherwise)."""
    from playwright.sync_api import expect, sync_playwright

    wall, camera_page, review = out / "view-wall.png", out / "view-camera.png", out / "view-review.png"
    expect.set_options(timeout=timeout_ms)  # the pipeline needs its time; these waits end as soon as it is there
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(timeout_ms)
            page.goto(url)
            _ready(page, WALL_READY, "camera wall", cameras, timeout_ms)
            page.screenshot(path=str(wall))
            page.goto(f"{url}/review")
            _ready(page, REVIEW_READY, "alert review", None, timeout_ms)
            page.screenshot(path=str(review))
            alerted = page.locator(".alert-card").first.get_attribute("data-camera")
            page.goto(f"{url}/camera?{urlencode({'id': alerted})}")
            expect(page.locator(".pt.anomalous").first).to_be_attached()
            page.get_by_role("button", name="◀ anomalous").click()
            _ready(page, CAMERA_READY, "camera page", None, timeout_ms)
            page.wait_for_timeout(1200)  # the timeline redraws at most once a second
            page.screenshot(path=str(camera_page), full_page=True)  # the opened frame sits below the timeline
        finally:
            browser.close()
    return [wall, camera_page, review]


def _clean(settings: DemoSettings) -> None:
    client = redis.Redis.from_url(settings.redis_url, **settings.redis_client_kwargs())
    keys = list(client.scan_iter(f"{settings.redis_prefix}:*", count=1000))
    if keys:
        client.delete(*keys)
    admin = KafkaAdminClient(**settings.kafka_client_kwargs())
    try:
        topics = settings.topics
        admin.delete_topics([topics.frames, topics.alerts, topics.dead_letter])
    finally:
        admin.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs", help="folder of the PNGs (default docs/)")
    args = parser.parse_args()
    run = uuid.uuid4().hex[:8]
    settings = DemoSettings(topic_base=f"shots-{run}", redis_prefix=f"shots-{run}", log_json=False)
    configure_logging("warning", json=False)
    ensure_topics(settings, partitions=4)
    ref = ensure_default_model(settings)
    worker, producer = _pipeline(settings, ref)
    redis_only = settings.model_dump(include=set(RedisSettings.model_fields))
    redis_only.update(log_level="warning")
    view = ViewServer(ViewSettings(**redis_only, view_port=0)).start()
    worker.start()
    worker_thread = threading.Thread(target=worker.run, name="worker", daemon=True)
    worker_thread.start()
    producer.start()
    try:
        paths = shoot(view.url, args.out)
    finally:
        producer.stop()
        worker.request_stop()
        worker_thread.join(timeout=60)
        view.stop()
        _clean(settings)
    for path in paths:
        print(f"screenshots: {path.relative_to(REPO) if path.is_relative_to(REPO) else path} "
              f"({path.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
