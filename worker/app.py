"""The worker program: wires consume -> decode -> batch -> infer -> publish -> commit.

Threads: this one (the Kafka consumer: poll, intake, pause/resume, commit; kafka-python's
consumer is used from this thread only), a decode pool, the batch thread (worker/batching.py),
the publish thread (worker/publisher.py), the model watcher and the HTTP endpoint.

Lifecycle: `start()` connects and loads the model, `run()` consumes until `request_stop()`,
`drain()` finishes what was taken in (publish, then commit), `stop()` leaves the group and closes.
"""

from __future__ import annotations

import argparse
import queue
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import redis
import structlog
import torch
from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.coordinator.assignors.cooperative_sticky import CooperativeStickyAssignor
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from linewatch.connect import check_redis, kafka_connecting
from linewatch.contract import parse_frame_headers
from linewatch.errors import FrameRejected, LinewatchError, ServiceUnavailable
from linewatch.logs import configure_logging
from linewatch.settings import check_environment
from model_store.store import ModelStore
from worker import metrics
from worker.batching import STOP, BatchPolicy, Batcher, Item
from worker.debounce import Debouncer
from worker.decode import prepare
from worker.engine import Engine, pick_device
from worker.health import HealthServer
from worker.offsets import OffsetBook
from worker.publish import KafkaSender, ResultWriter
from worker.publisher import Publisher, Verdicts
from worker.serving import ModelHolder
from worker.settings import WorkerSettings

log = structlog.get_logger(__name__)

COMMIT_EVERY_S = 0.25
LAG_EVERY_S = 5.0


class _Rebalance(ConsumerRebalanceListener):
    """kafka-python 3 calls these on its I/O thread, where a blocking call (a commit) fails: they
    only hand the partitions to the consumer thread, which forgets them on its next turn. Work
    already finished for them but not yet committed is redone by the next owner; the idempotent
    Redis writes make that invisible."""

    def __init__(self, worker: "Worker") -> None:
        self.worker = worker

    def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        self.worker._released.put(list(revoked))

    def on_partitions_lost(self, lost: list[TopicPartition]) -> None:
        self.worker._released.put(list(lost))

    def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        log.info("partitions assigned", partitions=[f"{tp.topic}:{tp.partition}" for tp in assigned])


