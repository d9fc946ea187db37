"""Clients not written here, against the secured services: Debian's kcat (alone and through
deploy/local/kcat.sh) and redis-cli. kafka-python, confluent-kafka and redis-py are checked by
test_acls.py and test_secured_pipeline.py. docs/security.md lists the versions.

kcat comes from scripts/kcat.sh (scripts/test.sh runs it), redis-cli with Debian's redis-server.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from .conftest import LOCAL, Names, Secured, policy

pytestmark = pytest.mark.integration

FIXED_IN = (2, 6, 1)  # librdkafka#4895: the SCRAM client-final-message Kafka 4 accepts


def _kcat_librdkafka() -> tuple[int, ...]:
    """The librdkafka version the installed kcat runs on, from `kcat -V`."""
    out = subprocess.run(["kcat", "-V"], capture_output=True, text=True, timeout=10, check=False).stdout
    found = re.search(r"librdkafka (\d+)\.(\d+)\.(\d+)", out)
    assert found, f"no librdkafka version in kcat -V: {out!r}"
    return tuple(int(n) for n in found.groups())


@pytest.fixture(scope="module")
def kcat() -> str:
    path = shutil.which("kcat")
    if path is None:
        pytest.fail("kcat is not installed: bash scripts/kcat.sh (scripts/test.sh runs it)")
    return path


def _wrapper(secured: Secured, role: str, *args: str, data: str | None = None) -> subprocess.CompletedProcess[str]:
    """deploy/local/kcat.sh as `role`, pointed at the session's secured broker."""
    env = {**os.environ, "LW_RUN_DIR": str(secured.dir.parent), "LW_KAFKA_SECURE_PORT": secured.kafka.rsplit(":", 1)[1]}
    return subprocess.run(["bash", str(LOCAL / "kcat.sh"), role, *args], input=data, env=env, capture_output=True,
                          text=True, timeout=60, check=False)


def test_debian_kcat_alone_logs_in_only_with_librdkafka_2_6_1_or_later(kcat: str, secured: Secured, tmp_path: Path) -> None:
    """The cause of "invalid credentials": the librdkafka kcat links, not the password or the set-up."""
    config = tmp_path / "kcat.conf"
    config.write_text("\n".join([
        f"bootstrap.servers={secured.kafka}", "security.protocol=SASL_SSL", "sasl.mechanisms=SCRAM-SHA-512",
        f"sasl.username={policy.ADMIN}", f"sasl.password={secured.password('kafka', 'admin')}",
        f"ssl.ca.location={secured.ca}", "",
    ]))
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    done = subprocess.run([kcat, "-F", str(config), "-L", "-m", "5"], env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    if _kcat_librdkafka() < FIXED_IN:
        assert done.returncode != 0
        assert "invalid credentials with SASL mechanism SCRAM-SHA-512" in done.stderr
    else:
        assert done.returncode == 0, done.stderr
        assert "1 brokers" in done.stdout


def test_kcat_through_the_wrapper_logs_in_and_meets_the_acls(kcat: str, secured: Secured, names: Names) -> None:
    value = f"kcat-{uuid.uuid4().hex[:8]}"
    wrote = _wrapper(secured, "producer", "-P", "-t", f"{names.base}.frames", "-k", "cam-k", data=value + "\n")
    assert wrote.returncode == 0, wrote.stderr
    read = _wrapper(secured, "worker", "-C", "-t", f"{names.base}.frames", "-o", "beginning", "-e", "-f", "%k=%s\\n")
    assert read.returncode == 0, read.stderr
    assert f"cam-k={value}" in read.stdout.splitlines()
    refused = _wrapper(secured, "producer", "-P", "-t", f"{names.base}.alerts", data="not allowed\n")
    assert refused.returncode != 0
    assert "authorization failed" in refused.stderr.lower()
    for output in (wrote, read, refused):  # the password travels in a file, never in what kcat prints
        assert secured.password("kafka", "producer") not in output.stdout + output.stderr


def _redis_cli(secured: Secured, names: Names, role: str, *command: str) -> str:
    host, port = secured.redis.rsplit(":", 1)
    env = {**os.environ, "REDISCLI_AUTH": secured.password("redis", role)}  # not on the command line
    done = subprocess.run(
        ["redis-cli", "--tls", "--cacert", str(secured.ca), "-h", host, "-p", port,
         "--user", policy.redis_user(names.prefix, role), *command],
        env=env, capture_output=True, text=True, timeout=30, check=False,
    )
    return (done.stdout + done.stderr).strip()


def test_redis_cli_meets_the_worker_acl(secured: Secured, names: Names) -> None:
    if shutil.which("redis-cli") is None:
        pytest.fail("redis-cli is not installed (Debian's redis-tools, which redis-server pulls in)")
    assert _redis_cli(secured, names, "worker", "SET", f"{names.prefix}:probe", "1") == "OK"
    assert "NOPERM" in _redis_cli(secured, names, "worker", "SET", "elsewhere:probe", "1")
    assert "NOPERM" in _redis_cli(secured, names, "worker", "FLUSHALL")
    assert "NOPERM" in _redis_cli(secured, names, "view", "SET", f"{names.prefix}:probe", "2")
