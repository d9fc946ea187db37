"""The worker program: wires consume -> decode -> batch -> infer -> publish -> commit.

Threads: this one (the consumer loop: poll, intake, pause/resume, commit, watching the others;
kafka-python's consumer is used from this thread only), a decode pool, the batch thread
(worker/batching.py), the publish thread (worker/publisher.py), the model watcher (the recipe
table and each loaded model's alias: worker/registry.py) and the HTTP endpoint (linewatch/health.py).

Lifecycle: `start()` connects and loads the model, `run()` consumes until `request_stop()` or
until a part of the worker fails, `drain()` finishes what was taken in (publish, then commit),
`stop()` leaves the group and closes. `run()` returns the process's exit code: 0 after a
requested stop, 3 when outputs refused or stayed down too long, 4 when a part of the worker died
(worker/supervision.py). SIGTERM always ends the process within drain_timeout_s + 10 s.
"""

from __future__ import annotations

import argparse
import gc
import os
import queue
import signal
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import redis
import structlog
import torch
from kafka import KafkaProducer
from kafka.errors import KafkaError

from linewatch import contract as c
from linewatch.connect import check_redis, kafka_connecting
from linewatch.contract import parse_frame_record
from linewatch.errors import FrameRejected, InputBroken, InputRefused, InputUnavailable, LinewatchError
from linewatch.health import HealthServer
from linewatch.logs import RateLimitedLog
from linewatch.startup import EXIT_BAD_SETTINGS, program_settings
from model_store.recipes import RecipeBook
from model_store.shadow_plans import ShadowBook
from model_store.store import ModelStore
from worker import metrics
from worker.batching import BatchPolicy, Batcher
from worker.checkpoint import Checkpoint
from worker.decode import DecodeLimits, InputSpec, decode_chunk, decode_routed
from worker.drift import DriftPolicy, DriftReport, DriftWatch
from worker.engine import Engine, pick_device
from worker.frames_input import FramesInput, Unreadable
from worker.inputs import open_frames_input
from worker.delivery import Delivery
from worker.publisher import Publisher
from worker.verdicts import ClockCheck, Pictures, VerdictBuilder, VerdictPolicy
from worker.records import STOP, Item
from worker.registry import ModelRegistry, RecipeWatch, RegistryWatcher
from worker.serving import ModelHolder
from worker.shadow import RolloutWatch, ShadowPolicy, ShadowRunner
from worker.settings import WorkerSettings
from worker.sinks import Counting, Debounce, KafkaSender, KafkaTopicCheck, ResultWriter, Retention
from worker.supervision import EXIT_DEAD_PART, EXIT_OUTPUTS, OutputHealth, Supervisor

log = structlog.get_logger(__name__)

LAG_EVERY_S = 5.0
FULL_PAUSE_AFTER_S = 2.0
COMMIT_STUCK_FACTOR = 3  # commits failing for this many stall_after_s end the process
LOOP_STUCK_AFTER_S = 120.0  # one turn of the consumer loop never takes this long unless something hangs
OUTPUT_LOG_EVERY_S = 60.0
# A write unanswered this long makes the worker not ready at once; the client's own timeout (15 s for
# Kafka sends) then names the cause. Healthy writes take milliseconds.
OUTPUT_WAIT_NOT_READY_S = 5.0
HARD_EXIT_GRACE_S = 8.0  # SIGTERM -> exit within drain_timeout_s + 10 s, whatever the state