class Worker:
    def __init__(self, settings: WorkerSettings, store: ModelStore | None = None) -> None:
        self.s = settings
        self.store = store or ModelStore(settings.model_root)
        self.topics = settings.topics
        self.book = OffsetBook()
        self.inbox: queue.Queue[object] = queue.Queue()
        self.outbox: queue.Queue[object] = queue.Queue()
        self.acked: queue.Queue[tuple[tuple[str, int], int, int]] = queue.Queue()
        self._released: queue.Queue[list[TopicPartition]] = queue.Queue()
        self._stop = threading.Event()
        self._draining = False
        self._outputs_ok = True
        self._paused: set[TopicPartition] = set()
        self._heartbeat = time.monotonic()
        self._last_commit = 0.0
        self._last_lag = 0.0
        self.consumer: KafkaConsumer | None = None
        self.http: HealthServer | None = None

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        s = self.s
        if s.torch_threads:
            torch.set_num_threads(s.torch_threads)
        device = pick_device(s.device)
        self.holder = ModelHolder(
            self.store, s.model,
            lambda module, spec: Engine(module, spec, device, s.amp, s.buckets, s.cuda_streams),
            s.model_poll_s,
        )
        self.holder.load_initial()
        self.decode_pool = ThreadPoolExecutor(s.decode_threads, thread_name_prefix="decode")
        kafka_kwargs = s.kafka_client_kwargs()
        if s.create_topics:
            from linewatch.topics import ensure_topics

            ensure_topics(s, s.create_topics)
        self.producer = KafkaProducer(
            **kafka_kwargs, acks="all", linger_ms=5, max_request_size=s.kafka_max_message_bytes + 65536,
            client_id=f"{s.worker_id}-out",
        )
        self.redis = redis.Redis.from_url(s.redis_url, **s.redis_client_kwargs(), socket_timeout=5, socket_connect_timeout=5)
        self.writer = ResultWriter(self.redis, s.keys, s.worker_id, s.result_ttl_s, s.mask_ttl_s, s.history_maxlen)
        self.batcher = Batcher(self.inbox, self.outbox, self.holder, BatchPolicy(s.max_batch, s.max_wait_ms / 1000))
        self.publisher = Publisher(
            self.outbox, self.acked, self.writer, KafkaSender(self.producer), self.topics,
            Debouncer(s.debounce_n, s.debounce_m, s.alert_cooldown_s),
            Verdicts(s.threshold, dict(s.camera_thresholds), s.masks, s.threshold_refresh_s, s.kafka_max_message_bytes),
            s.publish_retry_max_s, on_health=self._set_outputs_ok,
        )
        self.consumer = KafkaConsumer(
            **kafka_kwargs,
            group_id=s.group_id,
            client_id=s.worker_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            partition_assignment_strategy=[CooperativeStickyAssignor],
            max_poll_records=s.max_poll_records,
            max_partition_fetch_bytes=s.kafka_max_message_bytes + 65536,
            fetch_max_bytes=max(52428800, s.kafka_max_message_bytes * 2),
        )
        # Know the topic's partitions before the first join: an assignor that joins without them
        # assigns nothing, and the group may not rebalance again until another member comes.
        if not self.consumer.partitions_for_topic(self.topics.frames):
            raise ServiceUnavailable(
                f"topic {self.topics.frames} does not exist; create it (LW_CREATE_TOPICS=N or "
                "linewatch-producer --create-topics)"
            )
        self.consumer.subscribe([self.topics.frames], listener=_Rebalance(self))
        self.batcher.start()
        self.publisher.start()
        self.holder.start()
        if s.http_port:
            self.http = HealthServer(s.http_host, s.http_port, self.liveness, self.readiness)
            self.http.start()
        log.info("worker started", worker=s.worker_id, group=s.group_id, topic=self.topics.frames,
                 model=f"{self.holder.current.name}@{self.holder.current.version}", device=str(device))

    def request_stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        """Consume until request_stop(); then drain and stop."""
        try:
            while not self._stop.is_set():
                self.step()
        finally:
            self.drain()
            self.stop()

    def step(self, poll_ms: int = 100) -> None:
        """One turn of the consumer loop (public so tests can drive a worker by hand)."""
        assert self.consumer is not None
        self._heartbeat = time.monotonic()
        self._backpressure()
        try:
            polled = self.consumer.poll(timeout_ms=poll_ms, max_records=self.s.max_poll_records)
        except KafkaError as exc:
            log.warning("poll failed; retrying", error=str(exc))
            time.sleep(0.5)
            return
        self._release()
        for records in polled.values():
            for record in records:
                self._intake(record)
        self._apply_acks()
        self._commit()
        self._measure_lag()

    def drain(self) -> None:
        """Finish every frame taken in: publish it and commit, within drain_timeout_s."""
        if self._draining or self.consumer is None:
            return
        self._draining = True
        deadline = time.monotonic() + self.s.drain_timeout_s
        self.inbox.put(STOP)
        while self.book.in_flight() and time.monotonic() < deadline:
            self._apply_acks(wait_s=0.1)
            self._commit(force=True)
        self.batcher.join(timeout=max(0.0, deadline - time.monotonic()))
        if self.book.in_flight():
            log.warning("drain timed out; unpublished frames stay uncommitted", in_flight=self.book.in_flight())
            self.publisher.abort()
        else:
            self.outbox.put(STOP)
        self.publisher.join(timeout=5)
        self._final_commit()
        log.info("worker drained", in_flight=self.book.in_flight())

    def stop(self) -> None:
        self.holder.stop()
        if self.consumer is not None:
            self.consumer.close(autocommit=False)  # leaves the group: its partitions move on at once
        self.producer.close(timeout=5)
        self.decode_pool.shutdown(wait=False, cancel_futures=True)
        self.redis.close()
        if self.http is not None:
            self.http.stop()
        log.info("worker stopped")

    # -- intake ---------------------------------------------------------------------------------
    def _intake(self, record: Any) -> None:
        tp = (record.topic, record.partition)
        epoch = self.book.take(tp, record.offset)
        headers = list(record.headers or [])
        item = Item(tp, record.offset, epoch, record.key, record.value or b"", headers, time.monotonic())
        try:
            item.meta = parse_frame_headers(headers, record.key)
            metrics.FRAMES_IN.labels(item.meta.camera).inc()
            spec = self.holder.current.spec
            item.decoded = self.decode_pool.submit(_timed_prepare, item.value, item.meta, spec, self.s.kafka_max_message_bytes)
        except FrameRejected as exc:
            item.rejection = exc
        self.inbox.put(item)

    # -- commit ---------------------------------------------------------------------------------
    def _apply_acks(self, wait_s: float = 0.0) -> None:
        try:
            tp, offset, epoch = self.acked.get(timeout=wait_s) if wait_s else self.acked.get_nowait()
        except queue.Empty:
            return
        self.book.ack(tp, offset, epoch)
        while True:
            try:
                tp, offset, epoch = self.acked.get_nowait()
            except queue.Empty:
                break
            self.book.ack(tp, offset, epoch)
        metrics.IN_FLIGHT.set(self.book.in_flight())

    def _final_commit(self, attempts: int = 50) -> None:
        """Commit what is done; a rebalance in progress refuses commits until poll() completes it,
        so poll (partitions paused: no new records are taken) and try again."""
        for _ in range(attempts):
            self._apply_acks()
            self._release()
            self._commit(force=True)
            if not self.book.committable():
                return
            self.consumer.pause(*self.consumer.assignment())
            self.consumer.poll(timeout_ms=100)
        log.warning("final commit incomplete; the next owner redoes those frames", pending=self.book.committable())

    def _commit(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_commit < COMMIT_EVERY_S:
            return
        offsets = self.book.committable()
        if not offsets:
            return
        self._last_commit = now
        try:
            self.consumer.commit({TopicPartition(*tp): OffsetAndMetadata(off, "", -1) for tp, off in offsets.items()})
        except KafkaError as exc:  # e.g. a rebalance in progress: the next turn tries again
            log.warning("commit failed; will retry", error=str(exc))
            return
        self.book.mark_committed(offsets)

    def _release(self) -> None:
        """Forget partitions the group took away (handed over by the rebalance listener)."""
        while True:
            try:
                partitions = self._released.get_nowait()
            except queue.Empty:
                return
            for tp in partitions:
                self.book.forget((tp.topic, tp.partition))
            self._paused -= set(partitions)
            log.info("partitions released", partitions=sorted(f"{tp.topic}:{tp.partition}" for tp in partitions))

    # -- backpressure, health ---------------------------------------------------------------------
    def _set_outputs_ok(self, ok: bool) -> None:
        self._outputs_ok = ok

    def _backpressure(self) -> None:
        assert self.consumer is not None
        full = self.book.in_flight() >= self.s.inflight_frames
        should_pause = full or not self._outputs_ok
        assigned = self.consumer.assignment()
        if should_pause:
            fresh = assigned - self._paused
            if fresh:
                self.consumer.pause(*fresh)
                self._paused |= fresh
                metrics.PAUSED.set(1)
                log.info("partitions paused", reason="in-flight limit" if full else "outputs down")
        elif self._paused:
            self.consumer.resume(*(self._paused & assigned))
            self._paused.clear()
            metrics.PAUSED.set(0)
            log.info("partitions resumed")

    def _measure_lag(self) -> None:
        now = time.monotonic()
        if now - self._last_lag < LAG_EVERY_S:
            return
        self._last_lag = now
        for tp in self.consumer.assignment():
            end = self.consumer.highwater(tp)
            if end is None:
                continue
            try:
                position = self.consumer.position(tp, timeout_ms=1000)
            except KafkaError:
                continue
            if position is not None:
                metrics.LAG.labels(tp.topic, str(tp.partition)).set(max(0, end - position))

    def liveness(self) -> tuple[bool, dict]:
        age = time.monotonic() - self._heartbeat
        threads = self.batcher.is_alive() and self.publisher.is_alive()
        return (age < 60 and threads), {"loop_age_s": round(age, 2), "threads_alive": threads}

    def readiness(self) -> tuple[bool, dict]:
        current = self.holder.current
        assigned = len(self.consumer.assignment()) if self.consumer else 0
        busy = self.batcher.busy_since
        stalled = busy is not None and time.monotonic() - busy > self.s.stall_after_s
        ok = current is not None and assigned > 0 and not stalled and not self._draining
        return ok, {
            "model": f"{current.name}@{current.version}" if current else None,
            "partitions": assigned, "stalled": stalled, "outputs_ok": self._outputs_ok, "draining": self._draining,
        }


def _timed_prepare(value: bytes, meta: Any, spec: Any, max_bytes: int) -> Any:
    started = time.monotonic()
    try:
        return prepare(value, meta, spec, max_bytes)
    finally:
        metrics.STAGE_SECONDS.labels("decode").observe(time.monotonic() - started)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="linewatch-worker",
        description="Consume camera frames from Kafka, score them with a model from the store, publish "
        "scores and masks to Redis and alerts to Kafka. Settings come from LW_* environment variables "
        "(README: Settings); the options below override a few of them.",
    )
    parser.add_argument("--model", help="model reference, e.g. draem@production (LW_MODEL)")
    parser.add_argument("--model-root", help="model store folder (LW_MODEL_ROOT)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], help="inference device (LW_DEVICE)")
    parser.add_argument("--http-port", type=int, help="metrics/health port, 0 = off (LW_HTTP_PORT)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    from producer.settings import ProducerSettings
    from worker.alerts_consumer import AlertConsumerSettings

    try:
        check_environment(WorkerSettings, ProducerSettings, AlertConsumerSettings)
        overrides = {k: v for k, v in vars(args).items() if v is not None}
        settings = WorkerSettings(**overrides)
    except (LinewatchError, ValueError) as exc:
        print(f"linewatch-worker: bad settings: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_json)
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
        signal.signal(sig, lambda *_: worker.request_stop())
    worker.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
