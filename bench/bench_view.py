"""Live view under load: does the browser follow 16 cameras x 8 fps within a second, and keep up?

    .venv/bin/python bench/bench_view.py                         # 16 cameras, 8 fps, 30 s
    .venv/bin/python bench/bench_view.py --cameras 64 --fps 8 --seconds 60

A writer thread puts results into the real Redis in the workers' shapes (latest hash, history
entry, camera index; a preview JPEG + heatmap per camera every `--preview-ms`) at `--fps` per camera.
The view runs in this process; Debian's chromium (Playwright) shows the camera wall. An init script
in the page records, for every camera state the page applies, the delay from the worker's
`published_ms` to the next animation frame after the wall updated (the screen has it then).
Reported: p50/p95/max of that delay, the same for the last third of the run (falling behind would
show as growth), states written vs states the browser received (the coalescing), SSE messages per
second. Results: one JSON file in bench/results/ and a Markdown row on stdout.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import json
import os
import platform
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import redis

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from linewatch.contract import PREVIEW_FIELD, RedisKeys  # noqa: E402
from tests.view.conftest import CHROMIUM, CHROMIUM_ARGS  # noqa: E402
from tests.view.shapes_writer import ShapesWriter  # noqa: E402
from view.server import ViewServer  # noqa: E402
from view.settings import ViewSettings  # noqa: E402

# Wraps EventSource listeners: after the page's own handler has updated the wall, wait for the next
# animation frame and record now - published_ms for each camera state of the message.
PROBE = """
window.__lags = []; window.__messages = 0; window.__states = 0;
const Original = window.EventSource;
window.EventSource = class extends Original {
  addEventListener(type, fn, ...rest) {
    if (type !== "update" && type !== "snapshot") return super.addEventListener(type, fn, ...rest);
    return super.addEventListener(type, (event) => {
      fn(event);
      const data = JSON.parse(event.data);
      window.__messages += 1;
      window.__states += data.cameras.length;
      const published = data.cameras.map((c) => c.published_ms).filter((p) => p);
      requestAnimationFrame(() => {
        const now = Date.now();
        for (const p of published) window.__lags.push([now, now - p]);
      });
    }, ...rest);
  }
};
"""


def write_results(client: redis.Redis, prefix: str, cameras: list[str], fps: float, preview_ms: int,
                  stop: threading.Event, counts: dict) -> None:
    """`fps` results per camera, one pipeline per tick for all cameras; previews every `preview_ms`."""
    writer = ShapesWriter(client, prefix)
    keys = RedisKeys(prefix)
    jpeg, heat, _ = writer.images(cameras[0], 25, True)  # one real frame and heatmap, reused: cheap to write
    period = 1 / fps
    next_at, last_preview, seq = time.monotonic(), 0.0, 0
    while not stop.is_set():
        preview = time.monotonic() - last_preview >= preview_ms / 1000
        for camera in cameras:
            written = writer.result(camera, seq, 0.9 if seq % 40 < 3 else 0.2, images=False, preview=False)
            counts["written"] += 1
            if preview:
                pipe = client.pipeline(transaction=False)
                pipe.set(keys.frame(camera), jpeg, ex=600)
                pipe.set(keys.heat(camera), heat, ex=600)
                pipe.hset(keys.latest(camera), PREVIEW_FIELD, written.frame_id)
                pipe.execute()
        if preview:
            last_preview = time.monotonic()
        seq += 1
        next_at += period
        late = time.monotonic() - next_at
        if late > 0:
            counts["late_ticks"] += 1
        else:
            time.sleep(-late)


def machine() -> str:
    """CPU model and memory, as the other benchmarks' result files name the machine."""
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.machine())
    mem_kib = next((int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                    if line.startswith("MemTotal")), 0)
    return f"{cpu}, {os.cpu_count()} cores, {mem_kib / 2**20:.0f} GiB"


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": float("nan"), "p95": float("nan"), "max": float("nan"), "n": 0}
    a = np.asarray(values, dtype=float)
    return {"p50": float(np.percentile(a, 50)), "p95": float(np.percentile(a, 95)), "max": float(a.max()), "n": len(a)}


def main() -> int:
    from playwright.sync_api import sync_playwright

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cameras", type=int, default=16)
    parser.add_argument("--fps", type=float, default=8.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--push-ms", type=int, default=ViewSettings.model_fields["view_push_ms"].default)
    parser.add_argument("--preview-ms", type=int, default=250,
                        help="preview refresh per camera (the worker's LW_PREVIEW_INTERVAL_MS default)")
    parser.add_argument("--redis-url", default=os.environ.get("LW_REDIS_URL", "redis://127.0.0.1:6379/0"))
    args = parser.parse_args()

    prefix = f"bench-view:{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(args.redis_url)
    cameras = [f"cam-{i + 1}" for i in range(args.cameras)]
    counts = {"written": 0, "late_ticks": 0}
    stop = threading.Event()
    settings = ViewSettings(redis_url=args.redis_url, redis_prefix=prefix, view_port=0, view_push_ms=args.push_ms,
                            log_level="warning", log_json=False)
    try:
        with ViewServer(settings) as view, sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            browser_version = f"chromium {browser.version}"
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.add_init_script(PROBE)
            writer = threading.Thread(target=write_results, args=(client, prefix, cameras, args.fps, args.preview_ms,
                                                                  stop, counts), daemon=True)
            writer.start()
            page.goto(view.url)
            page.wait_for_function(f"() => document.querySelectorAll('.tile').length === {args.cameras}", timeout=30_000)
            started_ms = time.time_ns() // 1_000_000
            written_before = counts["written"]
            page.evaluate("() => { window.__lags = []; window.__messages = 0; window.__states = 0; }")
            time.sleep(args.seconds)
            probe = page.evaluate("() => ({lags: window.__lags, messages: window.__messages, states: window.__states})")
            written = counts["written"] - written_before
            stop.set()
            writer.join(5)
            browser.close()
    finally:
        stop.set()
        keys = list(client.scan_iter(f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)

    lags = probe["lags"]
    last_third = [lag for at, lag in lags if at >= started_ms + args.seconds * 1000 * 2 / 3]
    result = {
        "bench": "view", "date": dt.date.today().isoformat(), "machine": machine(), "python": platform.python_version(),
        "versions": {name: importlib.metadata.version(name) for name in ("starlette", "uvicorn", "redis", "playwright")},
        "browser": browser_version, "cameras": args.cameras, "fps": args.fps,
        "seconds": args.seconds, "push_ms": args.push_ms, "preview_ms": args.preview_ms,
        "written": written, "writer_late_ticks": counts["late_ticks"],
        "received_states": probe["states"], "messages": probe["messages"],
        "messages_per_s": probe["messages"] / args.seconds,
        "screen_delay_ms": percentiles([lag for _, lag in lags]),
        "screen_delay_last_third_ms": percentiles(last_third),
    }
    out = REPO / "bench" / "results" / f"view-{args.cameras}x{args.fps:g}fps-{dt.datetime.now():%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    d, late = result["screen_delay_ms"], result["screen_delay_last_third_ms"]
    print("| cameras x fps | push ms | written | received | msgs/s | delay p50 / p95 / max ms | last third p95 ms |")
    print("|---|---|---|---|---|---|---|")
    print(f"| {args.cameras} x {args.fps:g} | {args.push_ms} | {written} | {probe['states']} | "
          f"{result['messages_per_s']:.1f} | {d['p50']:.0f} / {d['p95']:.0f} / {d['max']:.0f} | {late['p95']:.0f} |")
    print(f"results: {out.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
