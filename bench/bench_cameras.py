"""RTSP camera through an outage: how fast the producer is back, and how old its frames are.

    .venv/bin/python bench/bench_cameras.py                      # 20 fps camera, 10 fps producer, 10 s outage
    .venv/bin/python bench/bench_cameras.py --outage-s 30 --rounds 3

Debian's GStreamer RTSP server (scripts/rtsp_server.py, under /usr/bin/python3; scripts/cameras.sh
installs it) serves frames stamped with its clock; a ProducerApp reads it through PyAV and sends to
the real Kafka (LW_KAFKA_BOOTSTRAP, a topic base of its own, deleted afterwards). Each round: run
`--steady-s`, kill -9 the server, wait `--outage-s`, start it again on the same port. Reported per
round: restart -> first frame acknowledged (s), the gap the producer counted (s) and its estimate of
frames missed, the lag of frames (producer capture time minus the server's stamp) before the outage
and after the reconnect (p50/p95/max ms). Then newest-frame delivery: a reader at 2 fps behind the
camera, lag p50/max. Results: one JSON file in bench/results/ and Markdown rows on stdout.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "producer"))

from camera_helpers import RtspServer, stamped_ns  # noqa: E402
from linewatch.contract import parse_frame_record  # noqa: E402
from linewatch.settings import KafkaSettings  # noqa: E402
from linewatch.topics import ensure_topics  # noqa: E402
from producer.app import ProducerApp  # noqa: E402
from producer.capture import OutgoingFrame  # noqa: E402
from producer.settings import CameraSpec, ProducerSettings  # noqa: E402
from producer.stream import StreamOptions, StreamSource  # noqa: E402


def lag_ms(frame: OutgoingFrame) -> float:
    image = cv2.imdecode(np.frombuffer(frame.value, np.uint8), cv2.IMREAD_GRAYSCALE)
    return (parse_frame_record(frame.camera.encode(), frame.headers).capture_ns - stamped_ns(image)) / 1e6


def summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    a = np.asarray(values)
    return {"n": len(values), "p50": float(np.percentile(a, 50)), "p95": float(np.percentile(a, 95)), "max": float(a.max())}


def outage_rounds(args: argparse.Namespace, bootstrap: str) -> list[dict[str, Any]]:
    base = f"bench-cameras-{uuid.uuid4().hex[:8]}"
    ensure_topics(KafkaSettings(kafka_bootstrap=bootstrap, topic_base=base), partitions=1)
    server = RtspServer(fps=args.camera_fps)
    acks: list[tuple[float, OutgoingFrame]] = []
    lock = threading.Lock()

    def on_ack(frame: OutgoingFrame, _metadata: Any) -> None:
        with lock:
            acks.append((time.monotonic(), frame))

    settings = ProducerSettings(
        kafka_bootstrap=bootstrap, topic_base=base, metrics_port=0, stream_read_timeout_s=args.read_timeout_s,
        reconnect_backoff_min_s=0.2, reconnect_backoff_max_s=1.0,
        cameras=[CameraSpec(id="rtsp-1", source=server.url, fps=args.fps)],
    )
    app = ProducerApp(settings, on_ack=on_ack)
    rounds = []
    server.start()
    try:
        app.start()
        for _ in range(args.rounds):
            steady_from = time.monotonic()
            time.sleep(args.steady_s)
            gap_before = app.metrics.value("linewatch_producer_source_gap_seconds_total", "rtsp-1")
            missed_before = app.metrics.value("linewatch_producer_source_frames_missed_total", "rtsp-1")
            server.kill()
            time.sleep(args.outage_s)
            restarted = time.monotonic()
            server.start()
            while time.monotonic() < restarted + 60:
                with lock:
                    back = next((at for at, _ in acks if at >= restarted), None)
                if back is not None:
                    break
                time.sleep(0.02)
            time.sleep(args.steady_s)
            with lock:
                before = [lag_ms(f) for at, f in acks if steady_from <= at < restarted - args.outage_s]
                after = [lag_ms(f) for at, f in acks if at >= restarted]
            rounds.append({
                "outage_s": args.outage_s,
                "restart_to_first_frame_s": None if back is None else back - restarted,
                "gap_counted_s": app.metrics.value("linewatch_producer_source_gap_seconds_total", "rtsp-1") - gap_before,
                "frames_missed_estimate": app.metrics.value("linewatch_producer_source_frames_missed_total", "rtsp-1") - missed_before,
                "lag_before_ms": summary(before), "lag_after_ms": summary(after),
            })
    finally:
        app.stop()
        server.kill()
    return rounds


def slow_reader(args: argparse.Namespace) -> dict[str, Any]:
    with RtspServer(fps=args.camera_fps) as server:
        source = StreamSource(server.url, StreamOptions(open_timeout_s=5, read_timeout_s=2))
        source.open()
        lags, skipped = [], 0
        try:
            for _ in range(10):
                time.sleep(0.5)
                frame = source.read()
                lags.append((time.time_ns() - stamped_ns(frame.image)) / 1e6)
                skipped += frame.skipped
        finally:
            source.close()
    return {"reader_fps": 2, "lag_ms": summary(lags), "skipped": skipped}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--camera-fps", type=int, default=20)
    parser.add_argument("--fps", type=float, default=10.0, help="the producer's rate for the camera")
    parser.add_argument("--outage-s", type=float, default=10.0)
    parser.add_argument("--steady-s", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--read-timeout-s", type=float, default=1.0)
    args = parser.parse_args()
    bootstrap = os.environ.get("LW_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    result = {
        "when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cpus",
        "args": vars(args), "rounds": outage_rounds(args, bootstrap), "slow_reader": slow_reader(args),
    }
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"cameras-{dt.datetime.now():%Y%m%d-%H%M%S}.json"
    path.write_text(json.dumps(result, indent=2))
    print("| outage | restart -> first frame | gap counted | frames missed (est.) | lag before p50/p95/max | lag after p50/p95/max |")
    print("|---|---|---|---|---|---|")
    for r in result["rounds"]:
        b, a = r["lag_before_ms"], r["lag_after_ms"]
        print(f"| {r['outage_s']:g} s | {r['restart_to_first_frame_s']:.2f} s | {r['gap_counted_s']:.2f} s | "
              f"{r['frames_missed_estimate']:.0f} | {b['p50']:.1f} / {b['p95']:.1f} / {b['max']:.1f} ms | "
              f"{a['p50']:.1f} / {a['p95']:.1f} / {a['max']:.1f} ms |")
    s = result["slow_reader"]
    print(f"\nreader at 2 fps behind a {args.camera_fps} fps camera: lag p50 {s['lag_ms']['p50']:.1f} ms, "
          f"max {s['lag_ms']['max']:.1f} ms, {s['skipped']} frames replaced unseen")
    print(f"(written to {path.relative_to(REPO)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
