"""`linewatch-demo`: synthetic cameras -> Kafka -> worker -> Redis + alerts, with a live summary.

Needs nothing but the running services: if the model store has no `default@production`, a small
autoencoder is trained on the spot from synthetic defect-free frames (a real model; the demo prints
how long it took). Cameras render parts procedurally; cam-2 shows a defect for 3 s half way
through, so one alert shows up. Two stations (`demo_stations`, on by default): the first half of
the cameras is the `weld` station, served the default model by the recipe `demo-weld`; the rest is
the `press` station, served a second model trained on its own parts (`<demo_model>-press`) by
`demo-press`; at two thirds of the run the last camera changes over to `demo-weld`, which the demo
prints, and the summary shows each camera's recipe and model@version. The recipe table is put back
as it was when the demo ends (a `revert`, in the table's change history). Log lines (warnings meant for developers included) go to
`demo_log_file`, not the terminal, which shows the summary and each alert once. The live screen (`linewatch-view`) runs alongside; its URL is
printed first, and on a terminal it keeps serving after the cameras stop, until Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

import redis
import structlog
from kafka import KafkaConsumer
from pydantic import Field

from linewatch.contract import Alert
from linewatch.errors import LinewatchError, ServiceUnavailable
from linewatch.logs import configure_logging
from linewatch.settings import KafkaSettings, RedisSettings
from linewatch.startup import EXIT_BAD_SETTINGS, program_settings
from linewatch.topics import ensure_topics

log = structlog.get_logger(__name__)

# The demo's autoencoder: squared residual, smoothed, so the mask outlines a defect rather than
# the part's edges (see model_store/models/autoencoder.py).
DEMO_AE = {"map_kind": "l2", "smooth_map": True}


class DemoSettings(KafkaSettings, RedisSettings):
    """Settings of `linewatch-demo`."""

    model_root: Path = Field(Path("models"), description="Root folder of the model store.")
    demo_cameras: int = Field(4, ge=1, le=32, description="Synthetic cameras in the demo.")
    demo_fps: float = Field(8.0, gt=0, description="Frames per second of each demo camera.")
    demo_seconds: float = Field(30.0, gt=0, description="How long the demo cameras run.")
    demo_train_steps: int = Field(200, ge=1, description="Training steps of the demo's default model (the demo prints the time).")
    demo_train_seconds: float = Field(300.0, gt=0, description="Upper bound on the default model's training time.")
    demo_model: str = Field("default", description="Model name the demo serves (trained if missing).")
    demo_view_port: int = Field(
        8090, ge=0, le=65535, description="Port of the live view the demo starts on 127.0.0.1 (taken: any free port)."
    )
    demo_log_file: Path = Field(
        Path(".run/demo.log"), description="The demo's log lines (worker, view, Kafka client, training) go to this file."
    )
    demo_bridge: bool = Field(
        False, description="Also run linewatch-bridge (OPC UA + MQTT, docs/integrations.md) on the demo's verdicts.",
    )
    demo_stations: bool = Field(
        True, description="Two stations with recipes of their own (two models, one changeover the demo prints); "
        "off: one model for every camera.",
    )
    demo_keep_view: bool = Field(
        True, description="On a terminal, keep the view serving after the cameras stop, until Ctrl-C."
    )


def ensure_default_model(settings: DemoSettings, name: str = "", seeds: list[int] | None = None) -> str:
    """`<name>@production` (default: demo_model), trained from synthetic normal frames of the cameras
    `seeds` (default: every demo camera) when the store lacks it."""
    from model_store.quick import train_quick
    from model_store.store import ModelStore
    from producer.synthetic import SyntheticCamera

    name = name or settings.demo_model
    ref = f"{name}@production"
    store = ModelStore(settings.model_root)
    try:
        store.resolve(ref)
        return ref
    except LinewatchError:
        pass
    print(f"demo: no {ref} in {settings.model_root}; training one on synthetic normal frames "
          f"({settings.demo_train_steps} steps)...", flush=True)
    started = time.monotonic()
    frames = []
    for seed in seeds or range(1, settings.demo_cameras + 1):
        camera = SyntheticCamera(seed=seed, width=256, height=256, defect_rate=0.0)
        frames += [camera.render(seq)[0] for seq in range(1000, 1080)]
    name, version = train_quick(
        frames, settings.model_root, name, seconds=settings.demo_train_seconds,
        steps=settings.demo_train_steps, kwargs=DEMO_AE
    )
    print(f"demo: trained and published {name}@{version} as {ref} in {time.monotonic() - started:.0f} s", flush=True)
    return ref


class AlertTally:
    """Follows the alert topic in a thread; counts alerts per camera and keeps the last few."""

    def __init__(self, settings: DemoSettings) -> None:
        self.consumer = KafkaConsumer(
            settings.topics.alerts, **settings.kafka_client_kwargs(), group_id=None, auto_offset_reset="latest"
        )
        self.counts: dict[str, int] = {}
        self._fresh: list[Alert] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="alerts", daemon=True)

    def start(self) -> None:
        self.consumer.poll(timeout_ms=1000)  # join before the first alert can be sent
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.consumer.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            for records in self.consumer.poll(timeout_ms=300).values():
                for record in records:
                    alert = Alert.from_json(record.value)
                    with self._lock:
                        self.counts[alert.camera] = self.counts.get(alert.camera, 0) + 1
                        self._fresh.append(alert)

    def fresh(self) -> list[Alert]:
        """Alerts that arrived since the last call: each is printed once, under the summary it arrived in."""
        with self._lock:
            taken, self._fresh = self._fresh, []
        return taken


def summary(
    client: redis.Redis, settings: DemoSettings, sent: dict[str, int], start: dict[str, str], alerts: AlertTally,
    fresh: list[Alert] = (),
) -> str:
    """One table: per camera, this run's frames (history entries after `start`, the stream ID before it)."""
    keys = settings.keys
    lines = [f"{'camera':<8} {'sent':>6} {'scored':>7} {'anomalous':>9} {'last score':>10} {'latency ms':>10} "
             f"{'recipe':>11} {'model':>22} {'alerts':>6}"]
    for cam, since in start.items():
        latest = {k.decode(): v.decode() for k, v in client.hgetall(keys.latest(cam)).items()}
        entries = client.xrange(keys.history(cam), min=f"({since}")
        scored = len(entries)
        anomalous = sum(1 for _, f in entries if f.get(b"anomalous") == b"1")
        lines.append(
            f"{cam:<8} {sent.get(cam, 0):>6} {scored:>7} {anomalous:>9} "
            f"{float(latest.get('score', 'nan')):>10.3f} {float(latest.get('latency_ms', 'nan')):>10.1f} "
            f"{latest.get('recipe') or '-':>11} {_model_of(latest):>22} {alerts.counts.get(cam, 0):>6}"
        )
    for alert in fresh:
        lines.append(f"  ALERT {alert.camera} frame {alert.frame_seq} score {alert.score:.3f} "
                     f"boxes {alert.boxes[:2]} mask {alert.mask_key}")
    return "\n".join(lines)


