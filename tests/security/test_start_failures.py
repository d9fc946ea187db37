"""Programs that cannot connect securely stop at start-up, saying why, and print no secret.

The programs run as real processes configured by LW_* variables (passwords as *_FILE). kafka-python
retries a failing bootstrap for 30 s before giving up, so the cases run side by side, started
once for the module.
"""

from __future__ import annotations

import os
import socket
import ssl
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import LOCAL, REPO, Secured, all_passwords

pytestmark = pytest.mark.integration

WRONG_PASSWORD = "wrong-4d1c9e2a77"
AUTH_FAILED = "authentication failed: wrong user name or password"
NOT_TRUSTED = "certificate is not trusted"


def _program_env(secured: Secured, role: str, tmp: Path, **changes: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LW_")}
    env |= secured.env(role) | {"LW_TOPIC_BASE": "sec-start-failures", "LW_LOG_JSON": "true", "PYTHONUNBUFFERED": "1"}
    if role == "producer":
        env |= {"LW_CAMERAS": "synthetic:1", "LW_MAX_FRAMES": "1", "LW_METRICS_PORT": "0"}
    if role == "worker":
        env |= {"LW_MODEL_ROOT": str(tmp / "no-models"), "LW_HTTP_PORT": "0", "LW_DEVICE": "cpu"}
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def _other_ca(tmp: Path) -> Path:
    """A CA of another installation (made by the same script in another folder)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LW_")} | {"LW_RUN_DIR": str(tmp / "other")}
    subprocess.run(["bash", str(LOCAL / "secrets.sh"), "certs"], env=env, check=True, capture_output=True)
    return tmp / "other" / "secure" / "ca.pem"


PROGRAMS = {"producer": "producer.app", "worker": "worker.app", "alerts": "bridge.alerts_consumer"}


@pytest.fixture(scope="module")
def failed_starts(secured: Secured, tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[int, str]]:
    tmp = tmp_path_factory.mktemp("failed-starts")
    wrong = tmp / "wrong-password"
    wrong.write_text(WRONG_PASSWORD + "\n")
    plain_redis = f"redis://{secured.redis}/0"
    cases = {
        "producer-wrong-password": ("producer", {"LW_KAFKA_SASL_PASSWORD_FILE": str(wrong)}),
        "alerts-wrong-password": ("alerts", {"LW_KAFKA_SASL_PASSWORD_FILE": str(wrong)}),
        "producer-no-ca": ("producer", {"LW_KAFKA_SSL_CAFILE": None}),
        "producer-other-ca": ("producer", {"LW_KAFKA_SSL_CAFILE": str(_other_ca(tmp))}),
        "producer-plaintext": ("producer", {"LW_KAFKA_SECURITY_PROTOCOL": "PLAINTEXT"}),
        "worker-wrong-redis-password": ("worker", {"LW_REDIS_PASSWORD_FILE": str(wrong)}),
        "worker-redis-no-ca": ("worker", {"LW_REDIS_SSL_CA_CERTS": None}),
        "worker-redis-plaintext": ("worker", {"LW_REDIS_URL": plain_redis, "LW_REDIS_SSL_CA_CERTS": None}),
    }
    running = {
        name: subprocess.Popen(
            [sys.executable, "-m", PROGRAMS[role]], cwd=REPO, env=_program_env(secured, role, tmp, **changes),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        for name, (role, changes) in cases.items()
    }
    results = {}
    for name, process in running.items():
        try:
            output, _ = process.communicate(timeout=180)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
        results[name] = (process.returncode, output)
    return results


def _assert_stopped_saying(result: tuple[int, str], *fragments: str, secrets: list[str]) -> None:
    code, output = result
    assert code == 1, f"exit code {code}:\n{output[-3000:]}"
    for fragment in fragments:
        assert fragment in output, output[-3000:]
    for secret in [*secrets, WRONG_PASSWORD]:
        assert secret not in output


@pytest.mark.parametrize("case", ["producer-wrong-password", "alerts-wrong-password"])
def test_wrong_kafka_password_stops_the_program_naming_the_cause(case: str, failed_starts, secured: Secured) -> None:
    _assert_stopped_saying(failed_starts[case], AUTH_FAILED, secrets=all_passwords(secured))
    # the broker's refusal, or (when the client had not read it before the broker closed) the hang-up after it
    output = failed_starts[case][1]
    assert "SaslAuthenticationFailed" in output or "hung up during the login" in output, output[-3000:]


def test_wrong_redis_password_stops_the_worker_naming_the_cause(failed_starts, secured: Secured) -> None:
    _assert_stopped_saying(failed_starts["worker-wrong-redis-password"], "worker could not start", AUTH_FAILED,
                           "LW_REDIS_PASSWORD", secrets=all_passwords(secured))


@pytest.mark.parametrize("case", ["producer-no-ca", "producer-other-ca", "worker-redis-no-ca"])
def test_a_client_that_does_not_trust_the_ca_is_refused(case: str, failed_starts, secured: Secured) -> None:
    _assert_stopped_saying(failed_starts[case], NOT_TRUSTED, "CERTIFICATE_VERIFY_FAILED", secrets=all_passwords(secured))


@pytest.mark.parametrize(
    ("case", "cause"),
    [("producer-plaintext", "SSL or SASL_SSL"), ("worker-redis-plaintext", "a TLS port needs rediss://")],
)
def test_plaintext_client_to_a_tls_port_stops_naming_the_cause(case: str, cause: str, failed_starts, secured: Secured) -> None:
    """Kafka: "answered in TLS" when the broker's TLS alert arrives, "hung up at once" when it does not."""
    _assert_stopped_saying(failed_starts[case], cause, secrets=all_passwords(secured))


def test_servers_answer_nothing_in_plaintext(secured: Secured) -> None:
    """Below any client library: a Kafka ApiVersions request and a Redis PING sent in plaintext get
    no answer in their protocol (the same requests over TLS do)."""
    api_versions = struct.pack(">hhih", 18, 0, 7, 5) + b"probe"
    kafka_request = struct.pack(">i", len(api_versions)) + api_versions
    for address, request, answer in ((secured.kafka, kafka_request, struct.pack(">i", 7)),
                                     (secured.redis, b"*1\r\n$4\r\nPING\r\n", b"-NOAUTH")):
        host, port = address.rsplit(":", 1)
        tls = ssl.create_default_context(cafile=str(secured.ca))
        with socket.create_connection((host, int(port)), timeout=5) as raw, tls.wrap_socket(raw, server_hostname=host) as s:
            s.sendall(request)
            reply = s.recv(64)
            assert answer in reply[:12], reply  # over TLS: a real answer (correlation id / NOAUTH)
        with socket.create_connection((host, int(port)), timeout=5) as s:
            s.sendall(request)
            try:
                reply = s.recv(64)
            except ConnectionResetError:
                reply = b""
            assert answer not in reply and not reply.startswith((b"+", b"-", b"\x00")), reply


def test_controller_listener_takes_only_the_broker_certificate(secured: Secured) -> None:
    """The controller port speaks TLS and wants a client certificate signed by the CA: a client that
    trusts the CA but has none is cut off at the handshake; with the broker's own it is answered."""
    host, port = secured.kafka_controller.rsplit(":", 1)
    api_versions = struct.pack(">hhih", 18, 0, 7, 5) + b"probe"
    request = struct.pack(">i", len(api_versions)) + api_versions
    anonymous = ssl.create_default_context(cafile=str(secured.ca))
    broker = ssl.create_default_context(cafile=str(secured.ca))
    broker.load_cert_chain(secured.dir / "server.pem", secured.dir / "server.key")
    with socket.create_connection((host, int(port)), timeout=5) as raw, broker.wrap_socket(raw, server_hostname=host) as s:
        s.sendall(request)
        assert s.recv(64)[4:8] == struct.pack(">i", 7)  # its correlation id: a Kafka answer
    with socket.create_connection((host, int(port)), timeout=5) as raw:
        with pytest.raises(ssl.SSLError, match="(?i)certificate"):
            with anonymous.wrap_socket(raw, server_hostname=host) as s:
                s.sendall(request)
                s.recv(64)  # TLS 1.3: the refusal of a missing client certificate arrives here
