"""A worker whose ACL lacks the alert topic says so clearly and does not spin (issue 9's interface):
a publish error that every record would meet makes it not ready, with the cause under `outputs`
in GET /readyz, logged at most once a minute, and it exits with code 3 after LW_FATAL_AFTER_S."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kafka.admin import ResourceType

from testkit.probes import readiness
from testkit.services import free_port

from .conftest import REPO, Names, Secured, all_passwords, policy, program_env

pytestmark = pytest.mark.integration

FATAL_AFTER_S = 20
EXIT_PERMANENT_OUTPUT_ERROR = 3


def test_worker_without_the_alert_topic_acl_says_so_and_exits(secured: Secured, names: Names, tiny_model_root: Path,
                                                              tmp_path: Path) -> None:
    alerts_topic = f"{names.base}.alerts"
    admin = secured.kafka_admin()
    try:  # take the worker's WRITE and DESCRIBE on the alert topic away; the rest of its ACLs stay
        policy.revoke_kafka(admin, [
            acl for acl in policy.kafka_acls(names.base, names.worker_group, names.alerts_group)
            if acl.principal == f"User:{policy.KAFKA_USERS['worker']}"
            and acl.resource_pattern.resource_type == ResourceType.TOPIC and acl.resource_pattern.resource_name == alerts_topic
        ])
    finally:
        admin.close()
    redis_admin = secured.redis_admin()
    redis_admin.hset(f"{names.prefix}:thresholds", mapping={"cam-1": "0.0"})  # every frame anomalous: alerts due
    redis_admin.close()
    produced = subprocess.run(
        [sys.executable, "-m", "producer.app"], cwd=REPO, capture_output=True, text=True, timeout=180,
        env=program_env(secured, "producer", names, LW_CAMERAS="synthetic:1", LW_MAX_FRAMES="10", LW_METRICS_PORT="0"),
    )
    assert produced.returncode == 0, produced.stderr[-3000:]

    port = free_port()
    log = tmp_path / "worker.log"
    worker = subprocess.Popen(
        [sys.executable, "-m", "worker.app"], cwd=REPO, stdout=log.open("wb"), stderr=subprocess.STDOUT,
        env=program_env(secured, "worker", names, LW_GROUP_ID=names.worker_group, LW_MODEL="tiny@production",
                        LW_MODEL_ROOT=str(tiny_model_root), LW_HTTP_PORT=str(port), LW_HTTP_HOST="127.0.0.1",
                        LW_DEVICE="cpu", LW_TORCH_THREADS="1", LW_THRESHOLD_REFRESH_S="0.2",
                        LW_FATAL_AFTER_S=str(FATAL_AFTER_S)),
    )
    try:
        deadline = time.monotonic() + 180
        status, body = 0, {}
        while time.monotonic() < deadline and worker.poll() is None:
            status, body = readiness(port)
            if status == 503 and "authoriz" in json.dumps(body.get("outputs", "")).lower():
                break
            time.sleep(0.5)
        assert status == 503 and "outputs" in body, f"/readyz {status} {body}\n{log.read_text()[-3000:]}"
        assert "authoriz" in json.dumps(body["outputs"]).lower(), body  # the cause, not just "down"
        code = worker.wait(timeout=FATAL_AFTER_S + 90)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    output = log.read_text()
    assert code == EXIT_PERMANENT_OUTPUT_ERROR, output[-3000:]
    # The worker's own log lines (JSON) name the refusal, and only once in this sub-minute run
    # (kafka-python's own lines are plain text and not counted).
    reports = [line for line in output.splitlines() if line.startswith("{") and "authoriz" in line.lower()]
    assert 1 <= len(reports) <= 2, reports  # the report, and at most the exit's own line
    for secret in all_passwords(secured):
        assert secret not in output
