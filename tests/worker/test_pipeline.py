"""The whole path on the real broker and Redis: synthetic cameras -> Kafka -> worker -> Redis + alerts."""

from __future__ import annotations

import gc
import signal
import time
import uuid
from dataclasses import replace

import cv2
import numpy as np
import pytest
from kafka import KafkaProducer

from linewatch import contract as c
from linewatch.contract import Alert, FrameMeta, frame_headers
from producer.app import produce_synthetic
from producer.synthetic import SyntheticCamera
from testkit.probes import wait_ready
from testkit.services import PrivateRedis, free_port
from testkit.topics import committed_total, read_topic
from tests.worker.helpers import CONSUMERS, history, running_worker, wait_for_results, worker_process
from prometheus_client import REGISTRY

pytestmark = pytest.mark.integration


def _producer_settings(kafka_bootstrap: str, topic_base: str) -> dict:
    return {"kafka_bootstrap": kafka_bootstrap, "topic_base": topic_base}


def test_every_frame_gets_one_result_in_order(kafka_bootstrap, topic_base, redis_prefix, redis_client, worker_settings) -> None:
    sent = produce_synthetic(_producer_settings(kafka_bootstrap, topic_base), cameras=3, frames_per_camera=40, defect_rate=0.0)
    with running_worker(worker_settings(max_batch=8)):
        assert gc.get_freeze_count() > 0  # start() froze what start-up made
        got = wait_for_results(redis_client, redis_prefix, ["cam-1", "cam-2", "cam-3"], sent.sent)
    assert got == sent.sent == 120
    # ...and stop() handed it back: frozen objects outlive the interpreter's last collection, and
    # triton's nanobind objects among them printed ~30 "nanobind: leaked" lines at exit.
    assert gc.get_freeze_count() == 0
    for camera in ("cam-1", "cam-2", "cam-3"):
        entries = history(redis_client, redis_prefix, camera)
        assert [int(e["seq"]) for e in entries] == list(range(40))  # exactly once, in order
        latest = {k.decode(): v.decode() for k, v in redis_client.hgetall(f"{redis_prefix}:latest:{camera}").items()}
        assert latest["seq"] == "39" and latest["model_name"] == "synth"
        assert 0 < redis_client.ttl(f"{redis_prefix}:latest:{camera}") <= 3600
        mask = redis_client.get(latest["mask_key"])
        assert cv2.imdecode(np.frombuffer(mask, np.uint8), cv2.IMREAD_GRAYSCALE).shape == (64, 64)
        assert 0 < redis_client.ttl(latest["mask_key"]) <= 600
        assert float(latest["latency_ms"]) > 0


def test_persistent_defect_gives_one_alert(kafka_bootstrap, topic_base, redis_prefix, redis_client, worker_settings) -> None:
    settings = worker_settings(debounce_n=3, debounce_m=5, alert_cooldown_s=3600)
    sent = produce_synthetic(_producer_settings(kafka_bootstrap, topic_base), cameras=2, frames_per_camera=60,
                             defect_rate=0.0, defects={"cam-1": (20, 45)})
    with running_worker(settings):
        wait_for_results(redis_client, redis_prefix, ["cam-1", "cam-2"], sent.sent)
    cam1 = history(redis_client, redis_prefix, "cam-1")
    flagged = {int(e["seq"]) for e in cam1 if e["anomalous"] == "1"}
    defective = set(range(20, 45))
    # A 20-second model on a busy CPU is no DRAEM: ask for what the debounce needs, not perfection.
    assert len(flagged & defective) >= 0.4 * len(defective), f"model missed defects: flagged {sorted(flagged)}"
    assert len(flagged - defective) <= 3, f"false alarms on normal frames: {sorted(flagged - defective)}"
    alerts = [Alert.from_json(r.value) for r in read_topic(kafka_bootstrap, f"{topic_base}.alerts", 1, timeout_s=10)]
    assert [a.camera for a in alerts] == ["cam-1"]  # one alert for 25 defective frames, none for cam-2
    alert = alerts[0]
    assert 20 <= alert.frame_seq < 45 and alert.score >= alert.threshold and alert.boxes
    assert redis_client.exists(alert.mask_key)


def test_runtime_threshold_override(kafka_bootstrap, topic_base, redis_prefix, redis_client, worker_settings) -> None:
    redis_client.hset(f"{redis_prefix}:thresholds", mapping={"cam-1": "0.0"})  # everything on cam-1 is anomalous
    sent = produce_synthetic(_producer_settings(kafka_bootstrap, topic_base), cameras=2, frames_per_camera=10, defect_rate=0.0)
    with running_worker(worker_settings()):
        wait_for_results(redis_client, redis_prefix, ["cam-1", "cam-2"], sent.sent)
    assert all(e["anomalous"] == "1" and e["threshold"] == "0.000000" for e in history(redis_client, redis_prefix, "cam-1"))
    assert all(e["threshold"] == "0.500000" for e in history(redis_client, redis_prefix, "cam-2"))


