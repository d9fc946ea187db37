"""How kafka-python's log lines are read into a start-up error's cause (linewatch/connect.py).
The lines are as kafka-python 3 wrote them against the secured broker; the integration tests in
test_start_failures.py run the same cases for real."""

from __future__ import annotations

import pytest

from linewatch.connect import explain_kafka

SASL = ("Bootstrap connection to bootstrap-0 failed: [Error 58] SaslAuthenticationFailedError: SaslAuthenticationFailedError: "
        "Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512 (backoff 5.76 secs)")
DISCONNECTED = "Bootstrap connection to bootstrap-0 failed: KafkaConnectionError: socket disconnected (backoff 0.33 secs)"
UNTRUSTED = ("Connection failed: KafkaConnectionError: Handshake failed: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify "
             "failed: unable to get local issuer certificate (_ssl.c:1006)")
TLS_ALERT = "<KafkaConnection node_id=bootstrap-0 (disconnected)>: Connection lost: InvalidReceiveError: Invalid frame length: 352518912"
# The refusal unread when the broker closed the connection: only a hang-up after the version exchange.
LOGIN_HUNG_UP = ("<KafkaConnection node_id=bootstrap-0 broker_version=(4, 1) (disconnected)>: Connection lost: "
                 "KafkaConnectionError: socket disconnected")
GIVING_UP = "Bootstrap failed: KafkaTimeoutError: Unable to bootstrap from ['127.0.0.1:9094']"


@pytest.mark.parametrize(
    ("lines", "protocol", "cause"),
    [
        ([DISCONNECTED, SASL, DISCONNECTED, GIVING_UP], "SASL_SSL", "authentication failed"),  # the telling line need not be last
        ([UNTRUSTED, GIVING_UP], "SASL_SSL", "certificate is not trusted (LW_KAFKA_SSL_CAFILE)"),
        ([DISCONNECTED, TLS_ALERT, GIVING_UP], "PLAINTEXT", "answered in TLS"),  # 0x15030300: a TLS alert record
        ([DISCONNECTED, DISCONNECTED, GIVING_UP], "PLAINTEXT", "hung up at once"),
        ([LOGIN_HUNG_UP, DISCONNECTED, GIVING_UP], "SASL_SSL", "hung up during the login"),
        ([DISCONNECTED, GIVING_UP], "SASL_SSL", DISCONNECTED),  # nothing better known: the line itself
    ],
    ids=["sasl", "ca", "tls-alert", "hung-up", "sasl-hung-up", "unknown"],
)
def test_the_cause_is_read_from_the_log_lines(lines: list[str], protocol: str, cause: str) -> None:
    explained = explain_kafka(lines, protocol)
    assert explained is not None and cause in explained
    assert "Unable to bootstrap" not in explained


def test_no_lines_no_cause() -> None:
    assert explain_kafka([GIVING_UP], "SASL_SSL") is None
