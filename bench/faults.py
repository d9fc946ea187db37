"""The fault and fuzz harness: can any record, crash or outage make linewatch lose or repeat a frame?

Runs scenarios against the real Kafka and Redis the scripts start (`make services`); each
scenario has topics, a key prefix and a consumer group of its own, and workers run as real
processes (`python -m worker.app`) that the harness kills and restarts like a supervisor would.
Scenarios that stop or fill a service use a private Redis or a private broker.

    fuzz            N structure-aware mutated records (testkit/fuzz.py: Fuzzer) among good frames
                    from 8 cameras over 8 partitions, two workers
    bombs           a worker's peak memory under PNG/JPEG bombs vs the same number of honest frames
    kills           SIGKILL of a worker at random moments while frames stream (restarted each time)
    redis_outage    a private Redis stopped for a while and started again
    broker_restart  a private broker stopped and started
    join_leave      a worker joins mid-stream, another leaves
    redis_memory    Redis at its memory limit, then room again
    alerts_deleted  the alerts topic deleted mid-stream, then created again: how soon /readyz names it
    id_flood        100,000 frames from ever new camera ids (5,000 --quick) between real cameras'
                    frames: Redis memory and keys, RSS, /metrics size, a real camera's history
    chaos           30 minutes (3 --quick) of random seeded faults together: kills, Redis frozen,
                    broker restarts, workers added and removed, id floods, fuzzed records
    soak            constant load for --soak-minutes: worker RSS and Redis memory over time

In every scenario camera cam-1 has a runtime threshold of 0 (every frame anomalous: a persistent
defect, whatever the model thinks) and a long cool-down, so it must give exactly one alert.

Per scenario: good frames sent, scored exactly once (target 100 %), duplicates visible in Redis
(0), bad records dead-lettered with an acceptable reason or scored when the mutation left them
valid (100 % accounted; a record dead-lettered twice with one reason is counted, not failed: Kafka
outputs are at least once), partitions without progress for 30 s outside deliberate outages (0;
during a flood's work-off only while the whole group stands still),
worker exits and restarts, peak worker RSS. broker_restart also times, from the restarted broker
answering, the producer's first acknowledged record, the workers' first record taken in and the
first result in Redis (`phases`; target: a result within RECOVERY_TARGET_S = 10 s).

    .venv/bin/python bench/faults.py                      # everything (70 minutes here: the flood 27, chaos 30)
    .venv/bin/python bench/faults.py --quick              # what CI runs (tests/worker/test_faults.py)
    .venv/bin/python bench/faults.py --write docs/reliability.md
    .venv/bin/python bench/faults.py --only soak --soak-minutes 60 --write docs/reliability.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import redis  # noqa: E402
from kafka.admin import KafkaAdminClient  # noqa: E402

from testkit.audit import Audit, audit  # noqa: E402
from testkit.services import PrivateKafka, PrivateRedis  # noqa: E402
from testkit.streams import FuzzStream, GoodStream  # noqa: E402
from testkit.topics import create_topics, delete_topics, new_names, read_topic, wait_committed  # noqa: E402
from testkit.watch import ProgressWatch  # noqa: E402
from testkit.workers import WorkerPool, read_rss  # noqa: E402
from linewatch.contract import Alert  # noqa: E402

PARTITIONS = 8
CAMERAS = 8
DEFECT_CAMERA = "cam-1"
NAMED_WITHIN_S = 20.0  # a missing output is named in /readyz within this (docs/reliability.md)
# An id flood may grow Redis by at most this: LW_PROBATION_MAX_CAMERAS (1000) ids on probation, each
# with its first frame's result, preview and mask (~10 KB), plus ~60 B of dedupe per flood record.
FLOOD_BUDGET_MB = 20.0
# Redis of the chaos scenario at its end: 8 cameras' results (history capped by the harness's
# workers at the default 10,000 entries, ~0.2 KB each), 1,000 ids on probation, dedupe entries.
CHAOS_BUDGET_MB = 200.0
# One worker must work a flood off at least this fast (frames/s; 57 measured with --quick on this
# 2-core VM): the row's time limit is the flood's size over it, at least 600 s.
FLOOD_MIN_RATE = 30.0


@dataclass
class Harness:
    bootstrap: str
    redis_url: str
    model_root: Path
    out: Path
    quick: bool = False
    seed: int = 0
    consumer: str = "kafka-python"  # the workers' LW_KAFKA_CONSUMER


@dataclass
class Row:
    scenario: str
    good_sent: int = 0
    good_once_pct: float = 100.0
    duplicates: int = 0
    bad_sent: int = 0
    bad_accounted_pct: float = 100.0
    must_reject_pct: float = 100.0
    stalled_partitions: int = 0
    exits: list[str] = field(default_factory=list)
    restarts: int = 0
    alerts: int | None = None  # distinct alert frame ids for the defect camera (target 1)
    peak_rss_mb: float = 0.0
    seconds: float = 0.0
    notes: str = ""
    problems: list[str] = field(default_factory=list)
    phases: dict[str, float] = field(default_factory=dict)  # broker_restart: seconds to each stage's recovery

    @property
    def ok(self) -> bool:
        return not self.problems


def _worker_env(h: Harness, base: str, prefix: str, group: str, redis_url: str | None = None,
                bootstrap: str | None = None, **extra: str) -> dict[str, str]:
    env = {
        "LW_KAFKA_BOOTSTRAP": bootstrap or h.bootstrap, "LW_TOPIC_BASE": base, "LW_REDIS_URL": redis_url or h.redis_url,
        "LW_REDIS_PREFIX": prefix, "LW_GROUP_ID": group, "LW_MODEL": "synth@production",
        "LW_MODEL_ROOT": str(h.model_root), "LW_LOG_LEVEL": "warning", "LW_TORCH_THREADS": "1",
        "LW_DEBOUNCE_N": "3", "LW_DEBOUNCE_M": "5", "LW_ALERT_COOLDOWN_S": "3600", "LW_THRESHOLD_REFRESH_S": "0.5",
        "LW_MAX_WAIT_MS": "10", "LW_DRAIN_TIMEOUT_S": "20", "LW_PUBLISH_RETRY_MAX_S": "1", "LW_MODEL_POLL_S": "0",
        "LW_KAFKA_CONSUMER": h.consumer,
    }
    env.update(extra)
    return env


class Scenario:
    """One scenario's topics, key prefix, group, workers and watch; `finish()` audits and cleans up."""

    def __init__(self, h: Harness, name: str, redis_url: str | None = None, bootstrap: str | None = None,
                 workers: int = 2, **worker_env: str) -> None:
        self.h, self.name = h, name
        self.alerts_topic_lost = False  # alerts_deleted: count the persistent defect's alerts in Redis
        self.base, self.prefix, self.group = new_names()
        self.bootstrap = bootstrap or h.bootstrap
        self.redis_url = redis_url or h.redis_url
        self.redis = redis.Redis.from_url(self.redis_url)
        self.started = time.monotonic()
        create_topics(self.bootstrap, self.base, PARTITIONS)
        self.redis.hset(f"{self.prefix}:thresholds", DEFECT_CAMERA, "0.0")  # a persistent defect on cam-1
        self.pool = WorkerPool(_worker_env(h, self.base, self.prefix, self.group, self.redis_url, self.bootstrap,
                                           **worker_env), h.out / name)
        self.names = [f"w{i}" for i in range(workers)]
        for n in self.names:
            self.pool.start(n)
        self.pool.wait_ready(self.names[:1])
        self.topic = f"{self.base}.frames"
        self.good = GoodStream(self.bootstrap, self.topic, CAMERAS)
        self.watch = ProgressWatch(self.bootstrap, self.group, self.topic, self.pool, self.redis)
        self.watch.start()
        self.restarts = 0
        self._supervise = threading.Event()
        self._supervisor = threading.Thread(target=self._restart_exited, daemon=True)
        self._supervisor.start()

    def _restart_exited(self) -> None:
        """Restart a worker that ended on its own, as systemd or Kubernetes would."""
        while not self._supervise.wait(0.5):
            for name, _code in self.pool.reap():
                self.pool.start(name)
                self.restarts += 1

    def restart(self, name: str) -> None:
        self.pool.start(name)
        self.restarts += 1

    def finish(self, row: Row, fuzz: FuzzStream | None = None, drain_s: float = 240, retained: int = 0,
               results_topic: bool = False) -> Row:
        self.good.close()
        if fuzz is not None:
            fuzz.close()
        if not wait_committed(self.bootstrap, self.group, self.topic, drain_s):
            row.problems.append(f"the group did not commit every record within {drain_s:.0f} s")
        self._supervise.set()
        self._supervisor.join(5)
        self.pool.stop_all()
        self.watch.stop()
        a = audit(self.bootstrap, self.base, self.redis, self.prefix, self.good, fuzz, retained, results_topic)
        self._fill(row, a)
        delete_topics(self.bootstrap, self.base)
        for key in self.redis.scan_iter(f"{self.prefix}:*", count=1000):
            self.redis.delete(key)
        return row

    def _fill(self, row: Row, a: Audit) -> None:
        row.good_sent, row.good_once_pct, row.duplicates = a.good_sent, round(a.good_pct, 3), a.duplicates
        row.bad_sent, row.bad_accounted_pct = a.bad_sent, round(a.bad_pct, 3)
        row.must_reject_pct = round(100.0 * a.must_reject_dead_lettered / a.must_reject, 3) if a.must_reject else 100.0
        row.stalled_partitions = self.watch.stalled_partitions(30.0)
        row.exits = [f"{n}:{code}" for n, code in self.pool.exits]
        row.restarts = self.restarts
        row.peak_rss_mb = round(self.pool.peak_rss / 2**20, 1)
        row.seconds = round(time.monotonic() - self.started, 1)
        if self.alerts_topic_lost:  # what went to the deleted topic is gone with it; Redis keeps every alert too
            entries = self.redis.xrange(f"{self.prefix}:alerts")
            alerts = {a.frame_id for a in (Alert.from_json(f[b"alert"]) for _, f in entries) if a.camera == DEFECT_CAMERA}
        else:
            alerts = {Alert.from_json(r.value).frame_id for r in read_topic(self.bootstrap, f"{self.base}.alerts")
                      if r.key == DEFECT_CAMERA.encode()}
        row.alerts = len(alerts)
        if a.good_sent and a.good_pct < 100.0:
            row.problems.append(f"{a.good_sent - a.good_scored_once} good frames not scored exactly once")
        if a.duplicates:
            row.problems.append(f"{a.duplicates} duplicate results visible in Redis")
        if a.bad_sent and a.bad_pct < 100.0:
            row.problems.append(f"{a.bad_unaccounted} bad records neither dead-lettered nor scored once")
        if a.must_reject != a.must_reject_dead_lettered or (a.bad_dead_lettered != a.reason_ok):
            row.problems.append("dead letters with an unexpected reason, or invalid records scored")
        if row.stalled_partitions:
            longest = ", ".join(f"{p}: {t:.0f} s" for p, t in sorted(self.watch.longest_stall.items()) if t >= 30.0)
            row.problems.append(f"{row.stalled_partitions} partitions without progress for 30 s (partition: longest {longest})")
        if row.alerts != 1:
            row.problems.append(f"{row.alerts} distinct alerts for the persistent defect on {DEFECT_CAMERA} (want 1)")
        row.problems += a.mismatches[:10]
        if a.reasons:
            row.notes = (row.notes + "; " if row.notes else "") + "dead letters: " + ", ".join(
                f"{k} {v}" for k, v in sorted(a.reasons.items()))
        if a.scored_on_results_topic:
            row.notes += (f"; {a.scored_on_results_topic} valid mutants scored, found on the results topic (their "
                          f"camera on probation, forgotten with its keys by a later flood)")
        if a.dead_letter_repeats:  # at least once into Kafka (docs/reliability.md: dead letters twice)
            row.notes += f"; {a.dead_letter_repeats} bad records dead-lettered twice (same source, same reason)"


