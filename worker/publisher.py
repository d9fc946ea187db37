"""Scored batches and rejected records -> Redis and Kafka -> acknowledged offsets.

The publish thread turns model outputs into verdicts (thresholds, masks, debounced alerts),
writes them, and only when Redis *and* Kafka acknowledged everything for an item does it pass the
item's offset back for commit. While an output is down it retries with back-off and reports
itself unhealthy, which makes the consumer pause its partitions.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import structlog

from linewatch import contract as c
from linewatch.contract import Alert, Topics
from linewatch.errors import PublishError
from worker import metrics
from worker.batching import STOP, Item, Rejected, ScoredBatch
from worker.debounce import Debouncer
from worker.publish import FrameResult, KafkaSender, OutRecord, ResultWriter
from worker.scoring import anomaly_mask, effective_threshold

log = structlog.get_logger(__name__)


@dataclass
class Verdicts:
    """Threshold sources and mask policy the publisher applies."""

    default_threshold: float = 0.5
    configured: dict[str, float] = field(default_factory=dict)
    masks: str = "all"  # all | anomalous | none
    refresh_s: float = 2.0
    max_dead_letter_bytes: int = 8 * 1024 * 1024


class Publisher(threading.Thread):
    """The publish thread. `acked` receives (tp, offset, epoch) for every finished item."""

    def __init__(
        self,
        outbox: "queue.Queue[object]",
        acked: "queue.Queue[tuple[tuple[str, int], int, int]]",
        writer: ResultWriter,
        sender: KafkaSender,
        topics: Topics,
        debouncer: Debouncer,
        verdicts: Verdicts,
        retry_max_s: float = 5.0,
        on_health: Callable[[bool], None] = lambda ok: None,
    ) -> None:
        super().__init__(name="publisher", daemon=True)
        self.outbox = outbox
        self.acked = acked
        self.writer = writer
        self.sender = sender
        self.topics = topics
        self.debouncer = debouncer
        self.verdicts = verdicts
        self.retry_max_s = retry_max_s
        self.on_health = on_health
        self._runtime: dict[str, float] = {}
        self._runtime_read = 0.0
        self._abort = threading.Event()

    def abort(self) -> None:
        """Give up retrying (shutdown past its drain deadline): unpublished offsets stay uncommitted."""
        self._abort.set()

    def run(self) -> None:
        while True:
            job = self.outbox.get()
            if job is STOP or self._abort.is_set():
                return
            if isinstance(job, Rejected):
                self._dead_letter(job)
            elif isinstance(job, ScoredBatch):
                self._publish(job)

    # -- retry ----------------------------------------------------------------------------------
    def _until_done(self, target: str, action: Callable[[], object]) -> bool:
        delay = 0.1
        while not self._abort.is_set():
            try:
                action()
            except PublishError as exc:
                metrics.PUBLISH_FAILURES.labels(target).inc()
                self.on_health(False)
                log.warning("publish failed; retrying", target=target, error=str(exc), retry_in_s=delay)
                self._abort.wait(delay)
                delay = min(delay * 2, self.retry_max_s)
                continue
            self.on_health(True)
            return True
        return False

    def _ack(self, items: list[Item]) -> None:
        for item in items:
            self.acked.put((item.tp, item.offset, item.epoch))

    # -- dead letters -----------------------------------------------------------------------------
    def _dead_letter(self, job: Rejected) -> None:
        item = job.item
        source = f"{item.tp[0]}:{item.tp[1]}:{item.offset}"
        value = item.value[: self.verdicts.max_dead_letter_bytes]
        record = OutRecord(
            topic=self.topics.dead_letter,
            key=item.key or b"",
            value=value,
            headers=c.dead_letter_headers(item.headers, job.reason, job.detail, source),
        )
        if self._until_done("dead_letter", lambda: self.sender.send_all([record])):
            metrics.DEAD_LETTERED.labels(job.reason).inc()
            log.warning("frame dead-lettered", reason=job.reason, detail=job.detail, source=source)
            self._ack([item])

    # -- results --------------------------------------------------------------------------------
    def _thresholds(self) -> dict[str, float]:
        now = time.monotonic()
        if now - self._runtime_read >= self.verdicts.refresh_s:
            try:
                self._runtime = self.writer.runtime_thresholds()
                self._runtime_read = now
            except PublishError as exc:
                log.warning("runtime thresholds unreadable; keeping the last ones", error=str(exc))
        return self._runtime

    def _results(self, job: ScoredBatch) -> tuple[list[FrameResult], list[OutRecord]]:
        served = job.served
        normalised = np.asarray(served.normalise(np.asarray(job.scores, np.float64)), np.float64)
        runtime = self._thresholds()
        now_ns = time.time_ns()
        results: list[FrameResult] = []
        alerts: list[OutRecord] = []
        for i, item in enumerate(job.items):
            meta = item.meta
            assert meta is not None
            threshold = effective_threshold(
                meta.camera, runtime, self.verdicts.configured, served.camera_thresholds, self.verdicts.default_threshold
            )
            score = float(normalised[i])
            anomalous = score >= threshold
            want_mask = self.verdicts.masks == "all" or (self.verdicts.masks == "anomalous" and anomalous)
            mask = anomaly_mask(job.maps[i], served.pixel_threshold) if want_mask or anomalous else None
            result = FrameResult(
                meta=meta, score_raw=float(job.scores[i]), score=score, threshold=threshold, anomalous=anomalous,
                model_name=served.name, model_version=served.version,
                latency_ms=(now_ns - meta.capture_ns) / 1e6, mask=mask if want_mask else None,
            )
            results.append(result)
            if self.debouncer.observe(meta.camera, anomalous, meta.capture_ns):
                alerts.append(self._alert(result, mask))
        return results, alerts

    def _alert(self, result: FrameResult, mask) -> OutRecord:
        meta = result.meta
        alert = Alert(
            camera=meta.camera, frame_seq=meta.seq, capture_ns=meta.capture_ns, score_raw=result.score_raw,
            score=result.score, threshold=result.threshold, model_name=result.model_name,
            model_version=result.model_version, mask_key=self.writer.keys.mask(meta.camera, meta.frame_id),
            mask_size=mask.size if mask else (0, 0), boxes=mask.boxes if mask else [],
            frame_id=meta.frame_id, emitted_ns=time.time_ns(),
        )
        return OutRecord(topic=self.topics.alerts, key=meta.camera.encode(), value=alert.to_json())

    def _publish(self, job: ScoredBatch) -> None:
        started = time.monotonic()
        results, alerts = self._results(job)
        written: list[bool] = []

        def write() -> None:
            written[:] = self.writer.write(results)

        if not self._until_done("redis", write):
            return
        if not self._until_done("alerts", lambda: self.sender.send_all(alerts)):
            return
        done_ns = time.time_ns()
        for result, fresh in zip(results, written):
            camera = result.meta.camera
            metrics.FRAMES_OUT.labels(camera).inc()
            if result.anomalous:
                metrics.ANOMALOUS.labels(camera).inc()
            if not fresh:
                metrics.DUPLICATES.inc()
            metrics.END_TO_END_SECONDS.observe(max(0, done_ns - result.meta.capture_ns) / 1e9)
        for record in alerts:
            metrics.ALERTS.labels(record.key.decode()).inc()
        metrics.STAGE_SECONDS.labels("publish").observe(time.monotonic() - started)
        self._ack(job.items)
