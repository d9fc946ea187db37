"""The publish thread: scored batches and rejected records -> Redis and Kafka -> acknowledged offsets.

For a scored batch: the verdict builder (worker/verdicts.py) turns model outputs into each frame's
write; the delivery (worker/delivery.py) writes them to Redis with one script (worker/sinks.py:
idempotent, debounce and alert decision inside), sends the alerts the script decided, and only then
are the items' offsets acknowledged to the checkpoint. A rejected record, or a frame Redis refused
for good, goes to the dead-letter topic and is acknowledged once the broker confirmed it.
"""

from __future__ import annotations

import json
import queue
import time
from collections import Counter
from collections.abc import Sequence
from typing import Protocol

import numpy as np
import structlog

from linewatch import contract as c
from linewatch.contract import Topics
from linewatch.errors import PublishError, RecordRefused
from linewatch.logs import RateLimitedLog
from worker import metrics
from worker.checkpoint import Checkpoint
from worker.delivery import DeadLetters, Delivery
from worker.drift import DriftReport
from worker.records import STOP, Rejected, ScoredBatch
from worker.sinks import FrameWrite, KafkaSender, OutRecord, ResultWriter, Written
from worker.supervision import Supervisor, SupervisedThread
from worker.verdicts import VerdictBuilder

log = structlog.get_logger(__name__)


class BatchWatcher(Protocol):
    """Told of each batch after its results were published and acknowledged (worker/shadow.py);
    must not block: the publish thread calls it."""

    def published(self, job: ScoredBatch, writes: list[FrameWrite], results: dict) -> None: ...


class RuntimeThresholds:
    """Per-camera threshold overrides set at runtime in Redis, read at most every `refresh_s`; the
    last ones read stay in force while Redis cannot be read."""

    def __init__(self, writer: ResultWriter, refresh_s: float) -> None:
        self.writer, self.refresh_s = writer, refresh_s
        self._values: dict[str, float] = {}
        self._read = float("-inf")
        self._log = RateLimitedLog(interval_s=10.0)

    def current(self) -> dict[str, float]:
        now = time.monotonic()
        if now - self._read >= self.refresh_s:
            self._read = now
            try:
                self._values = self.writer.runtime_thresholds()
            except PublishError as exc:
                if self._log.allow("thresholds") is not None:
                    log.warning("runtime thresholds unreadable; keeping the last ones", error=str(exc))
        return self._values