def _send_raw(producer: KafkaProducer, topic: str, key: bytes | None, value: bytes, headers) -> None:
    producer.send(topic, key=key, value=value, headers=headers).get(timeout=10)


def test_bad_frames_are_dead_lettered_and_good_ones_scored(kafka_bootstrap, topic_base, redis_prefix, redis_client, worker_settings) -> None:
    topic = f"{topic_base}.frames"
    good = produce_synthetic(_producer_settings(kafka_bootstrap, topic_base), cameras=2, frames_per_camera=15, defect_rate=0.0)
    image = SyntheticCamera(seed=9, defect_rate=0.0).render(0)[0]
    jpeg = cv2.imencode(".jpg", image)[1].tobytes()
    meta = FrameMeta(camera="cam-bad", seq=0, capture_ns=time.time_ns(), encoding="jpeg", width=256, height=256)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, max_request_size=4 * 1024 * 1024)
    cases = {
        c.R_UNDECODABLE: (b"cam-bad", jpeg[: len(jpeg) // 3], frame_headers(meta)),
        c.R_MISSING_HEADER: (b"cam-bad", jpeg, []),
        c.R_UNKNOWN_SCHEMA: (b"cam-bad", jpeg, [(k, b"9" if k == c.H_SCHEMA else v) for k, v in frame_headers(meta)]),
        c.R_WRONG_DIMENSIONS: (b"cam-bad", jpeg, frame_headers(replace(meta, width=1920, height=1080))),
        c.R_OVERSIZE: (b"cam-bad", b"\x00" * (300 * 1024), frame_headers(replace(meta, encoding="raw"))),
        c.R_KEY_MISMATCH: (b"someone-else", jpeg, frame_headers(meta)),
    }
    for key, value, headers in cases.values():
        _send_raw(producer, topic, key, value, headers)
    producer.close()
    with running_worker(worker_settings(kafka_max_message_bytes=256 * 1024)) as worker:
        wait_for_results(redis_client, redis_prefix, ["cam-1", "cam-2"], good.sent)
        dead = read_topic(kafka_bootstrap, f"{topic_base}.frames.dlq", len(cases), timeout_s=30)
        deadline = time.monotonic() + 20
        while worker.checkpoint.in_flight() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert worker.checkpoint.in_flight() == 0  # rejected records were committed too, after their DLQ send
    reasons = sorted(dict(r.headers)[c.H_DLQ_REASON].decode() for r in dead)
    assert reasons == sorted(cases)
    for record in dead:
        headers = dict(record.headers)
        assert headers[c.H_DLQ_SOURCE].decode().startswith(f"{topic}:")
        assert headers[c.H_DLQ_DETAIL]
    assert sum(len(history(redis_client, redis_prefix, cam)) for cam in ("cam-1", "cam-2")) == good.sent
    assert not redis_client.exists(f"{redis_prefix}:history:cam-bad")


@pytest.mark.parametrize("consumer", CONSUMERS)
def test_restarted_worker_resumes_from_committed_offsets(consumer, kafka_bootstrap, topic_base, redis_prefix, redis_client,
                                                         worker_settings) -> None:
    settings = worker_settings(kafka_consumer=consumer)
    cams = ["cam-1", "cam-2"]
    first = produce_synthetic(_producer_settings(kafka_bootstrap, topic_base), cameras=2, frames_per_camera=20, defect_rate=0.0)
    with running_worker(settings):
        assert wait_for_results(redis_client, redis_prefix, cams, first.sent) == first.sent
    duplicates_before = _duplicates()
    second = produce_synthetic(_producer_settings(kafka_bootstrap, topic_base), cameras=2, frames_per_camera=20, defect_rate=0.0)
    with running_worker(settings):
        assert wait_for_results(redis_client, redis_prefix, cams, first.sent + second.sent) == 80
        time.sleep(1)
    # The second worker read only what the first had not committed: nothing was scored twice.
    assert _duplicates() == duplicates_before
    for cam in cams:
        assert len(history(redis_client, redis_prefix, cam)) == 40


def _duplicates() -> float:
    return REGISTRY.get_sample_value("linewatch_worker_duplicate_results_total") or 0.0


@pytest.mark.parametrize("consumer", CONSUMERS)
def test_sigkilled_worker_loses_nothing(consumer, kafka_bootstrap, topic_base, redis_prefix, redis_client, worker_settings,
                                        tmp_path) -> None:
    import threading

    cams = [f"cam-{i}" for i in range(1, 5)]
    frames = 120
    group = f"g-{uuid.uuid4().hex[:8]}"
    ports = {"worker-a": free_port(), "worker-b": free_port()}
    procs = {
        name: worker_process(worker_settings(group_id=group, worker_id=name, max_batch=4, http_port=port,
                                             http_host="127.0.0.1", kafka_consumer=consumer), tmp_path / f"{name}.log")
        for name, port in ports.items()
    }
    try:
        # Ready means "model loaded and partitions assigned": both ready = the group split the partitions.
        assert wait_ready(ports.values(), 120), "both workers never became ready with partitions"
        result: dict = {}
        producing = threading.Thread(target=lambda: result.setdefault("sent", produce_synthetic(
            _producer_settings(kafka_bootstrap, topic_base), cameras=4, frames_per_camera=frames, fps=15, defect_rate=0.0)))
        producing.start()  # paced cameras (8 s), so the kill lands mid-stream
        writers: set = set()
        deadline = time.monotonic() + 60
        while writers != set(ports) and time.monotonic() < deadline:
            writers = {e["worker"] for cam in cams for e in history(redis_client, redis_prefix, cam)}
            time.sleep(0.2)
        assert writers == set(ports), f"the two workers did not share the work: {writers}"
        procs["worker-a"].send_signal(signal.SIGKILL)
        procs["worker-a"].wait(10)
        producing.join(120)
        total = result["sent"].sent
        assert wait_for_results(redis_client, redis_prefix, cams, total, timeout_s=150) == total
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(60)
    for cam in cams:
        seqs = [int(e["seq"]) for e in history(redis_client, redis_prefix, cam)]
        assert seqs == list(range(frames)), f"{cam}: results not exactly once and in order"
        # The records worker-a had written but not committed were read again by worker-b: counted once.
        counted = sum(int(redis_client.hget(k, "frames")) for k in redis_client.scan_iter(f"{redis_prefix}:counts:{cam}:*"))
        assert counted == frames, f"{cam}: {counted} frames counted, {frames} scored"
    assert procs["worker-b"].returncode == 0, (tmp_path / "worker-b.log").read_text()[-3000:]


@pytest.mark.parametrize("consumer", CONSUMERS)
def test_redis_outage_pauses_then_recovers(consumer, kafka_bootstrap, topic_base, redis_prefix, worker_settings, tmp_path) -> None:
    import redis as redis_lib

    private = PrivateRedis(tmp_path)
    private.start()
    client = redis_lib.Redis.from_url(private.url)
    cams = ["cam-1", "cam-2"]
    try:
        with running_worker(worker_settings(redis_url=private.url, publish_retry_max_s=0.5, kafka_consumer=consumer)) as worker:
            first = produce_synthetic(_producer_settings(kafka_bootstrap, topic_base), cameras=2, frames_per_camera=15, defect_rate=0.0)
            assert wait_for_results(client, redis_prefix, cams, first.sent) == first.sent
            private.stop()
            second = produce_synthetic(_producer_settings(kafka_bootstrap, topic_base), cameras=2, frames_per_camera=15, defect_rate=0.0)
            deadline = time.monotonic() + 30
            while worker.health.ok and time.monotonic() < deadline:
                time.sleep(0.1)
            ready, details = worker.readiness()
            assert not ready and details["outputs"].startswith("unavailable: redis")
            time.sleep(1.0)
            assert worker.liveness()[0]  # the consumer loop keeps polling while paused
            assert worker.input.paused(), "partitions were not paused during the outage"
            assert committed_total(kafka_bootstrap, worker.s.group_id) == first.sent  # nothing unpublished committed
            private.start()
            total = first.sent + second.sent
            assert wait_for_results(client, redis_prefix, cams, total, timeout_s=60) == total
            deadline = time.monotonic() + 10
            while worker.input.paused() and time.monotonic() < deadline:
                time.sleep(0.1)
            assert not worker.input.paused(), "partitions were not resumed after the outage"
        for cam in cams:
            assert [int(e["seq"]) for e in history(client, redis_prefix, cam)] == _two_runs(15)
        assert committed_total(kafka_bootstrap, worker.s.group_id) == first.sent + second.sent
    finally:
        private.stop()


def _two_runs(n: int) -> list[int]:
    """Two produce_synthetic calls restart seq at 0; results are in the order they were written: 0..n-1, 0..n-1."""
    return list(range(n)) + list(range(n))


def test_worker_refuses_to_start_without_its_topic(worker_settings) -> None:
    from linewatch.errors import ServiceUnavailable
    from worker.app import Worker

    worker = Worker(worker_settings(topic_base=f"missing-{uuid.uuid4().hex[:8]}"))
    with pytest.raises(ServiceUnavailable, match="does not exist"):
        worker.start()
    worker.stop()