class Worker:
    """One worker process's parts. What needs no connection is made here; `start()` connects
    (model, Kafka clients) and starts the threads."""

    def __init__(self, settings: WorkerSettings, store: ModelStore | None = None) -> None:
        s = self.s = settings
        self.store = store or ModelStore(settings.model_root)
        self.topics = settings.topics
        self.supervisor = Supervisor()
        self.health = OutputHealth()
        self.inbox: queue.Queue[object] = queue.Queue()
        self.outbox: queue.Queue[object] = queue.Queue()
        self.device = pick_device(s.device)
        def make_engine(module: torch.nn.Module, spec: InputSpec) -> Engine:
            return Engine(module, spec, self.device, s.amp, s.buckets, s.cuda_streams, s.cuda_graphs, s.compile)

        self.holder = ModelHolder(self.store, s.model, make_engine, s.model_poll_s)  # LW_MODEL: served without recipes
        self.registry = ModelRegistry(self.store, make_engine, s.model_poll_s, s.max_loaded_models, self.holder)
        self.recipes = RecipeWatch(RecipeBook(self.store.backend), self.registry)
        self.watcher = RegistryWatcher(self.recipes, self.registry, s.recipe_poll_ms / 1000, s.model_poll_s, self.supervisor)
        self.limits = DecodeLimits(max_bytes=s.kafka_max_message_bytes, max_pixels=s.max_frame_pixels)
        self.decode_pool = ThreadPoolExecutor(s.decode_threads, thread_name_prefix="decode")
        self.batcher = Batcher(
            inbox=self.inbox, outbox=self.outbox, registry=self.registry,
            policy=BatchPolicy(s.max_batch, s.max_wait_ms / 1000), supervisor=self.supervisor,
        )
        # redis-py and the topic check connect on first use.
        self.redis = redis.Redis.from_url(s.redis_url, **s.redis_client_kwargs(), socket_timeout=5, socket_connect_timeout=5)
        self.topic_check = KafkaTopicCheck(s.kafka_client_kwargs())
        self.writer = ResultWriter(self.redis, s.keys, self._retention(), Debounce(s.debounce_n, s.debounce_m, s.alert_cooldown_s),
                                   Counting(s.calendar, s.counts_ttl_s))
        self.shadow = ShadowRunner(
            ShadowBook(self.store.backend), self.store, self.holder.make_engine, self.redis, s.keys,
            ShadowPolicy(s.shadow_queue_batches, s.shadow_max_batch, s.shadow_ttl_s, s.shadow_poll_s),
            busy=lambda: not self.inbox.empty() or self.batcher.working(), supervisor=self.supervisor,
        ) if s.shadow else None
        self.rollout = RolloutWatch(self.store, self.writer.recalibrate_events, s.rollout_watch_frames, s.rollout_alpha,
                                    s.worker_id) if s.rollout_watch_frames else None
        # Made by start(): they connect to Kafka as they are made.
        self.producer: KafkaProducer | None = None
        self.input: FramesInput | None = None
        self.checkpoint: Checkpoint | None = None
        self.publisher: Publisher | None = None
        self.http: HealthServer | None = None
        self._stop = threading.Event()
        self._draining = False
        self._full_since: float | None = None  # when the in-flight limit was reached (_backpressure)
        self._heartbeat = time.monotonic()
        self._last_lag = 0.0
        self._outputs_logged = float("-inf")
        self._input_refused_since: float | None = None
        self._log = RateLimitedLog(interval_s=10.0)

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        s = self.s
        torch.set_num_threads(s.inference_threads())
        # Defence in depth behind the header check: OpenCV itself refuses larger images.
        os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(s.max_frame_pixels))
        metrics.camera_label.max_cameras = s.metrics_max_cameras
        self.recipes.refresh()  # routes, and the models the table names loaded and warmed, before the first frame
        if self.recipes.routes is None:
            self.registry.load_default()  # no recipes: LW_MODEL must load, as it always had to
        kafka_kwargs = s.kafka_client_kwargs()
        if s.create_topics:
            from linewatch.topics import ensure_topics

            ensure_topics(s, s.create_topics)
        self.producer = KafkaProducer(
            **kafka_kwargs, acks="all", linger_ms=5, max_request_size=s.kafka_max_message_bytes + 65536,
            max_block_ms=10_000, client_id=f"{s.worker_id}-out",
        )
        self.input = open_frames_input(s.kafka_consumer, self.topics.frames, kafka_kwargs, {
            "group_id": s.group_id, "client_id": s.worker_id, "max_poll_records": s.max_poll_records,
            "session_timeout_ms": s.session_timeout_ms, "heartbeat_interval_ms": s.session_timeout_ms // 4,
            "max_partition_fetch_bytes": s.kafka_max_message_bytes + 65536,
            "fetch_max_bytes": max(52428800, s.kafka_max_message_bytes * 2),
        })
        self.checkpoint = Checkpoint(self.input.commit, self.input.commit_async)
        self.publisher = self._publisher(self.checkpoint, KafkaSender(self.producer, self.topic_check))
        self.input.subscribe(self.checkpoint.released)
        self.batcher.start()
        self.publisher.start()
        if self.shadow is not None:
            self.shadow.start()
        self.watcher.start()
        if s.http_port:
            self.http = HealthServer(s.http_host, s.http_port, self.liveness, self.readiness)
            self.http.start()
        threading.Thread(target=self._watch_loop, name="loop-watchdog", daemon=True).start()
        # What start-up made (torch, the model, the clients) lives as long as the process: keep it out
        # of the garbage collector's full passes, which otherwise stall every thread for milliseconds.
        gc.freeze()
        log.info("worker started", worker=s.worker_id, group=s.group_id, topic=self.topics.frames,
                 models=self.registry.loaded(), recipes=self.recipes.routes is not None, device=str(self.device))

    def _publisher(self, checkpoint: Checkpoint, sender: KafkaSender) -> Publisher:
        s = self.s
        drift = DriftWatch(DriftPolicy(s.drift_window, s.drift_every, s.drift_image_pct, s.drift_score_rise), s.max_cameras)
        return Publisher(
            outbox=self.outbox, checkpoint=checkpoint, writer=self.writer, sender=sender, topics=self.topics,
            verdicts=VerdictBuilder(
                s.keys, VerdictPolicy(s.threshold, dict(s.camera_thresholds), s.masks, s.threshold_refresh_s),
                Pictures(s.previews, s.preview_width, s.preview_interval_ms / 1000, s.max_cameras),
                ClockCheck(s.clock_max_ahead_s, s.clock_max_age_s), s.worker_id,
            ),
            delivery=Delivery(self.health, s.publish_retry_max_s),
            drift=DriftReport(drift, self.writer.recalibrate_events, s.worker_id),
            supervisor=self.supervisor, max_dead_letter_bytes=s.kafka_max_message_bytes, results_topic=s.results_topic,
            watchers=[w for w in (self.shadow, self.rollout) if w is not None],
        )

    def _retention(self) -> Retention:
        s = self.s
        return Retention(
            result_ttl_s=s.result_ttl_s, history_ttl_s=s.history_ttl_s, history_maxlen=s.history_maxlen,
            mask_ttl_s=s.mask_ttl_s, frame_ttl_s=s.frame_ttl_s, dedupe_ttl_s=s.dedupe_ttl_s,
            alerts_maxlen=s.alerts_maxlen, cameras_max=s.max_cameras, probation_max=s.probation_max_cameras,
            admit_frames=s.camera_admit_frames, blobs_max=s.max_blobs_per_camera,
        )

    def request_stop(self) -> None:
        self._stop.set()

    def run(self) -> int:
        """Consume until request_stop() or a failure; then drain and stop. Returns the exit code."""
        try:
            while not self._stop.is_set() and not self.supervisor.failed.is_set():
                self.step()
        except BaseException as exc:  # noqa: BLE001 - the consumer loop itself died: say why, then exit
            log.exception("consumer loop died")
            self.supervisor.fail("consumer", f"{type(exc).__name__}: {exc}")
        finally:
            try:
                self.drain()
            finally:
                self.stop()
        return self.supervisor.exit_code

    def step(self, poll_ms: int = 100) -> None:
        """One turn of the consumer loop (public so tests can drive a worker by hand)."""
        assert self.input is not None
        self._heartbeat = time.monotonic()
        try:
            if self._backpressure():
                records, unreadable = self.input.poll(poll_ms, self.s.max_poll_records)
            else:  # a full pipeline: wait for acknowledgements instead
                records, unreadable = [], []
                self.checkpoint.apply(wait_s=poll_ms / 1000)
        except InputUnavailable as exc:
            if self._log.allow("poll") is not None:
                log.warning("poll failed; retrying", error=str(exc))
            time.sleep(0.5)
            return
        except InputRefused as exc:
            self._input_refused(str(exc))
            time.sleep(1.0)
            return
        except InputBroken as exc:
            self.supervisor.fail("consumer", str(exc), EXIT_DEAD_PART)
            return
        self._input_refused_since = None
        self.checkpoint.apply()
        self._intake(records)
        for bad in unreadable:
            self._intake_unreadable(bad)
        self.checkpoint.apply()
        self.checkpoint.commit()
        if self.checkpoint.failing_for() > COMMIT_STUCK_FACTOR * self.s.stall_after_s:
            # Commits have failed for minutes: the client is stuck (a rebalance that never ends), or
            # the broker has been away that long. A restart gives the group a fresh member.
            self.supervisor.fail("consumer", f"commits failing for {self.checkpoint.failing_for():.0f} s: "
                                 f"{self.checkpoint.last_error}", EXIT_DEAD_PART)
        self._watch_outputs()
        self._measure_lag()
        if 0 < len(records) < self.s.max_batch:
            # A trickle: let frames gather at the broker for a moment, so the next fetch brings a
            # handful. One fetch per frame costs the CPU the rest of the path needs (intake_linger_ms).
            time.sleep(self.s.intake_linger_ms / 1000)

    def drain(self) -> None:
        """Finish every frame taken in: publish it and commit, within drain_timeout_s."""
        if self._draining or self.input is None:
            return
        self._draining = True
        deadline = time.monotonic() + self.s.drain_timeout_s
        self.inbox.put(STOP)
        if not self.supervisor.failed.is_set():
            while self.checkpoint.in_flight() and time.monotonic() < deadline and not self.supervisor.failed.is_set():
                self.checkpoint.apply(wait_s=0.1)
                self.checkpoint.commit(force=True)
            self.batcher.join(timeout=max(0.0, deadline - time.monotonic()))
        if self.checkpoint.in_flight():
            log.warning("drain incomplete; unpublished frames stay uncommitted", in_flight=self.checkpoint.in_flight())
            self.publisher.abort()
        else:
            self.outbox.put(STOP)
        self.publisher.join(timeout=5)
        self.checkpoint.finish(self.input.poll_paused, attempts=30)
        log.info("worker drained", in_flight=self.checkpoint.in_flight())

    def stop(self) -> None:
        self.watcher.stopping.set()
        if self.watcher.is_alive():
            self.watcher.join(timeout=10)
        if self.shadow is not None:
            self.shadow.stop()
        if self.input is not None:
            self.input.close()
        if self.producer is not None:
            self.producer.close(timeout=5)
        self.topic_check.close()
        self.decode_pool.shutdown(wait=False, cancel_futures=True)
        self.redis.close()
        if self.http is not None:
            self.http.stop()
        # Hand what start() froze back to the collector: frozen objects are never collected, not even at
        # exit, and triton's nanobind types (imported by torch's optimiser and dynamo) then print ~30 lines
        # of "nanobind: leaked ..." when the interpreter ends.
        gc.unfreeze()
        log.info("worker stopped", exit_code=self.supervisor.exit_code)  # the cause was logged when it happened

    # -- intake ---------------------------------------------------------------------------------
    def _new_item(self, tp: tuple[str, int], offset: int, key: bytes | None, value: bytes | None,
                  headers: Any, timestamp_ms: int) -> Item:
        epoch = self.checkpoint.take(tp, offset)
        return Item(tp, offset, epoch, key, value or b"", list(headers or []), timestamp_ms, time.monotonic(), time.time_ns())

    def _intake(self, records: list[Any]) -> None:
        """Take a poll's records in: parse each, decode the good ones in a few pool tasks (one per
        decode thread), queue all of them for the batch thread in offset order."""
        items, frames = [], []
        cameras: Counter[str] = Counter()
        for record in records:
            item = self._new_item((record.topic, record.partition), record.offset, record.key, record.value,
                                  record.headers, record.timestamp)
            try:
                item.meta = parse_frame_record(record.key, item.headers)
            except FrameRejected as exc:
                item.rejection = exc
            else:
                cameras[item.meta.camera] += 1
                frames.append(item)
            items.append(item)
        for camera, n in cameras.items():
            metrics.FRAMES_IN.labels(metrics.camera_label(camera)).inc(n)
        routes = self.recipes.routes  # one table snapshot routes the whole poll (worker/routing.py)
        if routes is not None:
            frames = self._route(frames, routes)
        default_spec = self._spec(self.holder.ref)
        size = -(-len(frames) // self.s.decode_threads) if frames else 0
        for start in range(0, len(frames), size or 1):
            chunk = frames[start : start + size]
            try:
                if routes is None:
                    future = self.decode_pool.submit(_timed_decode, [(i.value, i.meta) for i in chunk], default_spec, self.limits)
                else:
                    jobs = [(i.value, i.meta, self._spec(i.route.model), i.route.box) for i in chunk]
                    future = self.decode_pool.submit(_timed_decode_routed, jobs, self.limits)
            except RuntimeError as exc:  # the pool was shut down: no frame can be decoded any more
                self.supervisor.fail("decode pool", str(exc))
                for item in chunk:
                    item.rejection = FrameRejected(c.R_UNDECODABLE, "worker stopping: decode pool closed")
                continue
            for index, item in enumerate(chunk):
                item.decoded, item.decoded_index = future, index
        for item in items:
            self.inbox.put(item)

    def _route(self, frames: list[Item], routes: Any) -> list[Item]:
        """Give each frame its route; one without a recipe is rejected (no_recipe) and leaves `frames`."""
        routed = []
        for item in frames:
            item.route = routes.route(item.meta.camera)
            if item.route is None:
                item.rejection = FrameRejected(
                    c.R_NO_RECIPE, f"camera {item.meta.camera!r}: no recipe assigned and no default (table {routes.seq})")
            else:
                routed.append(item)
        return routed

    def _spec(self, ref: str) -> InputSpec:
        """The input a model wants, for decoding; a model never loaded yet: the default's (its batch re-fits)."""
        spec = self.registry.spec(ref) or self.registry.spec(self.holder.ref)
        return spec or InputSpec(256, 256, 3)

    def _intake_unreadable(self, bad: Unreadable) -> None:
        item = self._new_item(bad.tp, bad.offset, bad.key, bad.value, bad.headers, bad.timestamp_ms)
        item.rejection = FrameRejected(c.R_UNPARSEABLE, bad.detail)
        self.inbox.put(item)

    # -- backpressure, outputs, health ------------------------------------------------------------
    def _backpressure(self, now: float | None = None) -> bool:
        """Whether to take records this turn (False: wait for acknowledgements instead of polling).

        A full pipeline (the in-flight limit) first only stops polling: a burst drains in
        milliseconds, and what kafka-python has fetched stays. Pausing the partitions is kept for a
        pipeline that stays full FULL_PAUSE_AFTER_S, and for outputs that are down: kafka-python
        drops what it had fetched for paused partitions, to fetch it again after the resume, so
        pausing on every full moment would fetch the same records over and over under load.
        """
        assert self.input is not None
        now = time.monotonic() if now is None else now
        full = self.checkpoint.in_flight() >= self.s.inflight_frames
        self._full_since = (self._full_since or now) if full else None
        stuck = full and now - self._full_since > FULL_PAUSE_AFTER_S
        if stuck or not self.health.ok:
            if self.input.pause_all():
                metrics.PAUSED.set(1)
                log.info("partitions paused", reason="in-flight limit" if stuck else "outputs down")
            return True  # polls with every partition paused keep the group's rebalances going
        if self.input.resume_all():
            metrics.PAUSED.set(0)
            log.info("partitions resumed")
        return not full

    def _watch_outputs(self) -> None:
        failing = self.health.failing()
        metrics.OUTPUTS_OK.set(0 if failing else 1)
        if not failing:
            self._outputs_logged = float("-inf")
            return
        worst = next((f for f in failing if f.refused), failing[0])
        now = time.monotonic()
        age = now - worst.since
        kind = "refused" if worst.refused else "unavailable"
        if now - self._outputs_logged >= OUTPUT_LOG_EVERY_S:
            self._outputs_logged = now
            log.error(f"outputs {kind}", target=worst.target, cause=worst.cause, for_s=round(age, 1))
        limit = self.s.fatal_after_s if worst.refused else self.s.outage_exit_after_s
        if limit and age > limit:
            self.supervisor.fail("outputs", f"{worst.target} {kind} for {age:.0f} s: {worst.cause}", EXIT_OUTPUTS)

    def _input_refused(self, cause: str) -> None:
        now = time.monotonic()
        if self._input_refused_since is None:
            self._input_refused_since = now
            log.error("input refused", cause=cause)
        if now - self._input_refused_since > self.s.fatal_after_s:
            self.supervisor.fail("input", cause, EXIT_OUTPUTS)

    def _watch_loop(self) -> None:
        """End the process when the consumer loop stops turning (stuck inside a client call): a
        stuck loop holds its partitions and scores nothing, and no thread of ours can unstick it."""
        while not self._stop.wait(5.0):
            age = time.monotonic() - self._heartbeat
            if age > LOOP_STUCK_AFTER_S and not self._draining:
                log.error("consumer loop stuck; exiting", loop_age_s=round(age), exit_code=EXIT_DEAD_PART)
                os._exit(EXIT_DEAD_PART)

    def _measure_lag(self) -> None:
        now = time.monotonic()
        if now - self._last_lag < LAG_EVERY_S:
            return
        self._last_lag = now
        for (topic, partition), lag in self.input.lag().items():
            metrics.LAG.labels(topic, str(partition)).set(lag)

    def _outputs_detail(self) -> str:
        parts = [f"{'refused' if f.refused else 'unavailable'}: {f.target}: {f.cause}" for f in self.health.failing()]
        parts += [f"waiting: {target}: no answer for {age:.0f} s" for target, age in self.health.waiting(OUTPUT_WAIT_NOT_READY_S)]
        return "; ".join(parts) or "ok"

    def liveness(self) -> tuple[bool, dict]:
        age = time.monotonic() - self._heartbeat
        threads = self.batcher.is_alive() and self.publisher is not None and self.publisher.is_alive()
        ok = age < 60 and threads and not self.supervisor.failed.is_set()
        return ok, {"loop_age_s": round(age, 2), "threads_alive": threads, "failed": self.supervisor.cause}

    def readiness(self) -> tuple[bool, dict]:
        """Ready with at least one model serving: a model that loads in no version dead-letters only the
        cameras routed to it (named in `models_failing`), so the worker stays in service for the rest."""
        loaded = self.registry.loaded()
        current = self.holder.current if self.recipes.routes is None else (next(iter(loaded.values()), None))
        assigned = len(self.input.assignment()) if self.input else 0
        busy = self.batcher.busy_since
        batch_stalled = busy is not None and time.monotonic() - busy > self.s.stall_after_s
        stalled = [f"{t}:{p}" for t, p in self.checkpoint.stalled(self.s.stall_after_s)]
        ok = (
            current is not None and assigned > 0 and not batch_stalled and not stalled and self.health.ok
            and not self.health.waiting(OUTPUT_WAIT_NOT_READY_S)
            and self._input_refused_since is None and not self._draining and not self.supervisor.failed.is_set()
        )
        return ok, {
            "model": f"{self.holder.current.name}@{self.holder.current.version}" if self.holder.current else None,
            "model_fallback": self.holder.fallback, "models": loaded, "models_failing": self.registry.failing(),
            "recipes": self.recipes.routes.seq if self.recipes.routes is not None else None,
            "partitions": assigned, "batch_stalled": batch_stalled, "stalled_partitions": stalled,
            "outputs": self._outputs_detail(), "input_refused": self._input_refused_since is not None,
            "draining": self._draining, "failed": self.supervisor.cause,
            "shadow": self.shadow.loaded() if self.shadow is not None else [],
        }


def _timed_decode(frames: list[tuple[bytes, Any]], spec: Any, limits: DecodeLimits) -> list[Any]:
    started = time.monotonic()
    try:
        return decode_chunk(frames, spec, limits)
    finally:
        metrics.STAGE_DECODE.observe((time.monotonic() - started) / max(1, len(frames)))


def _timed_decode_routed(frames: list[tuple[Any, ...]], limits: DecodeLimits) -> list[Any]:
    started = time.monotonic()
    try:
        return decode_routed(frames, limits)
    finally:
        metrics.STAGE_DECODE.observe((time.monotonic() - started) / max(1, len(frames)))


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="linewatch-worker",
        description="Consume camera frames from Kafka, score them with a model from the store, publish "
        "scores and masks to Redis and alerts to Kafka. Settings come from LW_* environment variables "
        "(README: Settings); the options below override a few of them. Exit codes: 0 stopped on request, "
        "1 could not start, 2 bad settings, 3 outputs refused or down too long, 4 a part of the worker died.",
    )
    parser.add_argument("--model", help="model reference, e.g. draem@production (LW_MODEL)")
    parser.add_argument("--model-root", help="model store folder (LW_MODEL_ROOT)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], help="inference device (LW_DEVICE)")
    parser.add_argument("--http-port", type=int, help="metrics/health port, 0 = off (LW_HTTP_PORT)")
    return parser.parse_args(argv)


def _on_signal(worker: Worker) -> None:
    """Stop intake and drain; and make sure the process ends even if draining hangs."""
    first = not worker._stop.is_set()
    worker.request_stop()
    if first:
        timer = threading.Timer(worker.s.drain_timeout_s + HARD_EXIT_GRACE_S, _hard_exit)
        timer.daemon = True
        timer.start()


def _hard_exit() -> None:
    log.error("shutdown did not finish in time; exiting without a clean stop")
    os._exit(EXIT_DEAD_PART)


def main(argv: list[str] | None = None) -> int:
    settings = program_settings("linewatch-worker", WorkerSettings, vars(_parse_args(argv)))
    if settings is None:
        return EXIT_BAD_SETTINGS
    worker = Worker(settings)
    try:
        # Credentials and TLS are checked first, so a wrong one is named instead of timing out later.
        check_redis(settings, "linewatch-worker")
        with kafka_connecting(settings, "linewatch-worker"):
            worker.start()
    except (LinewatchError, KafkaError, redis.RedisError) as exc:
        log.error("worker could not start", error=str(exc), kind=type(exc).__name__)
        return 1
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: _on_signal(worker))
    code = worker.run()
    # Everything that must end cleanly has: offsets committed, clients closed. A drain that ran out
    # of time leaves the batch thread inside torch; interpreter shutdown then tears torch's thread
    # pool down under it and the process aborts ("terminate called without an active exception",
    # exit 134/139 instead of the code decided above). Exit now, with that code.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