# -- scenarios -------------------------------------------------------------------------------------
def fuzz(h: Harness) -> Row:
    mutants = 1000 if h.quick else 10_000
    rounds = 50 if h.quick else 250
    s = Scenario(h, "fuzz")
    stream = FuzzStream(s.bootstrap, s.topic, s.good, seed=h.seed)
    per_round = max(1, mutants // rounds)
    for _ in range(rounds):
        s.good.send_round()
        stream.send(per_round)
    s.good.producer.flush(60)
    refused = ", ".join(f"{k} {v}" for k, v in stream.refused.most_common(5))
    row = Row("fuzz", notes=f"{mutants} mutants requested; refused by the sending Kafka client: {refused or 'none'}")
    return s.finish(row, stream)


def bombs(h: Harness) -> Row:
    """Peak RSS of a worker that takes N bombs vs one that takes N honest frames of the declared size."""
    from testkit.fuzz import jpeg_bomb, png_bomb
    from linewatch.contract import H_DLQ_REASON, R_OVERSIZE, R_UNDECODABLE, R_WRONG_DIMENSIONS, FrameMeta, frame_headers
    from kafka import KafkaProducer
    import cv2
    import numpy as np

    n = 100 if h.quick else 300
    peaks = {}
    started = time.monotonic()
    honest_jpeg = cv2.imencode(".jpg", np.random.default_rng(0).integers(0, 255, (1024, 1024, 3), np.uint8))[1].tobytes()
    for kind in ("honest", "bombs"):
        base, prefix, group = new_names()
        create_topics(h.bootstrap, base, 2)
        producer = KafkaProducer(bootstrap_servers=h.bootstrap, max_request_size=8 * 1024 * 1024)
        for i in range(n):
            meta = FrameMeta(camera="cam-b", seq=i, capture_ns=time.time_ns(), encoding="jpeg", width=1024, height=1024)
            value = honest_jpeg
            if kind == "bombs":
                meta = FrameMeta(camera="cam-b", seq=i, capture_ns=time.time_ns(), encoding="png" if i % 2 else "jpeg",
                                 width=1024, height=1024)
                value = png_bomb(30000, 30000) if i % 2 else jpeg_bomb(20000, 20000)
            producer.send(f"{base}.frames", key=b"cam-b", value=value, headers=frame_headers(meta))
        producer.flush(60)
        producer.close()
        pool = WorkerPool(_worker_env(h, base, prefix, group), h.out / f"bombs-{kind}")
        w = pool.start("w0")
        wait_committed(h.bootstrap, group, f"{base}.frames", 240)
        peaks[kind] = read_rss(w.proc.pid)[1]
        pool.stop_all()
        if kind == "bombs":  # every bomb set aside with a reason about its image, none scored
            reasons = [dict(r.headers).get(H_DLQ_REASON, b"").decode() for r in read_topic(h.bootstrap, f"{base}.frames.dlq")]
            set_aside = sum(r in {R_OVERSIZE, R_WRONG_DIMENSIONS, R_UNDECODABLE} for r in reasons)
            scored = redis.Redis.from_url(h.redis_url).xlen(f"{prefix}:history:cam-b")
        delete_topics(h.bootstrap, base)
    ratio = peaks["bombs"] / peaks["honest"]
    row = Row("bombs", bad_sent=n, bad_accounted_pct=round(100.0 * set_aside / n, 3), must_reject_pct=round(100.0 * set_aside / n, 3),
              peak_rss_mb=round(peaks["bombs"] / 2**20, 1), seconds=round(time.monotonic() - started, 1),
              notes=f"{n} bombs (PNG 30000x30000, JPEG 20000x20000 declaring 1024x1024): peak RSS "
                    f"{peaks['bombs'] / 2**20:.0f} MB vs {peaks['honest'] / 2**20:.0f} MB for {n} honest 1024x1024 "
                    f"frames = {ratio:.2f}x", alerts=None)
    if ratio > 2.0:
        row.problems.append(f"bombs cost {ratio:.2f}x the memory of honest frames (want <= 2)")
    if set_aside != n or scored:
        row.problems.append(f"{set_aside} of {n} bombs dead-lettered with an image reason, {scored} scored")
    return row


def _stream(s: Scenario, rounds: int, fps: float) -> threading.Thread:
    thread = threading.Thread(target=s.good.run, args=(rounds, fps), daemon=True)
    thread.start()
    return thread


def kills(h: Harness) -> Row:
    count = 1 if h.quick else 5
    seconds = 20 if h.quick else 60
    fps = 5.0
    s = Scenario(h, "kills")
    s.pool.wait_ready(s.names)
    producing = _stream(s, int(seconds * fps), fps)
    rng = random.Random(h.seed)
    for i in range(count):
        time.sleep(rng.uniform(0.3, 0.9) * seconds / count)
        victim = rng.choice(s.names)
        s.pool.signal(victim, signal.SIGKILL)
        time.sleep(rng.uniform(0.5, 3.0))
        s.restart(victim)
    producing.join()
    return s.finish(Row("kills", notes=f"{count} SIGKILLs at random moments, each worker restarted after 0.5-3 s"))


def redis_outage(h: Harness) -> Row:
    down_s = 10 if h.quick else 30
    private = PrivateRedis(h.out / "redis-outage")
    private.start()
    try:
        s = Scenario(h, "redis_outage", redis_url=private.url, LW_OUTAGE_EXIT_AFTER_S="900")
        producing = _stream(s, int((down_s + 20) * 5), 5.0)
        time.sleep(8)
        t0 = time.monotonic()
        private.stop()
        time.sleep(down_s)
        private.start()
        s.watch.outage(t0, time.monotonic())
        producing.join()
        return s.finish(Row("redis_outage", notes=f"Redis stopped for {down_s} s (SHUTDOWN SAVE), then started"))
    finally:
        private.stop()


RECOVERY_TARGET_S = 10.0  # broker answering again -> first new result in Redis (docs/reliability.md)


class RecoveryClock(threading.Thread):
    """When each stage of the path moved again after the broker answered: the frame producer's
    first acknowledged record, the workers' first record taken in (linewatch_worker_frames_in_total
    on their /metrics), the first result in Redis (the id of a history entry is Redis's clock).
    Samples every 0.2 s; wall-clock seconds throughout."""

    def __init__(self, s: Scenario) -> None:
        super().__init__(daemon=True)
        self.s = s
        self.answered = 0.0  # when the restarted broker answered ApiVersions (kafka.sh start returned)
        self.firsts: dict[str, float] = {}
        self._base: dict[str, float] | None = None
        self._done = threading.Event()

    def broker_answered(self) -> None:
        self.answered = time.time()
        self._base = self._sample()

    def _intake(self) -> float:
        import urllib.request

        total = 0.0
        for w in list(self.s.pool.workers.values()):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{w.port}/metrics", timeout=1) as reply:
                    lines = reply.read().decode().splitlines()
            except OSError:
                continue
            total += sum(float(line.rsplit(" ", 1)[1]) for line in lines
                         if line.startswith("linewatch_worker_frames_in_total{"))
        return total

    def _last_result_s(self) -> float:
        pipe = self.s.redis.pipeline(transaction=False)
        for camera in self.s.good.names:
            pipe.xrevrange(f"{self.s.prefix}:history:{camera}", count=1)
        ids = [entries[0][0] for entries in pipe.execute() if entries]
        return max((int(i.split(b"-")[0]) / 1000 for i in ids), default=0.0)

    def _sample(self) -> dict[str, float]:
        return {"producer_acked": float(len(self.s.good.landed)), "worker_took_in": self._intake(),
                "result_in_redis": self._last_result_s()}

    def run(self) -> None:
        while not self._done.wait(0.2) and len(self.firsts) < 3:
            if self._base is None:
                continue
            now = time.time()
            for stage, value in self._sample().items():
                if stage not in self.firsts and value > self._base[stage]:
                    self.firsts[stage] = value if stage == "result_in_redis" else now

    def stop(self) -> None:
        self._done.set()
        self.join(5)

    def phases(self) -> dict[str, float]:
        """Seconds from the broker answering to each stage's first progress (missing: never)."""
        return {stage: round(at - self.answered, 1) for stage, at in sorted(self.firsts.items(), key=lambda kv: kv[1])}


def broker_restart(h: Harness) -> Row:
    down_s = 15
    broker = PrivateKafka(h.out / "kafka")
    broker.start()
    try:
        s = Scenario(h, "broker_restart", bootstrap=broker.bootstrap)
        producing = _stream(s, 200, 5.0)
        clock = RecoveryClock(s)
        clock.start()
        time.sleep(10)
        t0 = time.monotonic()
        broker.stop()
        stopped = time.monotonic()
        time.sleep(down_s)
        broker.start()
        answered = time.monotonic()
        clock.broker_answered()
        s.watch.outage(t0, time.monotonic() + 20)
        producing.join()
        clock.join(60)  # every stage moves again (or a minute passes) before the drain and audit
        clock.stop()
        phases = clock.phases()
        row = s.finish(Row("broker_restart", phases=phases, notes=(
            f"the broker stopped for {down_s} s (clean stop: {stopped - t0:.1f} s), then started "
            f"({answered - stopped - down_s:.1f} s to answer); from the broker answering to: "
            + ", ".join(f"{k.replace('_', ' ')} {v} s" for k, v in phases.items())
            + f" (target: a result within {RECOVERY_TARGET_S:g} s)")))
        recovery = phases.get("result_in_redis")
        if recovery is None or recovery > RECOVERY_TARGET_S:
            row.problems.append(f"results resumed {recovery} s after the broker answered (target {RECOVERY_TARGET_S:g} s)")
        return row
    finally:
        broker.remove()


def join_leave(h: Harness) -> Row:
    s = Scenario(h, "join_leave", workers=1)
    producing = _stream(s, 200, 5.0)
    time.sleep(10)
    s.pool.start("w1")  # joins mid-stream
    time.sleep(12)
    code = s.pool.signal("w0", signal.SIGTERM)  # the first one leaves mid-stream
    producing.join()
    row = Row("join_leave", notes=f"w1 joined after 10 s, w0 left with SIGTERM after 22 s (exit {code})")
    if code != 0:
        row.problems.append(f"w0 exited {code} on SIGTERM")
    return s.finish(row)


def redis_memory(h: Harness) -> Row:
    private = PrivateRedis(h.out / "redis-memory")
    private.start()
    try:
        s = Scenario(h, "redis_memory", redis_url=private.url, LW_FATAL_AFTER_S="120")
        client = private.client()
        producing = _stream(s, 200, 5.0)
        time.sleep(8)
        used = int(client.info("memory")["used_memory"])
        client.config_set("maxmemory-policy", "noeviction")
        client.set("ballast", b"x" * 4_000_000)
        client.config_set("maxmemory", str(used + 1_000_000))  # over the limit: every write is refused
        t0 = time.monotonic()
        deadline = t0 + 30
        refused = ""
        while time.monotonic() < deadline and not refused:
            status, details = s.pool.ready("w0")
            refused = details.get("outputs", "") if status == 503 and "out of memory" in str(details.get("outputs")) else ""
            time.sleep(0.5)
        time.sleep(10)
        client.delete("ballast")
        client.config_set("maxmemory", "0")
        s.watch.outage(t0, time.monotonic())
        producing.join()
        row = Row("redis_memory", notes=f"maxmemory reached for ~{time.monotonic() - t0:.0f} s; /readyz said: {refused[:90]}")
        if not refused:
            row.problems.append("the worker never reported Redis out of memory in /readyz")
        return s.finish(row)
    finally:
        private.stop()


def _alerts_decided(s: Scenario) -> dict[str, float]:
    """Wall-clock time the Redis script decided each camera's first alert (its alert stream entry id)."""
    first: dict[str, float] = {}
    for entry_id, fields in s.redis.xrange(f"{s.prefix}:alerts"):
        first.setdefault(Alert.from_json(fields[b"alert"]).camera, int(entry_id.split(b"-")[0]) / 1000)
    return first


def alerts_deleted(h: Harness) -> Row:
    """The alerts topic deleted while an alert is due: how soon /readyz turns 503 and names it.

    Times run from the due alert's decision in Redis (the moment a send to the missing topic
    starts), not from the deletion: until an alert is due nothing is sent to that topic."""
    s = Scenario(h, "alerts_deleted", LW_FATAL_AFTER_S="120")
    s.alerts_topic_lost = True
    # The synthetic model finds the harness's JPEG frames of most cameras anomalous now and then
    # (every camera had alerted within 8 s in a run): a threshold of 1 keeps them quiet until the
    # test makes one alert due.
    s.redis.hset(f"{s.prefix}:thresholds", mapping={c: "1.0" for c in s.good.names if c != DEFECT_CAMERA})
    producing = _stream(s, 300, 5.0)
    time.sleep(8)
    # The camera whose alert comes due once the topic is gone must not have alerted yet: its
    # one-hour cool-down would hold the alert back and nothing would be sent to the missing topic.
    quiet = [c for c in s.good.names if c not in _alerts_decided(s) and c != DEFECT_CAMERA]
    if not quiet:
        return s.finish(Row("alerts_deleted", problems=["every camera alerted before the topic was deleted"]))
    due_camera = quiet[0]
    admin = KafkaAdminClient(bootstrap_servers=s.bootstrap)
    admin.delete_topics([f"{s.base}.alerts"])
    deleted = time.time()
    s.redis.hset(f"{s.prefix}:thresholds", due_camera, "0.0")  # a new alert is due now, with no topic to take it
    t0 = time.monotonic()
    refused = ""
    named_at = not_ready_at = None
    while time.monotonic() - t0 < 45 and not refused:
        for n in s.names:
            status, details = s.pool.ready(n)
            if status == 503 and not_ready_at is None:
                not_ready_at, first_detail = time.time(), str(details.get("outputs"))[:80]
            if status == 503 and "does not exist" in str(details.get("outputs")):
                refused, named_at = details["outputs"], time.time()
        time.sleep(0.25)
    create_topics(s.bootstrap, s.base, PARTITIONS)
    recreated_s = time.monotonic() - t0
    admin.close()
    s.watch.outage(t0, time.monotonic())
    producing.join()
    due = _alerts_decided(s).get(due_camera)
    since = due if due is not None else deleted
    named_s = round(named_at - since, 1) if named_at else None
    not_ready_s = round(not_ready_at - since, 1) if not_ready_at else None
    row = Row("alerts_deleted", notes=(
        f"alerts topic deleted, {due_camera}'s alert decided {round(due - deleted, 1) if due else 'never'} s later, "
        f"the topic recreated after {recreated_s:.0f} s; from the due alert: /readyz 503 after "
        f"{not_ready_s} s ({first_detail if not_ready_at else '-'}), naming the missing topic after {named_s} s "
        f"(target {NAMED_WITHIN_S:g} s): {refused[:100]}"))
    if due is None:
        row.problems.append("no alert came due while the alerts topic was missing (the scenario tested nothing)")
    if not refused:
        row.problems.append("no worker reported the missing alerts topic in /readyz")
    elif named_s is not None and named_s > NAMED_WITHIN_S:
        row.problems.append(f"the missing topic was named after {named_s} s (target {NAMED_WITHIN_S:g} s)")
    return s.finish(row)


def id_flood(h: Harness) -> Row:
    """A flood of frames from ever new camera ids between the real cameras' frames: Redis memory and
    keys, worker RSS, /metrics size and a real camera's history before and after."""
    import urllib.request

    from kafka import KafkaProducer
    import cv2
    import numpy as np

    from linewatch.contract import FrameMeta, frame_headers

    ids = 5_000 if h.quick else 100_000
    private = PrivateRedis(h.out / "id_flood-redis")
    private.start()
    try:
        s = Scenario(h, "id_flood", redis_url=private.url, workers=1)
        for _ in range(20):  # the real cameras, admitted long before the flood
            s.good.send_round()
        s.good.producer.flush(60)
        wait_committed(s.bootstrap, s.group, s.topic, 120)
        real = "cam-2"

        def measure() -> dict[str, float]:
            s.pool.sample_rss()
            info = s.redis.info("memory")
            w = next(iter(s.pool.workers.values()))
            with urllib.request.urlopen(f"http://127.0.0.1:{w.port}/metrics", timeout=5) as reply:
                metrics_bytes = len(reply.read())
            return {"redis_mb": round(info["used_memory"] / 2**20, 1), "keys": s.redis.dbsize(),
                    "rss_mb": round(read_rss(w.proc.pid)[0] / 2**20, 1), "metrics_kb": round(metrics_bytes / 1024, 1),
                    "real_history": s.redis.xlen(f"{s.prefix}:history:{real}")}

        before = measure()
        flood_started = time.monotonic()
        tiny = cv2.imencode(".jpg", np.full((16, 16, 3), 128, np.uint8))[1].tobytes()
        # Working the flood off, partitions wait their turn while others move: the watch counts a
        # stall there only where the whole group stood still (testkit/watch.py: working_off).
        with s.watch.working_off():
            producer = KafkaProducer(bootstrap_servers=s.bootstrap, linger_ms=20, batch_size=256 * 1024)
            for i in range(ids):
                camera = f"flood-{i}"
                meta = FrameMeta(camera=camera, seq=0, capture_ns=time.time_ns(), encoding="jpeg", width=16, height=16)
                producer.send(s.topic, key=camera.encode(), value=tiny, headers=frame_headers(meta))
            producer.flush(120)
            producer.close()
            for _ in range(50 // CAMERAS + 1):  # then the real cameras again
                s.good.send_round()
            s.good.producer.flush(60)
            limit_s = max(600.0, ids / FLOOD_MIN_RATE)
            worked_off = wait_committed(s.bootstrap, s.group, s.topic, limit_s)
        after = measure()
        budget_mb = FLOOD_BUDGET_MB
        row = Row("id_flood", notes=f"{ids} new ids, worked off in {time.monotonic() - flood_started:.0f} s "
                                    f"(a partition waited its turn up to {s.watch.longest_wait_in_burst:.0f} s while "
                                    f"the group moved); before {before}; after {after}; Redis growth target "
                                    f"<= {budget_mb} MB")
        if not worked_off:
            row.problems.append(f"the flood was not worked off within {limit_s:.0f} s")
        if after["redis_mb"] - before["redis_mb"] > budget_mb:
            row.problems.append(f"Redis grew {after['redis_mb'] - before['redis_mb']:.1f} MB (target <= {budget_mb} MB)")
        if after["real_history"] < before["real_history"]:
            row.problems.append(f"the flood deleted history of {real}: {before['real_history']} -> {after['real_history']}")
        return s.finish(row)
    finally:
        private.stop()


def _sample_readiness(s: Scenario, path: Path, stop: threading.Event) -> None:
    """Each worker's /readyz every 5 s, one JSON line per sample: what a stall looked like inside."""
    with path.open("a") as out:
        while not stop.wait(5.0):
            for name, w in list(s.pool.workers.items()):
                status, details = s.pool.ready(name) if w.proc.poll() is None else (0, {})
                out.write(json.dumps({"t": dt.datetime.now(dt.UTC).strftime("%H:%M:%S"), "worker": name,
                                      "status": status, **details}) + "\n")
            out.flush()


def chaos(h: Harness, minutes: float | None = None) -> Row:
    """Faults together, not one at a time: 8 cameras, two or three workers on a private broker and a
    private Redis; at seeded random moments (every 30-90 s, 10-25 s in --quick) one of: kill a worker,
    freeze Redis, restart the broker, add or remove a worker, flood new ids, inject fuzzed records
    (each kind once, in a seeded order, before any comes again). The audit is the harness's: every
    good frame once, every bad record accounted, one alert, Redis within CHAOS_BUDGET_MB.
    Outage windows: a Redis freeze and a broker restart, each until 20-30 s after the service is
    back; a flood until 60 s after it was sent (a waiting partition counts only while the group
    stands still). Workers log at info and /readyz is sampled every 5 s (out/chaos/readyz.jsonl)."""
    from kafka import KafkaProducer
    from kafka.errors import KafkaError
    import cv2
    import numpy as np

    from linewatch.contract import FrameMeta, frame_headers

    seconds = 60 * (minutes if minutes is not None else (3 if h.quick else 30))
    gap = (10, 25) if h.quick else (30, 90)
    fps = 4.0
    rng = random.Random(h.seed)
    broker, private = PrivateKafka(h.out / "chaos-kafka"), PrivateRedis(h.out / "chaos-redis")
    broker.start()
    private.start()
    redis_pid = int((private.folder / "redis.pid").read_text())
    sampling = threading.Event()  # set when the scenario ends, drain and audit included
    try:
        # Verdicts on the results topic too: a valid mutant's camera may stay on probation and be
        # forgotten with its results by a later flood; the audit finds its verdict there.
        s = Scenario(h, "chaos", redis_url=private.url, bootstrap=broker.bootstrap, LW_LOG_LEVEL="info",
                     LW_RESULTS_TOPIC="true")
        s.pool.wait_ready(s.names)
        threading.Thread(target=_sample_readiness, args=(s, h.out / "chaos" / "readyz.jsonl", sampling), daemon=True).start()
        fuzz_stream = FuzzStream(s.bootstrap, s.topic, s.good, seed=h.seed)
        producing = _stream(s, int(seconds * fps), fps)
        tiny = cv2.imencode(".jpg", np.full((16, 16, 3), 128, np.uint8))[1].tobytes()
        flooded = 0
        done: list[str] = []
        spare = iter(range(2, 1000))

        def kill() -> str:
            victim = rng.choice(list(s.pool.workers))
            s.pool.signal(victim, signal.SIGKILL)
            time.sleep(rng.uniform(0.5, 3.0))
            s.restart(victim)
            return f"kill {victim}"

        def freeze() -> str:
            held = rng.uniform(5, 15)
            t0 = time.monotonic()
            os.kill(redis_pid, signal.SIGSTOP)
            time.sleep(held)
            os.kill(redis_pid, signal.SIGCONT)
            s.watch.outage(t0, time.monotonic() + 20)
            return f"freeze redis {held:.0f} s"

        def restart_broker() -> str:
            t0 = time.monotonic()
            broker.stop()
            time.sleep(10)
            broker.start()
            s.watch.outage(t0, time.monotonic() + 30)
            return "restart broker"

        def resize() -> str:
            if len(s.pool.workers) < 3:
                name = f"w{next(spare)}"
                s.pool.start(name)
                return f"add {name}"
            victim = rng.choice(list(s.pool.workers))
            s.pool.signal(victim, signal.SIGTERM)
            return f"remove {victim}"

        def flood() -> str:
            nonlocal flooded
            t0 = time.monotonic()
            producer = KafkaProducer(bootstrap_servers=s.bootstrap, linger_ms=20)
            try:
                for _ in range(1000 if h.quick else 5000):
                    camera = f"flood-{flooded}"
                    flooded += 1
                    meta = FrameMeta(camera=camera, seq=0, capture_ns=time.time_ns(), encoding="jpeg", width=16, height=16)
                    producer.send(s.topic, key=camera.encode(), value=tiny, headers=frame_headers(meta))
                producer.flush(180)
            except KafkaError as exc:  # a broker still coming back: the flood is what got through
                return f"flood (cut short: {type(exc).__name__})"
            finally:
                producer.close(10)
                # partitions wait their turn while the flood is worked off (testkit/watch.py)
                s.watch.burst(t0, time.monotonic() + 60)
            return "flood"

        def inject() -> str:
            fuzz_stream.send(100 if h.quick else 300)
            return "fuzz"

        # Every kind once, in a seeded order, before any comes again: a 3-minute run (a few events on
        # a loaded machine) then still tries each kind rather than what the dice favoured.
        events = [kill, freeze, restart_broker, resize, flood, inject]
        rng.shuffle(events)
        turn = 0
        begun = time.monotonic()
        end = begun + seconds
        while time.monotonic() + gap[0] < end:
            time.sleep(rng.uniform(*gap))
            at = time.monotonic() - begun
            what = events[turn % len(events)]()
            turn += 1
            done.append(f"{what} at {at:.0f}-{time.monotonic() - begun:.0f} s")
        producing.join()
        used_mb = private.client().info("memory")["used_memory"] / 2**20
        row = Row("chaos", notes=f"{seconds / 60:g} min; events: {', '.join(done)}; {flooded} flood ids; "
                                 f"Redis {used_mb:.1f} MB at the end (budget {CHAOS_BUDGET_MB:g} MB)")
        if used_mb > CHAOS_BUDGET_MB:
            row.problems.append(f"Redis used {used_mb:.1f} MB (budget {CHAOS_BUDGET_MB:g} MB)")
        return s.finish(row, fuzz_stream, results_topic=True)
    finally:
        sampling.set()
        broker.remove()
        private.stop()


def soak(h: Harness, minutes: float) -> Row:
    """Constant load; RSS growth after a warm-up, and Redis memory under its caps."""
    warmup_s = min(600.0, minutes * 60 / 6)
    s = Scenario(h, "soak", LW_DEDUPE_TTL_S="600", LW_HISTORY_MAXLEN="2000", LW_RESULT_TTL_S="600",
                 LW_MASK_TTL_S="120", LW_FRAME_TTL_S="600", LW_ALERTS_MAXLEN="1000")
    fps = 8.0
    producing = _stream(s, int(minutes * 60 * fps), fps)
    producing.join()
    sizes = key_sizes(s.redis, s.prefix, "cam-2")
    # Results older than the history cap (2,000 per camera) are trimmed by design: exactly once is
    # audited on each camera's last 1,500 good frames; commits on every record.
    row = s.finish(Row("soak"), drain_s=600, retained=1500)
    rss = s.watch.rss
    mem = s.watch.redis_memory
    t_start = rss[0][0] if rss else 0
    after = [v for t, v in rss if t - t_start >= warmup_s and v]
    if after:
        first, last = after[0], max(after[-len(after) // 10:])  # peak of the last tenth vs the end of warm-up
        growth = 100.0 * (last - first) / first
        mem_after = [v for t, v in mem if t - t_start >= warmup_s]
        half = len(mem_after) // 2
        mem_growth = 100.0 * (max(mem_after[half:]) - max(mem_after[:half])) / max(mem_after[:half]) if half else 0.0
        row.notes = (f"{minutes:g} min at {CAMERAS} cameras x {fps:g} fps (exactly once audited on each camera's last "
                     f"1500 frames, the history keeps 2000); worker RSS after {warmup_s / 60:.0f} min "
                     f"warm-up {first / 2**20:.0f} MB -> {last / 2**20:.0f} MB ({growth:+.1f} %); Redis used_memory "
                     f"peak first half {max(mem_after[:half]) / 2**20:.1f} MB, second half "
                     f"{max(mem_after[half:]) / 2**20:.1f} MB ({mem_growth:+.1f} %)")
        if growth >= 5.0:
            row.problems.append(f"worker RSS grew {growth:.1f} % after warm-up (want < 5 %)")
        if mem_growth >= 5.0:
            row.problems.append(f"Redis memory grew {mem_growth:.1f} % between the halves (want flat)")
        (h.out / "soak-series.json").write_text(json.dumps({"rss": rss, "redis_memory": mem}))
    row.notes += "; Redis bytes per key (MEMORY USAGE, cam-2 at the end): " + ", ".join(f"{k} {v}" for k, v in sizes.items())
    return row


def key_sizes(client: redis.Redis, prefix: str, camera: str) -> dict[str, int]:
    """MEMORY USAGE of one camera's keys of each kind, and of the dedupe hashes, at this moment."""
    found: dict[str, int] = {}
    for kind in ("history", "latest", "frame", "heat", "alertstate", "drift"):
        found[f"{kind} ({client.xlen(f'{prefix}:history:{camera}')} entries)" if kind == "history" else kind] = (
            client.memory_usage(f"{prefix}:{kind}:{camera}") or 0)
    masks = list(client.scan_iter(f"{prefix}:mask:{camera}:*", count=1000))[:50]
    if masks:
        found[f"mask (mean of {len(masks)})"] = sum(client.memory_usage(k) or 0 for k in masks) // len(masks)
    seen = list(client.scan_iter(f"{prefix}:seen:*", count=1000))
    if seen:
        entries = sum(client.hlen(k) for k in seen)
        found[f"dedupe per record ({entries} records)"] = sum(client.memory_usage(k) or 0 for k in seen) // max(entries, 1)
    return found


SCENARIOS: dict[str, Callable[[Harness], Row]] = {
    "fuzz": fuzz, "bombs": bombs, "kills": kills, "redis_outage": redis_outage, "broker_restart": broker_restart,
    "join_leave": join_leave, "redis_memory": redis_memory, "alerts_deleted": alerts_deleted, "id_flood": id_flood,
    "chaos": chaos,
}
QUICK = ("fuzz", "kills", "redis_outage")


def ensure_model(root: Path) -> Path:
    """A small autoencoder trained on synthetic normal frames (the tests' recipe), made once."""
    if (root / "synth").is_dir():
        return root
    from model_store.quick import train_quick
    from producer.synthetic import SyntheticCamera
    from programs.demo import DEMO_AE

    frames = [SyntheticCamera(seed=s, width=128, height=128, defect_rate=0.0).render(q)[0]
              for s in range(1, CAMERAS + 1) for q in range(500, 530)]
    train_quick(frames, root, "synth", seconds=3600, steps=150, seed=0, kwargs=DEMO_AE)
    return root


def run(h: Harness, names: list[str], soak_minutes: float = 0.0, log: Callable[[str], None] = print) -> list[Row]:
    rows = []
    for name in names:
        log(f"== {name} ({dt.datetime.now(dt.UTC):%H:%M:%S})")
        sys.stdout.flush()
        row = soak(h, soak_minutes) if name == "soak" else SCENARIOS[name](h)
        log(format_row(row))
        sys.stdout.flush()
        rows.append(row)
    return rows


def format_row(r: Row) -> str:
    return (f"{r.scenario}: good {r.good_sent} ({r.good_once_pct:g} % once), duplicates {r.duplicates}, bad {r.bad_sent} "
            f"({r.bad_accounted_pct:g} % accounted, {r.must_reject_pct:g} % of certainly invalid dead-lettered), "
            f"stalled partitions {r.stalled_partitions}, exits {r.exits or 'none'}, restarts {r.restarts}, "
            f"alerts {r.alerts}, peak RSS {r.peak_rss_mb} MB, {r.seconds} s: {'OK' if r.ok else 'FAILED ' + '; '.join(r.problems)}"
            + (f" [{r.notes}]" if r.notes else ""))


def markdown(rows: list[Row], command: str) -> str:
    import torch

    head = (f"Command: `{command}`  \nMachine: {platform.node()}, {os.cpu_count()} cores ({platform.processor() or platform.machine()}), "
            f"Python {platform.python_version()}, torch {torch.__version__}; date {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC\n\n"
            "| scenario | good frames sent | scored exactly once | duplicates in Redis | bad records | accounted (dead letter or valid) | certainly invalid ones dead-lettered | partitions stalled 30 s | worker exits | restarts | alerts for the persistent defect | peak worker RSS | seconds | result |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
    body = "".join(
        f"| {r.scenario} | {r.good_sent} | {r.good_once_pct:g} % | {r.duplicates} | {r.bad_sent} | {r.bad_accounted_pct:g} % | "
        f"{r.must_reject_pct:g} % | {r.stalled_partitions} | {', '.join(r.exits) or 'none'} | {r.restarts} | "
        f"{'-' if r.alerts is None else r.alerts} | {r.peak_rss_mb} MB | {r.seconds} | {'OK' if r.ok else 'FAILED'} |\n"
        for r in rows
    )
    notes = "".join(f"- {r.scenario}: {r.notes}\n" for r in rows if r.notes)
    problems = "".join(f"- {r.scenario}: {'; '.join(r.problems)}\n" for r in rows if r.problems)
    return head + body + ("\n" + notes if notes else "") + ("\nProblems:\n" + problems if problems else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the reduced form CI runs: " + ", ".join(QUICK))
    parser.add_argument("--only", help="comma-separated scenarios (" + ", ".join([*SCENARIOS, "soak"]) + ")")
    parser.add_argument("--soak-minutes", type=float, default=60.0)
    parser.add_argument("--write", help="write the results as Markdown into this file, between markers")
    parser.add_argument("--out", default=str(REPO / "runs" / "faults"), help="logs, model, series")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--consumer", default="kafka-python", choices=["kafka-python", "confluent"],
                        help="the workers' LW_KAFKA_CONSUMER")
    args = parser.parse_args(argv)
    out = Path(args.out)
    h = Harness(bootstrap=os.environ.get("LW_KAFKA_BOOTSTRAP", "127.0.0.1:9092"),
                redis_url=os.environ.get("LW_REDIS_URL", "redis://127.0.0.1:6379/0"),
                model_root=ensure_model(out / "models"), out=out, quick=args.quick, seed=args.seed,
                consumer=args.consumer)
    names = args.only.split(",") if args.only else list(QUICK if args.quick else SCENARIOS)
    rows = run(h, names, args.soak_minutes)
    (out / "results.json").write_text(json.dumps([asdict(r) for r in rows], indent=2))
    if args.write:
        command = "bench/faults.py " + " ".join(a for a in (argv if argv is not None else sys.argv[1:]) if a)
        write_section(Path(args.write), "soak" if names == ["soak"] else "harness", markdown(rows, command))
    return 0 if all(r.ok for r in rows) else 1


def write_section(path: Path, name: str, text: str) -> None:
    """Replace the text between <!-- faults:NAME:begin --> and <!-- faults:NAME:end --> in `path`."""
    begin, end = f"<!-- faults:{name}:begin -->", f"<!-- faults:{name}:end -->"
    doc = path.read_text() if path.exists() else ""
    if begin not in doc:
        doc += f"\n{begin}\n{end}\n"
    head, rest = doc.split(begin, 1)
    tail = rest.split(end, 1)[1]
    path.write_text(f"{head}{begin}\n{text}{end}{tail}")


if __name__ == "__main__":
    sys.exit(main())
