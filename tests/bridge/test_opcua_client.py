"""The opcua_client sink (the bridge writes into the PLC's own OPC UA server): value conversion to the
PLC's node types, the handshake's wrap, its settings, and a wrong password refused with the reason.
Delivery and the PLC's outage: test_sinks.py."""

from __future__ import annotations

import json

import pytest
from asyncua import ua
from pydantic import ValidationError

from bridge.settings import BridgeSettings
from bridge.sinks.opcua_client import as_type, next_counter
from tests.bridge.helpers import running_bridge, wait_until
from tests.bridge.plc import PlcServer


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


@pytest.mark.integration
def test_wrong_plc_password_is_refused_and_readiness_says_why(tmp_path, bridge_settings) -> None:
    plc = PlcServer(tmp_path / "plc", ["cam-1"])
    plc.start()
    settings = bridge_settings(bridge_sinks="opcua_client", opcua_client_url=plc.url, opcua_client_username="bridge",
                               opcua_client_password="wrong", opcua_client_cert_dir=tmp_path / "client")
    try:
        with running_bridge(settings) as bridge:
            assert wait_until(lambda: "refused the login" in json.dumps(bridge.readiness()[1]), 30), bridge.readiness()
            ok, details = bridge.readiness()
    finally:
        plc.close()
    assert not ok and details["down"] == ["opcua_client"]
    reason = details["sinks"]["opcua_client"]["reason"]
    assert plc.url in reason and "'bridge'" in reason and "BadUserAccessDenied" in reason, reason
    assert details["sinks"]["opcua_client"]["plc"] == plc.url
