"""The opcua_client sink (the bridge writes into the PLC's own OPC UA server): value conversion to the
PLC's node types, the handshake's wrap, its settings, a wrong password refused with the reason, and
a verdict the PLC has no node for dead-lettered with the reason.
Delivery and the PLC's outage: test_sinks.py."""

from __future__ import annotations

import json
import time
from typing import Iterator

import pytest
from asyncua import ua
from kafka import KafkaProducer
from pydantic import ValidationError

from bridge.dead_letters import H_DLQ_SINK
from bridge.settings import BridgeSettings
from bridge.sinks.opcua_client import as_type, next_counter
from linewatch.contract import H_DLQ_DETAIL, H_DLQ_REASON, FrameVerdict
from tests.bridge.helpers import running_bridge, wait_until
from tests.bridge.plc import PlcServer
from testkit.topics import read_topic


def test_values_take_the_plc_nodes_types() -> None:
    assert as_type(7, ua.VariantType.Int32, "Seq").Value == ua.Variant(7, ua.VariantType.Int32)
    assert as_type(0.25, ua.VariantType.Float, "Score").Value.VariantType == ua.VariantType.Float
    assert as_type(True, ua.VariantType.Boolean, "IsNg").Value.Value is True
    dv = as_type("NG", ua.VariantType.String, "LastVerdict")
    assert dv.SourceTimestamp is None and dv.ServerTimestamp is None and dv.StatusCode is None  # S7 refuses writes with them
    with pytest.raises(ValueError, match="does not fit"):
        as_type(70000, ua.VariantType.Int16, "Seq")
    with pytest.raises(ValueError, match="cannot be written"):
        as_type("NG", ua.VariantType.Boolean, "LastVerdict")
    with pytest.raises(ValueError, match="cannot be written"):
        as_type(0.5, ua.VariantType.Int32, "Score")  # a score is not truncated into an integer node


def test_the_handshake_wraps_at_the_node_types_largest_value() -> None:
    assert next_counter(0, ua.VariantType.UInt16) == 1
    assert next_counter(65535, ua.VariantType.UInt16) == 0
    assert next_counter(2**31 - 1, ua.VariantType.Int32) == 0
    assert next_counter(65535, ua.VariantType.UInt32) == 65536


def test_client_mode_settings_are_checked() -> None:
    s = BridgeSettings(bridge_sinks="opcua_client", opcua_client_url="opc.tcp://plc:4840", opcua_client_variables="FrameId,ResultCounter")
    assert s.plc_variables == ["FrameId", "ResultCounter"]
    with pytest.raises(ValidationError, match="opcua_client_variables"):
        BridgeSettings(opcua_client_variables="FrameId,Verdict")
    with pytest.raises(ValidationError, match="camera"):
        BridgeSettings(opcua_client_node_template="ns=2;s=Line.{var}")


@pytest.fixture(scope="module")
def plc(tmp_path_factory) -> Iterator[PlcServer]:
    """One PLC server for this module's tests (its start is the slow part); each test its own cameras."""
    server = PlcServer(tmp_path_factory.mktemp("plc"), ["cam-1", "cam-2"])
    server.start()
    yield server
    server.close()


@pytest.mark.integration
def test_wrong_plc_password_is_refused_and_readiness_says_why(tmp_path, bridge_settings, plc) -> None:
    settings = bridge_settings(bridge_sinks="opcua_client", opcua_client_url=plc.url, opcua_client_username="bridge",
                               opcua_client_password="wrong", opcua_client_cert_dir=tmp_path / "client")
    with running_bridge(settings) as bridge:
        assert wait_until(lambda: "refused the login" in json.dumps(bridge.readiness()[1]), 30), bridge.readiness()
        ok, details = bridge.readiness()
    assert not ok and details["down"] == ["opcua_client"]
    reason = details["sinks"]["opcua_client"]["reason"]
    assert plc.url in reason and "'bridge'" in reason and "BadUserAccessDenied" in reason, reason
    assert details["sinks"]["opcua_client"]["plc"] == plc.url


@pytest.mark.integration
def test_a_verdict_the_plc_has_no_node_for_is_dead_lettered_with_the_reason(tmp_path, bridge_settings, kafka_bootstrap, topic_base,
                                                                            plc) -> None:
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    topic = f"{topic_base}.results"
    for seq in range(4):
        producer.send(topic, key=b"cam-2", value=verdict("cam-2", seq))
    producer.send(topic, key=b"cam-9", value=verdict("cam-9", 0))  # a camera the PLC was not given nodes for
    producer.flush()
    producer.close()
    settings = bridge_settings(bridge_sinks="opcua_client", opcua_client_url=plc.url, opcua_client_username="bridge",
                               opcua_client_password="plc-pass-1", opcua_client_cert_dir=tmp_path / "client", webhook_max_attempts=2)
    with running_bridge(settings) as bridge:
        assert wait_until(lambda: len(plc.frames("cam-2")) == 4, 30), plc.handshakes
        letters = read_topic(kafka_bootstrap, f"{topic_base}.bridge.dlq", 1, timeout_s=30)
        assert wait_until(lambda: bridge.readiness()[0], 10), bridge.readiness()  # a refused record is not an outage
    assert plc.frames("cam-2") == [f"0-{s}" for s in range(4)] and plc.counters("cam-2") == [1, 2, 3, 4]
    assert len(letters) == 1 and letters[0].key == b"cam-9"
    headers = dict(letters[0].headers)
    assert headers[H_DLQ_REASON] == b"sink_refused" and headers[H_DLQ_SINK] == b"opcua_client"
    assert b"BadNodeIdUnknown" in headers[H_DLQ_DETAIL] and b"cam-9" in headers[H_DLQ_DETAIL]


def verdict(camera: str, seq: int) -> bytes:
    return FrameVerdict(camera=camera, frame_id=f"0-{seq}", seq=seq, capture_ns=time.time_ns(), verdict="NG" if seq % 2 else "OK",
                        score=0.7 if seq % 2 else 0.2, threshold=0.5, model_name="m", model_version="1").to_json()
