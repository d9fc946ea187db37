"""linewatch-alerts as a process on the real broker: it prints each alert once, commits after
handling, and stops on SIGTERM with exit code 0 (in a container it is PID 1, where an unhandled
SIGTERM is ignored and the runtime kills it at the end of the grace period); started before its
topic exists (as in the compose stack), it still gets the alerts once the topic is there."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import uuid

import pytest
from kafka import KafkaAdminClient, KafkaProducer

from linewatch.contract import Alert
from linewatch.settings import KafkaSettings
from linewatch.topics import ensure_topics

pytestmark = pytest.mark.integration

def _alert(seq: int) -> Alert:
    return Alert(camera="cam-1", frame_seq=seq, capture_ns=seq, score_raw=0.9, score=0.8, threshold=0.5,
                 model_name="m", model_version="v0001", mask_key="k", mask_size=(8, 8), frame_id=f"cam-1:{seq}")


def _send(bootstrap: str, topic: str, seqs: tuple[int, ...]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    for seq in seqs:
        producer.send(topic, _alert(seq).to_json(), key=b"cam-1")
    producer.flush()
    producer.close()


def _start(bootstrap: str, base: str, group: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LW_")} | {
        "LW_KAFKA_BOOTSTRAP": bootstrap, "LW_TOPIC_BASE": base, "LW_ALERTS_GROUP_ID": group,
        "LW_LOG_JSON": "true", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "bridge.alerts_consumer", "--from-beginning"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def _printed(proc: subprocess.Popen, count: int, timeout_s: float = 60) -> list[str]:
    printed: list[str] = []
    deadline = time.monotonic() + timeout_s
    while len(printed) < count and time.monotonic() < deadline and proc.poll() is None:
        line = proc.stdout.readline()
        if line.startswith("{") and '"frame_id"' in line:
            printed.append(json.loads(line)["frame_id"])
    return printed


def _stop(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_started_before_its_topic_exists_it_still_gets_the_alerts(kafka_bootstrap: str) -> None:
    base = f"test-{uuid.uuid4().hex[:12]}"
    settings = KafkaSettings(kafka_bootstrap=kafka_bootstrap, topic_base=base)
    proc = _start(kafka_bootstrap, base, f"{base}-alerts")
    try:
        time.sleep(4)  # it has connected and subscribed to a topic that is not there yet
        ensure_topics(settings, partitions=2)
        _send(kafka_bootstrap, settings.topics.alerts, (7,))
        assert _printed(proc, 1, timeout_s=45) == ["cam-1:7"]
    finally:
        code = _stop(proc)
        admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        t = settings.topics
        admin.delete_topics([t.frames, t.alerts, t.results, t.dead_letter])
        admin.close()
    assert code == 0


def test_prints_each_alert_and_stops_cleanly_on_sigterm(kafka_bootstrap: str, topic_base: str) -> None:
    topic = KafkaSettings(kafka_bootstrap=kafka_bootstrap, topic_base=topic_base).topics.alerts
    group = f"{topic_base}-alerts"
    _send(kafka_bootstrap, topic, (1, 2, 1))  # the third is a redelivery of the first: printed once
    proc = _start(kafka_bootstrap, topic_base, group)
    try:
        assert sorted(_printed(proc, 2)) == ["cam-1:1", "cam-1:2"]
        time.sleep(1.5)  # the redelivered copy is polled (and skipped) too
    finally:
        code = _stop(proc)
    assert code == 0
    assert proc.stdout.read().count('"frame_id"') == 0  # the duplicate was never printed
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        committed = admin.list_group_offsets(group)[group]
    finally:
        admin.close()
    offsets = {tp.partition: meta.offset for tp, meta in committed.items() if tp.topic == topic}
    assert sum(offsets.values()) == 3  # all three records handled and committed before the exit
