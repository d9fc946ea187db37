"""A dead part ends the process; outputs that refuse everything make it not ready, then end it;
SIGTERM always ends it within drain_timeout_s + 10 s. Real Kafka and Redis."""

from __future__ import annotations

import signal
import time

import pytest
from kafka.admin import KafkaAdminClient

from producer.app import produce_synthetic
from testkit.probes import readiness
from testkit.services import PrivateRedis, free_port
from tests.worker.helpers import worker_process
from worker.app import Worker

pytestmark = pytest.mark.integration


def test_a_dead_batch_thread_ends_the_worker_with_a_non_zero_code(kafka_bootstrap, topic_base, worker_settings) -> None:
    worker = Worker(worker_settings())
    worker.start()
    worker.inbox.put("not an item")  # the batch thread dies on it, as it would on any bug
    deadline = time.monotonic() + 30
    while not worker.supervisor.failed.is_set() and time.monotonic() < deadline:
        worker.step()
    assert not worker.liveness()[0]
    code = worker.run()
    assert code == 4 and worker.supervisor.cause.startswith("batcher: AssertionError")


def test_a_deleted_alerts_topic_makes_the_worker_say_so_then_exit(
    kafka_bootstrap, topic_base, redis_prefix, redis_client, worker_settings
) -> None:
    produce_synthetic({"kafka_bootstrap": kafka_bootstrap, "topic_base": topic_base}, cameras=1, frames_per_camera=5)
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.delete_topics([f"{topic_base}.alerts"])
    admin.close()
    redis_client.hset(f"{redis_prefix}:thresholds", "cam-1", "0.0")  # every frame anomalous: alerts must go out
    worker = Worker(worker_settings(debounce_n=1, debounce_m=1, fatal_after_s=20, publish_retry_max_s=1))
    worker.start()
    deadline = time.monotonic() + 60
    while worker.health.ok and time.monotonic() < deadline:
        worker.step()
    ready, details = worker.readiness()
    assert not ready and f"{topic_base}.alerts does not exist" in details["outputs"], details
    while not worker.supervisor.failed.is_set() and time.monotonic() < deadline:
        worker.step()
    assert worker.run() == 3 and "alerts" in worker.supervisor.cause


def test_sigterm_ends_a_worker_stuck_on_a_dead_redis_in_bounded_time(
    kafka_bootstrap, topic_base, redis_prefix, worker_settings, tmp_path
) -> None:
    private = PrivateRedis(tmp_path)
    private.start()
    port = free_port()
    settings = worker_settings(redis_url=private.url, http_port=port, http_host="127.0.0.1", drain_timeout_s=5,
                               publish_retry_max_s=0.5)
    proc = worker_process(settings, tmp_path / "worker.log")
    try:
        deadline = time.monotonic() + 90
        while readiness(port)[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.3)
        assert readiness(port)[0] == 200, (tmp_path / "worker.log").read_text()[-2000:]
        private.stop()
        produce_synthetic({"kafka_bootstrap": kafka_bootstrap, "topic_base": topic_base}, cameras=2, frames_per_camera=10)
        while readiness(port)[0] == 200 and time.monotonic() < deadline:
            time.sleep(0.3)
        status, details = readiness(port)
        assert status == 503 and details["outputs"].startswith("unavailable: redis"), details
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=5 + 10 + 5)
        assert time.monotonic() - started <= 5 + 10
    finally:
        if proc.poll() is None:
            proc.kill()
        private.stop()
