"""The publish thread: scored batches and rejected records -> Redis and Kafka -> acknowledged offsets.

For a scored batch it turns model outputs into verdicts (thresholds, masks, heatmaps, previews),
writes each frame's result with one Redis script (worker/sinks.py: idempotent, debounce and
alert decision inside), sends the alerts the script decided, and only then acknowledges the
items' offsets. A rejected record, or a frame Redis refused for good, goes to the dead-letter
topic and is acknowledged once the broker confirmed it.

Failures have a kind (linewatch/errors.py). Transient ones and refusals of every record are
retried with back-off while OutputHealth says so (intake pauses, readiness reports the cause;
the consumer loop ends the process if it lasts too long). A refusal of one record sends that
record to the dead-letter topic: the line goes on.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterator, TypeVar

import numpy as np
import structlog

from linewatch import contract as c
from linewatch.contract import Alert, RedisKeys, Topics
from linewatch.errors import OutputRefused, OutputUnavailable, PublishError, RecordRefused
from linewatch.logs import RateLimitedLog
from worker import metrics
from worker.checkpoint import Checkpoint
from worker.drift import DriftWatch, image_stats
from worker.previews import PreviewClock, heat_png, preview_jpeg
from worker.records import STOP, Item, Rejected, ScoredBatch
from worker.scoring import anomaly_mask, effective_threshold
from worker.sinks import FrameWrite, KafkaSender, OutRecord, ResultWriter, Written, boxes_json
from worker.supervision import OutputHealth, Supervisor, SupervisedThread

log = structlog.get_logger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Verdicts:
    """Threshold sources and mask policy."""

    default_threshold: float = 0.5
    configured: dict[str, float] = field(default_factory=dict)
    masks: str = "all"  # all | anomalous | none
    refresh_s: float = 2.0


@dataclass(frozen=True)
class Pictures:
    """Preview JPEGs and heatmaps for the live view (off: neither is written)."""

    enabled: bool = True
    width: int = 320
    interval_s: float = 0.25
    max_cameras: int = 1000


@dataclass(frozen=True)
class ClockCheck:
    """When a capture time is plausible: not zero, not ahead of the worker, not older than the topic keeps."""

    max_ahead_s: float = 60.0
    max_age_s: float = 86400.0

    def plausible(self, capture_ns: int, received_ns: int) -> bool:
        return capture_ns > 0 and received_ns - self.max_age_s * 1e9 <= capture_ns <= received_ns + self.max_ahead_s * 1e9


def _backoff(first_s: float, max_s: float) -> Iterator[float]:
    delay = first_s
    while True:
        yield delay
        delay = min(delay * 2, max_s)


class Publisher(SupervisedThread):
    """The publish thread; every item it finishes is acknowledged to the checkpoint."""

    def __init__(
        self,
        *,
        outbox: "queue.Queue[object]",
        checkpoint: Checkpoint,
        writer: ResultWriter,
        sender: KafkaSender,
        topics: Topics,
        keys: RedisKeys,
        verdicts: Verdicts,
        pictures: Pictures,
        clock: ClockCheck,
        drift: DriftWatch,
        health: OutputHealth,
        supervisor: Supervisor,
        worker_id: str,
        retry_max_s: float = 5.0,
        max_dead_letter_bytes: int = 8 * 1024 * 1024,
        results_topic: bool = False,
    ) -> None:
        super().__init__("publisher", supervisor)
        self.outbox, self.checkpoint, self.writer, self.sender = outbox, checkpoint, writer, sender
        self.topics, self.keys, self.verdicts, self.pictures, self.clock = topics, keys, verdicts, pictures, clock
        self.drift = drift
        self.health, self.worker_id = health, worker_id
        self.retry_max_s = retry_max_s
        self.max_dead_letter_bytes = max_dead_letter_bytes
        self.results_topic = results_topic
        self.previews = PreviewClock(pictures.interval_s, pictures.max_cameras)
        self._runtime: dict[str, float] = {}
        self._runtime_read = float("-inf")
        self._abort = threading.Event()
        self._log = RateLimitedLog(interval_s=10.0)

    def abort(self) -> None:
        """Give up retrying (shutdown past its drain deadline): unpublished offsets stay uncommitted."""
        self._abort.set()

    def loop(self) -> None:
        while True:
            job = self.outbox.get()
            if job is STOP or self._abort.is_set():
                return
            if isinstance(job, Rejected):
                self._dead_letter([(job.item, job.reason, job.detail)])
            elif isinstance(job, ScoredBatch):
                self._publish(job)

    # -- delivery with retries --------------------------------------------------------------------
    def _deliver(self, target: str, count: int, send: Callable[[list[int]], list[T | PublishError]]) -> dict[int, T | RecordRefused] | None:
        """Send `count` things until each is done or refused for good; None if aborted first.

        `send(indices)` returns one outcome per index or raises for the whole attempt. Outcomes
        that are OutputUnavailable / OutputRefused are retried after a back-off.
        """
        done: dict[int, T | RecordRefused] = {}
        pending = list(range(count))
        delays = _backoff(0.1, self.retry_max_s)
        while pending:
            if self._abort.is_set():
                return None
            failure: PublishError | None = None
            try:
                outcomes = send(pending)
            except (OutputUnavailable, OutputRefused) as exc:
                failure, outcomes = exc, [exc] * len(pending)
            retry = []
            for i, outcome in zip(pending, outcomes):
                if isinstance(outcome, (OutputUnavailable, OutputRefused)):
                    retry.append(i)
                    failure = outcome
                else:
                    done[i] = outcome  # a result, or a RecordRefused the caller dead-letters
            pending = retry
            if failure is not None:
                self._failed(target, failure)
                self._abort.wait(next(delays))
        self.health.up(target)
        return done

    def _failed(self, target: str, error: PublishError) -> None:
        """Count and record a failed attempt; the consumer loop reports it (at once, then once a minute)."""
        kind = "refused" if isinstance(error, OutputRefused) else "unavailable"
        metrics.PUBLISH_FAILURES.labels(target, kind).inc()
        self.health.down(target, error)

    # -- dead letters -----------------------------------------------------------------------------
    def _dead_letter_record(self, item: Item, reason: str, detail: str, shrink: int) -> OutRecord:
        """shrink 0: everything; 1: without the value; 2: only our own headers."""
        value = item.value[: self.max_dead_letter_bytes] if shrink == 0 else b""
        original = item.headers if shrink < 2 else []
        if shrink:
            detail = f"{detail} [dead letter shrunk: {'value' if shrink == 1 else 'value and headers'} dropped]"
        return OutRecord(
            topic=self.topics.dead_letter,
            key=(item.key or b"")[:1024] if shrink < 2 else b"",
            value=value,
            headers=c.dead_letter_headers(original, reason, detail, item.source),
        )

    def _dead_letter(self, rejected: list[tuple[Item, str, str]]) -> None:
        # A replay of a record already dead-lettered (before a crash or a rebalance) is not sent again.
        done = self._marks("check", [item for item, _, _ in rejected])
        for (item, _, _), already in zip(rejected, done):
            if already:
                self.checkpoint.ack(item)
        rejected = [r for r, already in zip(rejected, done) if not already]

        def send(indices: list[int]) -> list[PublishError | None]:
            outcome: dict[int, PublishError | None] = {}
            todo = list(indices)
            for shrink in (0, 1, 2):  # a record Kafka finds too large is sent again, smaller
                if not todo:
                    break
                outs = self.sender.send_all([self._dead_letter_record(*rejected[i], shrink) for i in todo])
                todo_next = []
                for i, out in zip(todo, outs):
                    if isinstance(out, RecordRefused) and shrink < 2:
                        todo_next.append(i)
                    elif isinstance(out, RecordRefused):  # not even our own headers fit: none ever will
                        outcome[i] = OutputRefused(f"kafka refuses even a minimal dead-letter record: {out}")
                    else:
                        outcome[i] = out
                todo = todo_next
            return [outcome[i] for i in indices]

        if not rejected or self._deliver("dead_letter", len(rejected), send) is None:
            return
        self._marks("mark", [item for item, _, _ in rejected])
        for item, reason, detail in rejected:
            metrics.DEAD_LETTERED.labels(reason).inc()
            suppressed = self._log.allow(f"dead_letter:{reason}")
            if suppressed is not None:
                log.warning("frame dead-lettered", reason=reason, detail=detail, source=item.source, suppressed=suppressed)
            self.checkpoint.ack(item)

    def _marks(self, action: str, items: list[Item]) -> list[bool]:
        """Check or set the "dead-lettered" marks of records; best effort: Redis being away must not
        hold dead letters back (the cost is a duplicate dead letter after a replay)."""
        keys = [(item.tp, item.commit_offset, item.fingerprint) for item in items]
        try:
            if action == "check":
                return self.writer.dead_lettered(keys)
            self.writer.mark_dead_lettered(keys)
        except PublishError as exc:
            if self._log.allow("dead_letter_marks") is not None:
                log.warning("dead-letter marks unavailable; a replay may dead-letter a record twice", error=str(exc))
        return [False] * len(items)

    # -- results ----------------------------------------------------------------------------------
    def _thresholds(self) -> dict[str, float]:
        now = time.monotonic()
        if now - self._runtime_read >= self.verdicts.refresh_s:
            self._runtime_read = now
            try:
                self._runtime = self.writer.runtime_thresholds()
            except PublishError as exc:
                if self._log.allow("thresholds") is not None:
                    log.warning("runtime thresholds unreadable; keeping the last ones", error=str(exc))
        return self._runtime

    def _frame_write(self, job: ScoredBatch, i: int, score: float, runtime: dict[str, float], now_ns: int) -> FrameWrite:
        item, served = job.items[i], job.served
        meta = item.meta
        assert meta is not None
        camera, fid = meta.camera, item.frame_id
        threshold = effective_threshold(
            camera, runtime, self.verdicts.configured, served.camera_thresholds, self.verdicts.default_threshold
        )
        anomalous = bool(score >= threshold)
        clock_ok = self.clock.plausible(meta.capture_ns, item.received_ns)
        keep_mask = self.verdicts.masks == "all" or (self.verdicts.masks == "anomalous" and anomalous)
        mask = anomaly_mask(job.maps[i], served.pixel_threshold) if keep_mask or anomalous else None
        show = self.pictures.enabled and (anomalous or self.previews.due(camera))
        heat = heat_png(job.maps[i], served.pixel_threshold) if show else b""
        jpeg = preview_jpeg(item.value, meta, self.pictures.width) if show else b""
        keep_frame = anomalous and bool(jpeg)
        mask_key = self.keys.mask(camera, fid) if keep_mask else ""
        now_ms = now_ns // 1_000_000
        fields = {
            "camera": camera, "seq": str(meta.seq), "frame_id": fid, "capture_ns": str(meta.capture_ns),
            "clock_ok": "1" if clock_ok else "0", "score_raw": f"{float(job.scores[i]):.6g}", "score": f"{score:.6f}",
            "threshold": f"{threshold:.6f}", "anomalous": "1" if anomalous else "0", "model_name": served.name,
            "model_version": served.version,
            "latency_ms": f"{(now_ns - meta.capture_ns) / 1e6:.2f}" if clock_ok else "",
            "published_ms": str(now_ms), "mask_key": mask_key,
            "heat_key": self.keys.heat_at(camera, fid) if keep_frame else "",
            "frame_key": self.keys.frame_at(camera, fid) if keep_frame else "",
            "boxes": boxes_json(mask.boxes) if mask and anomalous else "[]", "worker": self.worker_id,
        }
        alert = b""
        if anomalous:
            alert = Alert(
                camera=camera, frame_seq=meta.seq, capture_ns=meta.capture_ns, score_raw=float(job.scores[i]),
                score=score, threshold=threshold, model_name=served.name, model_version=served.version,
                mask_key=mask_key, mask_size=mask.size if mask else (0, 0), boxes=mask.boxes if mask else [],
                frame_id=fid, emitted_ns=now_ns,
            ).to_json()
        return FrameWrite(
            tp=item.tp, offset=item.offset, fingerprint=item.fingerprint, camera=camera, frame_id=fid,
            anomalous=anomalous, event_ms=meta.capture_ns // 1_000_000 if clock_ok else now_ms, fields=fields,
            mask_png=mask.png if keep_mask and mask else b"", heat_png=heat if keep_frame else b"",
            frame_jpeg=jpeg if keep_frame else b"", preview_jpeg=jpeg, preview_heat=heat, alert_json=alert,
        )

    def _publish(self, job: ScoredBatch) -> None:
        started = time.monotonic()
        normalised = np.asarray(job.served.normalise(np.asarray(job.scores, np.float64)), np.float64)
        runtime = self._thresholds()
        now_ns = time.time_ns()
        writes = [self._frame_write(job, i, float(normalised[i]), runtime, now_ns) for i in range(len(job.items))]
        drift = self._drift_due(job, normalised, now_ns)
        baselines: list[dict[str, float] | PublishError] = []

        def send(indices: list[int]) -> list[Written | PublishError]:
            # Drift summaries ride along with the first attempt that reaches Redis.
            outcomes, got = self.writer.write([writes[i] for i in indices], [] if baselines else drift)
            baselines.extend(got)
            return outcomes

        results = self._deliver("redis", len(writes), send)
        if results is None:
            return
        alerts = [i for i, r in results.items() if isinstance(r, Written) and r.alert]
        records = [OutRecord(self.topics.alerts, writes[i].camera.encode(), writes[i].alert_json) for i in alerts]
        sent = self._deliver("alerts", len(records), lambda idx: self.sender.send_all([records[i] for i in idx]))
        if sent is None:
            return
        for k, outcome in sent.items():
            if isinstance(outcome, RecordRefused):  # the alert stays in Redis's alert stream
                log.error("alert refused by kafka", camera=writes[alerts[k]].camera, error=str(outcome))
        if self.results_topic and not self._send_results(writes, results):
            return
        refused = [(job.items[i], r.reason, r.detail) for i, r in results.items() if isinstance(r, RecordRefused)]
        self._count(job, writes, results, alerts)
        for i, item in enumerate(job.items):
            if not isinstance(results[i], RecordRefused):
                self.checkpoint.ack(item)
        if refused:
            self._dead_letter(refused)
        self._drift_events(drift, baselines, now_ns)
        metrics.STAGE_PUBLISH.observe(time.monotonic() - started)

    def _send_results(self, writes: list[FrameWrite], results: dict) -> bool:
        """The results topic: every stored frame's verdict, acknowledged before the offsets are; False if aborted."""
        records = [verdict_record(self.topics.results, w) for i, w in enumerate(writes) if isinstance(results[i], Written)]
        sent = self._deliver("results", len(records), lambda idx: self.sender.send_all([records[i] for i in idx]))
        if sent is None:
            return False
        for outcome in sent.values():
            if isinstance(outcome, RecordRefused) and self._log.allow("result_refused") is not None:
                log.error("verdict refused by kafka; the result stays in Redis", error=str(outcome))
        return True

    def _drift_due(self, job: ScoredBatch, normalised: np.ndarray, now_ns: int) -> list[tuple[str, dict[str, float], int, str]]:
        """Feed the batch to the drift watch; the summaries due now, ready to store with the batch."""
        brightness, contrast = image_stats(job.pixels)
        due = []
        for i, item in enumerate(job.items):
            camera = item.meta.camera  # type: ignore[union-attr]
            if self.drift.observe(camera, float(normalised[i]), float(brightness[i]), float(contrast[i])):
                due.append((camera, self.drift.summary(camera), now_ns // 1_000_000, self.worker_id))
        return due

    def _drift_events(self, drift: list[tuple[str, dict[str, float], int, str]],
                      baselines: list[dict[str, float] | PublishError], now_ns: int) -> None:
        """Compare the stored summaries with their baselines; report what left its band (best effort:
        drift is advice to people, never a reason to hold frames back)."""
        events: list[dict[str, str]] = []
        for (camera, summary, _, _), baseline in zip(drift, baselines):
            label = metrics.camera_label(camera)
            for signal, value in summary.items():
                metrics.DRIFT.labels(label, signal).set(value)
            if isinstance(baseline, PublishError):
                continue
            for e in self.drift.check(camera, summary, baseline):
                metrics.RECALIBRATE_EVENTS.labels(label, e.signal).inc()
                log.warning("camera drifted; recalibrate", camera=camera, signal=e.signal, value=round(e.value, 4),
                            band=[round(e.low, 4), round(e.high, 4)])
                events.append({"camera": camera, "signal": e.signal, "value": f"{e.value:.6g}", "low": f"{e.low:.6g}",
                               "high": f"{e.high:.6g}", "baseline": f"{e.baseline:.6g}", "time_ns": str(now_ns),
                               "worker": self.worker_id})
        if not events:
            return
        try:
            self.writer.recalibrate_events(events)
        except PublishError as exc:
            if self._log.allow("drift") is not None:
                log.warning("drift events not stored", error=str(exc))

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
    )
    return OutRecord(topic, write.camera.encode(), verdict.to_json())