def _model_of(latest: dict[str, str]) -> str:
    return f"{latest['model_name']}@{latest['model_version']}" if latest.get("model_name") else "-"


class Stations:
    """The demo's two stations: recipes, assignments, the changeover, and the table put back after."""

    def __init__(self, settings: DemoSettings, cameras: list[str], weld_ref: str, press_ref: str) -> None:
        from model_store.recipes import Recipe, RecipeBook
        from model_store.store import ModelStore

        store = ModelStore(settings.model_root)
        self.book = RecipeBook(store.backend, resolve=store.resolve)
        half = max(1, len(cameras) // 2)
        self.weld, self.press = cameras[:half], cameras[half:]
        self.first = self.book.set_recipe(Recipe(name="demo-weld", model=weld_ref, note="linewatch-demo"), "linewatch-demo")
        self.book.set_recipe(Recipe(name="demo-press", model=press_ref, debounce=(2, 4), note="linewatch-demo"), "linewatch-demo")
        for cam in self.weld:
            self.book.assign(cam, "demo-weld", "linewatch-demo")
        for cam in self.press:
            self.book.assign(cam, "demo-press", "linewatch-demo")
        print(f"demo: station weld {', '.join(self.weld)} -> recipe demo-weld ({weld_ref}); station press "
              f"{', '.join(self.press) or '-'} -> recipe demo-press ({press_ref})", flush=True)

    def changeover(self) -> None:
        camera = (self.press or self.weld)[-1]
        self.book.assign(camera, "demo-weld", "linewatch-demo")
        print(f"\ndemo: CHANGEOVER at {time.strftime('%H:%M:%S')}: {camera} -> recipe demo-weld; its frames "
              f"taken in from now on are scored by demo-weld's model (see the recipe column)", flush=True)

    def restore(self) -> None:
        seq = self.book.revert(self.first, "linewatch-demo")
        print(f"demo: recipe table put back as before the demo (change {seq}; history: "
              f"linewatch-models recipes history)", flush=True)


def _last_id(client: redis.Redis, stream: str) -> str:
    newest = client.xrevrange(stream, count=1)
    return newest[0][0].decode() if newest else "0-0"


def start_view(settings: DemoSettings):
    """The live view on loopback, reading the demo's Redis; on `demo_view_port`, or any free port if taken."""
    from view.server import ViewServer
    from view.settings import ViewSettings

    redis_only = settings.model_dump(include=set(RedisSettings.model_fields))
    redis_only.update(log_level="warning", log_json=settings.log_json)
    try:
        return ViewServer(ViewSettings(**redis_only, view_port=settings.demo_view_port)).start()
    except ServiceUnavailable:
        print(f"demo: port {settings.demo_view_port} is taken; the view takes a free one", flush=True)
        return ViewServer(ViewSettings(**redis_only, view_port=0)).start()


def _linger(settings: DemoSettings, url: str) -> None:
    if not (settings.demo_keep_view and sys.stdin.isatty()):
        return
    print(f"demo: the view keeps serving at {url} (review the alerts there); Ctrl-C stops it", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass


def run_demo(settings: DemoSettings) -> int:
    # The programs are imported where they run: the README tables and the tests read DemoSettings
    # through programs/registry.py, and should not load torch for it.
    from producer.app import ProducerApp, synthetic_specs
    from producer.settings import ProducerSettings
    from worker.app import Worker
    from worker.settings import WorkerSettings

    ensure_topics(settings, partitions=4)
    ref = ensure_default_model(settings)
    half = max(1, settings.demo_cameras // 2)
    press_ref = ensure_default_model(settings, f"{settings.demo_model}-press", list(range(half + 1, settings.demo_cameras + 1))
                                     or [1]) if settings.demo_stations else ""
    shared = settings.model_dump(include=set(KafkaSettings.model_fields) | set(RedisSettings.model_fields))
    shared.update(log_level="warning")
    kafka_only = {k: v for k, v in shared.items() if k in KafkaSettings.model_fields}
    cameras = [f"cam-{i}" for i in range(1, settings.demo_cameras + 1)]
    stations = Stations(settings, cameras, ref, press_ref) if settings.demo_stations else None
    worker = Worker(WorkerSettings(**shared, model=ref, model_root=settings.model_root, group_id="linewatch-demo",
                                   max_wait_ms=20, alert_cooldown_s=60, results_topic=settings.demo_bridge,
                                   recipe_poll_ms=500))
    worker.start()
    worker_thread = threading.Thread(target=worker.run, name="worker", daemon=True)
    worker_thread.start()
    frames = int(settings.demo_fps * settings.demo_seconds)
    specs = synthetic_specs(settings.demo_cameras, defect_rate=0.01, fps=settings.demo_fps,
                            defects={"cam-2": (frames // 2, frames // 2 + int(3 * settings.demo_fps))})
    # Sequence numbers restart at 0 on every run; the capture clock keeps results apart in Redis.
    producer = ProducerApp(ProducerSettings(**kafka_only, cameras=specs, max_frames=frames, metrics_port=0))
    alerts = AlertTally(settings)
    alerts.start()
    bridge = None
    if settings.demo_bridge:
        from bridge.demo import start_demo_bridge

        bridge, lines = start_demo_bridge(kafka_only, [s.id for s in specs])
        print("\n".join(lines), flush=True)
    view = start_view(settings)
    print(f"demo: live view at {view.url}  (camera wall; alert review at {view.url}/review)", flush=True)
    client = redis.Redis.from_url(settings.redis_url, **settings.redis_client_kwargs())
    cameras = [s.id for s in specs]
    start = {cam: _last_id(client, settings.keys.history(cam)) for cam in cameras}
    print(f"demo: {len(cameras)} cameras x {frames} frames at {settings.demo_fps:g} fps -> "
          f"{settings.topics.frames}; results under {settings.redis_prefix}:*; alerts on {settings.topics.alerts}")
    producer.start()
    changeover_at = time.monotonic() + settings.demo_seconds * 2 / 3 if stations else float("inf")
    try:
        deadline = time.monotonic() + settings.demo_seconds + 60
        while time.monotonic() < deadline:
            time.sleep(2)
            if time.monotonic() >= changeover_at:
                changeover_at = float("inf")
                stations.changeover()
            sent = {cam: producer.counts(cam).sent for cam in cameras}
            print("\n" + summary(client, settings, sent, start, alerts, alerts.fresh()), flush=True)
            scored = sum(len(client.xrange(settings.keys.history(c), min=f"({start[c]}")) for c in cameras)
            if producer.finished() and scored >= sum(sent.values()):
                break
    finally:
        producer.drain(10)
        producer.stop()
        worker.request_stop()
        worker_thread.join(timeout=60)
        alerts.stop()
        if bridge is not None:
            bridge.stop()
        if stations is not None:
            stations.restore()
    print("\ndemo: done. Redis keys: HGETALL lw:latest:cam-1, XRANGE lw:history:cam-1 - +, GET <mask_key>;"
          " alerts: .venv/bin/linewatch-alerts --from-beginning; stop services: make stop")
    try:
        _linger(settings, view.url)
    finally:
        view.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="linewatch-demo", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, help="how long the cameras run (LW_DEMO_SECONDS)")
    parser.add_argument("--cameras", type=int, help="number of synthetic cameras (LW_DEMO_CAMERAS)")
    parser.add_argument("--bridge", action="store_true", help="also serve the verdicts over OPC UA and MQTT (LW_DEMO_BRIDGE)")
    args = parser.parse_args(argv)
    overrides = {"demo_seconds": args.seconds, "demo_cameras": args.cameras, "demo_bridge": args.bridge or None}
    settings = program_settings("linewatch-demo", DemoSettings, overrides, log_level="warning")
    if settings is None:
        return EXIT_BAD_SETTINGS
    settings.demo_log_file.parent.mkdir(parents=True, exist_ok=True)
    # Log lines are for developers (a calibration note, kafka-python's warnings): a file, not the
    # screen, which shows the summary table.
    log_file = settings.demo_log_file.open("a", encoding="utf-8", buffering=1)
    configure_logging(settings.log_level, settings.log_json, stream=log_file)
    print(f"demo: log lines go to {settings.demo_log_file}", flush=True)
    try:
        return run_demo(settings)
    except LinewatchError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
