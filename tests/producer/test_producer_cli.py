"""linewatch-producer as a process: SIGTERM drains what was captured into Kafka, then exits 0."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from linewatch.contract import parse_frame_record
from producer.settings import ProducerSettings

from producer_helpers import consume_all

pytestmark = pytest.mark.integration


def test_sigterm_drains_and_exits_cleanly(kafka_producer_settings: ProducerSettings) -> None:
    settings = kafka_producer_settings
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("LW_")},
        "LW_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "LW_TARGET_FPS": "25",
        "LW_LOG_JSON": "false",
    }
    cmd = [sys.executable, "-m", "producer.app", "--cameras", "synthetic:2", "--create-topics", "--partitions", "2",
           "--topic-base", settings.topic_base, "--metrics-port", "0"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(4.0)  # start-up (imports, topics) plus a couple of seconds of frames
        assert proc.poll() is None, proc.communicate()[0]
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output
    assert "signal" in output and "SIGTERM" in output and "drained=True" in output

    records = consume_all(settings, expected=10**9, timeout_s=5.0)
    seqs: dict[str, list[int]] = {}
    for record in records:
        meta = parse_frame_record(record.key, record.headers)
        seqs.setdefault(meta.camera, []).append(meta.seq)
    assert sorted(seqs) == ["cam-1", "cam-2"]
    for camera, got in seqs.items():
        assert got == list(range(len(got))), camera  # nothing lost or reordered up to the shutdown
        assert len(got) >= 5