class Publisher(SupervisedThread):
    """The publish thread; every item it finishes is acknowledged to the checkpoint."""

    def __init__(
        self,
        *,
        outbox: "queue.Queue[object]",
        checkpoint: Checkpoint,
        verdicts: VerdictBuilder,
        writer: ResultWriter,
        sender: KafkaSender,
        topics: Topics,
        delivery: Delivery,
        drift: DriftReport,
        supervisor: Supervisor,
        max_dead_letter_bytes: int = 8 * 1024 * 1024,
        results_topic: bool = False,
        watchers: Sequence[BatchWatcher] = (),
    ) -> None:
        super().__init__("publisher", supervisor)
        self.outbox, self.checkpoint, self.verdicts = outbox, checkpoint, verdicts
        self.writer, self.sender, self.topics, self.delivery, self.drift = writer, sender, topics, delivery, drift
        self.thresholds = RuntimeThresholds(writer, verdicts.policy.refresh_s)
        self.dead_letters = DeadLetters(delivery, sender, writer, topics, max_dead_letter_bytes)
        self.results_topic = results_topic
        self.watchers = tuple(watchers)
        self._log = RateLimitedLog(interval_s=10.0)

    def abort(self) -> None:
        """Give up retrying (shutdown past its drain deadline): unpublished offsets stay uncommitted."""
        self.delivery.abort()

    def loop(self) -> None:
        while True:
            job = self.outbox.get()
            if job is STOP or self.delivery.aborted:
                return
            if isinstance(job, Rejected):
                self._dead_letter([(job.item, job.reason, job.detail)])
            elif isinstance(job, ScoredBatch):
                self._publish(job)

    def _dead_letter(self, rejected: list[tuple]) -> None:
        for item in self.dead_letters.send(rejected):
            self.checkpoint.ack(item)

    def _publish(self, job: ScoredBatch) -> None:
        started = time.monotonic()
        normalised = np.asarray(job.served.normalise(np.asarray(job.scores, np.float64)), np.float64)
        now_ns = time.time_ns()
        writes = self.verdicts.build(job, [float(v) for v in normalised], self.thresholds.current(), now_ns)
        drift = self.drift.due(job, normalised, now_ns)
        baselines: list[dict[str, float] | PublishError] = []

        def send(indices: list[int]) -> list[Written | PublishError]:
            # Drift summaries ride along with the first attempt that reaches Redis.
            outcomes, got = self.writer.write([writes[i] for i in indices], [] if baselines else drift)
            baselines.extend(got)
            return outcomes

        results = self.delivery.deliver("redis", len(writes), send)
        if results is None:
            return
        alerts = [i for i, r in results.items() if isinstance(r, Written) and r.alert]
        if not self._send_alerts(writes, alerts):
            return
        if self.results_topic and not self._send_results(writes, results):
            return
        self._count(job, writes, results, alerts)
        for i, item in enumerate(job.items):
            if not isinstance(results[i], RecordRefused):
                self.checkpoint.ack(item)
        refused = [(job.items[i], r.reason, r.detail) for i, r in results.items() if isinstance(r, RecordRefused)]
        if refused:
            self._dead_letter(refused)
        self.drift.report(drift, baselines, now_ns)
        metrics.STAGE_PUBLISH.observe(time.monotonic() - started)
        for watcher in self.watchers:
            watcher.published(job, writes, results)

    def _send_alerts(self, writes: list[FrameWrite], alerts: list[int]) -> bool:
        """The alerts the Redis script decided, to the alert topic; False if delivery was aborted."""
        records = [OutRecord(self.topics.alerts, writes[i].camera.encode(), writes[i].alert_json) for i in alerts]
        sent = self.delivery.deliver("alerts", len(records), lambda idx: self.sender.send_all([records[i] for i in idx]))
        if sent is None:
            return False
        for k, outcome in sent.items():
            if isinstance(outcome, RecordRefused):  # the alert stays in Redis's alert stream
                log.error("alert refused by kafka", camera=writes[alerts[k]].camera, error=str(outcome))
        return True

    def _send_results(self, writes: list[FrameWrite], results: dict) -> bool:
        """The results topic: every stored frame's verdict, acknowledged before the offsets are; False if aborted."""
        records = [verdict_record(self.topics.results, w) for i, w in enumerate(writes) if isinstance(results[i], Written)]
        sent = self.delivery.deliver("results", len(records), lambda idx: self.sender.send_all([records[i] for i in idx]))
        if sent is None:
            return False
        for outcome in sent.values():
            if isinstance(outcome, RecordRefused) and self._log.allow("result_refused") is not None:
                log.error("verdict refused by kafka; the result stays in Redis", error=str(outcome))
        return True

    def _count(self, job: ScoredBatch, writes: list[FrameWrite], results: dict, alerts: list[int]) -> None:
        """Metrics of a published batch, counted per camera first (one labels() call per camera)."""
        done_ns = time.time_ns()
        out, anomalous, clockless = Counter(), Counter(), Counter()
        duplicates = 0
        for i, w in enumerate(writes):
            result = results[i]
            if not isinstance(result, Written):
                continue
            out[w.camera] += 1
            anomalous[w.camera] += w.anomalous
            duplicates += not result.fresh
            if w.fields["clock_ok"] == "1":
                capture_ns = job.items[i].meta.capture_ns  # type: ignore[union-attr]
                metrics.END_TO_END_SECONDS.observe(max(0, done_ns - capture_ns) / 1e9)
            elif result.fresh:
                clockless[w.camera] += 1
        for counter, metric in ((out, metrics.FRAMES_OUT), (anomalous, metrics.ANOMALOUS), (clockless, metrics.IMPLAUSIBLE_CLOCK)):
            for camera, n in counter.items():
                if n:
                    metric.labels(metrics.camera_label(camera)).inc(n)
        if duplicates:
            metrics.DUPLICATES.inc(duplicates)
        for i in alerts:
            metrics.ALERTS.labels(metrics.camera_label(writes[i].camera)).inc()


def verdict_record(topic: str, write: FrameWrite) -> OutRecord:
    """A frame's compact verdict for the results topic, from the fields stored in Redis."""
    f = write.fields
    verdict = c.FrameVerdict(
        camera=write.camera, frame_id=write.frame_id, seq=int(f["seq"]), capture_ns=int(f["capture_ns"]),
        verdict=c.VERDICT_NG if write.anomalous else c.VERDICT_OK, score=float(f["score"]),
        threshold=float(f["threshold"]), model_name=f["model_name"], model_version=f["model_version"],
        boxes=[tuple(b) for b in json.loads(f["boxes"] or "[]")], emitted_ns=int(f["published_ms"]) * 1_000_000,
        part=f.get("part", ""), recipe=f.get("recipe", ""),
    )
    return OutRecord(topic, write.camera.encode(), verdict.to_json())
