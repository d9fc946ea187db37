"""The whole path over the secured services: producer -> Kafka (SASL_SSL, SCRAM-SHA-512, ACLs) ->
worker -> Redis (TLS, ACL user) and the alert topic -> alert consumer, each program a real process
with its own user, passwords read from files; no password shows in any output or /metrics."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from linewatch.connect import redis_client
from linewatch.settings import RedisSettings
from testkit.probes import http_get
from testkit.services import free_port
from tests.worker.helpers import CONSUMERS

from .conftest import REPO, Names, Secured, all_passwords, program_env, role_settings

pytestmark = pytest.mark.integration

CAMERAS = ("cam-1", "cam-2")
FRAMES_PER_CAMERA = 12


def _start(module: str, env: dict[str, str], log: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", module, *args], cwd=REPO, env=env,
                            stdout=log.open("wb"), stderr=subprocess.STDOUT)


def _stop(process: subprocess.Popen) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=90)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


@pytest.mark.parametrize("consumer", CONSUMERS)
def test_whole_path_over_sasl_ssl_and_tls(consumer: str, secured: Secured, names: Names, tiny_model_root: Path,
                                          tmp_path: Path) -> None:
    admin = secured.redis_admin()
    admin.hset(f"{names.prefix}:thresholds", mapping={c: "0.0" for c in CAMERAS})  # every frame anomalous
    admin.close()
    http_port = free_port()
    logs = {name: tmp_path / f"{name}.log" for name in ("worker", "alerts", "producer")}
    worker = _start("worker.app", program_env(
        secured, "worker", names, LW_GROUP_ID=names.worker_group, LW_MODEL="tiny@production",
        LW_MODEL_ROOT=str(tiny_model_root), LW_HTTP_PORT=str(http_port), LW_HTTP_HOST="127.0.0.1", LW_DEVICE="cpu",
        LW_TORCH_THREADS="1", LW_MAX_WAIT_MS="5", LW_THRESHOLD_REFRESH_S="0.2", LW_LOG_LEVEL="debug",
        LW_KAFKA_CONSUMER=consumer,
    ), logs["worker"])
    alerts = _start("bridge.alerts_consumer", program_env(
        secured, "alerts", names, LW_ALERTS_GROUP_ID=names.alerts_group, LW_LOG_LEVEL="debug",
    ), logs["alerts"], "--max-alerts", str(len(CAMERAS)), "--from-beginning")
    try:
        produced = subprocess.run(
            [sys.executable, "-m", "producer.app"], cwd=REPO, capture_output=True, text=True, timeout=180,
            env=program_env(secured, "producer", names, LW_CAMERAS=f"synthetic:{len(CAMERAS)}",
                            LW_MAX_FRAMES=str(FRAMES_PER_CAMERA), LW_TARGET_FPS="30", LW_METRICS_PORT="0",
                            LW_LOG_LEVEL="debug"),
        )
        logs["producer"].write_text(produced.stdout + produced.stderr)
        assert produced.returncode == 0, logs["producer"].read_text()[-3000:]

        # Results, read back as the read-only user over TLS.
        reader = redis_client(role_settings(secured, "reader", names, cls=RedisSettings), socket_timeout=5)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and worker.poll() is None:
            scored = [reader.xlen(f"{names.prefix}:history:{c}") for c in CAMERAS]
            if sum(scored) >= FRAMES_PER_CAMERA * len(CAMERAS):
                break
            time.sleep(0.3)
        assert scored == [FRAMES_PER_CAMERA] * len(CAMERAS), logs["worker"].read_text()[-3000:]
        for camera in CAMERAS:
            latest = {k.decode(): v.decode() for k, v in reader.hgetall(f"{names.prefix}:latest:{camera}").items()}
            assert latest["anomalous"] == "1" and latest["model_name"] == "tiny"
        reader.close()

        # One alert per camera reached the alert consumer, through the ACL'd alert topic.
        assert alerts.wait(timeout=120) == 0, logs["alerts"].read_text()[-3000:]
        printed = [json.loads(line) for line in logs["alerts"].read_text().splitlines() if line.startswith("{\"")]
        alert_lines = [p for p in printed if "camera" in p and "frame_id" in p]
        assert sorted(a["camera"] for a in alert_lines) == list(CAMERAS)

        status, body = http_get(http_port, "/readyz")
        ready = body.decode()
        assert status == 200, ready
        status, body = http_get(http_port, "/metrics")
        metrics = body.decode()
        assert status == 200 and "linewatch_worker" in metrics
    finally:
        worker_code = _stop(worker)
        _stop(alerts)
    assert worker_code == 0, logs["worker"].read_text()[-3000:]
    outputs = {name: path.read_text() for name, path in logs.items()} | {"/metrics": metrics, "/readyz": ready}
    for secret in all_passwords(secured):
        for name, text in outputs.items():
            assert secret not in text, f"a password shows in {name}"
    assert "worker started" in outputs["worker"] and "producer_stopped" in outputs["producer"]  # real logs were read
