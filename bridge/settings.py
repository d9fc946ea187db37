"""Settings of `linewatch-bridge`: one class, environment prefix LW_, documented field by field."""

from __future__ import annotations

from pathlib import Path

from typing import Literal

from pydantic import Field, SecretStr, field_validator

from linewatch.settings import KafkaSettings, secret_field

SINKS = ("opcua", "opcua_client", "mqtt", "webhook", "print")
# What the opcua_client sink can write into a PLC's nodes, each as the verdict has it (bridge/sinks/opcua_client.py)
PLC_VARIABLES = ("LastVerdict", "IsNg", "Score", "Threshold", "FrameId", "Seq", "Part", "ModelVersion", "ResultCounter")
INPUTS = ("results", "alerts")


def _names(value: str, allowed: tuple[str, ...], what: str) -> str:
    names = [n.strip() for n in value.split(",") if n.strip()]
    unknown = [n for n in names if n not in allowed]
    if unknown or not names or len(set(names)) != len(names):
        raise ValueError(f"{what}: comma-separated, each once, from {', '.join(allowed)} (got {value!r})")
    return ",".join(names)


class BridgeSettings(KafkaSettings):
    """Settings of `linewatch-bridge`."""

    bridge_sinks: str = Field("print", description="Sinks to deliver to, comma-separated: opcua (a server PLCs connect to), opcua_client (writes into the PLC's own OPC UA server), mqtt, webhook, print.")
    bridge_inputs: str = Field(
        "results", description="Topics to follow, comma-separated: results (<base>.results, one verdict per frame), "
        "alerts (<base>.alerts).",
    )
    bridge_group_id: str = Field(
        "linewatch-bridge", description="Consumer group prefix; each sink reads in its own group <prefix>.<sink>, so "
        "one sink being down holds back only its own backlog.",
    )
    bridge_from_beginning: bool = Field(False, description="A sink's first run reads its topics from their start (else: new records only).")
    bridge_window: int = Field(64, ge=1, le=10000, description="Records in flight per sink: polled, not yet acknowledged by the sink.")
    bridge_retry_max_s: float = Field(5.0, gt=0, description="Longest back-off between delivery attempts while a sink is down.")
    bridge_dead_letter_topic: str = Field(
        "", description="Where records a sink refused for good (and unreadable records) go, with the reason; "
        "empty: <base>.bridge.dlq.",
    )
    bridge_create_dead_letter_topic: bool = Field(True, description="Create the dead-letter topic at start when it is missing (one partition).")
    bridge_stale_s: float = Field(10.0, gt=0, description="A camera without a verdict this long shows WorkerState STALE (OPC UA).")
    bridge_http_port: int = Field(9102, ge=0, description="Port of /metrics, /healthz and /readyz (0: off).")
    bridge_http_host: str = Field("127.0.0.1", description="Address the HTTP endpoint binds.")
    # MQTT
    mqtt_host: str = Field("127.0.0.1", description="MQTT broker host.")
    mqtt_port: int = Field(1883, description="MQTT broker port.")
    mqtt_prefix: str = Field("linewatch", description="Topic prefix: verdicts go to <prefix>/<camera>/verdict (retained), alerts to <prefix>/<camera>/alert.")
    mqtt_client_id: str = Field("linewatch-bridge", description="MQTT client id.")
    mqtt_username: str | None = secret_field(None, "MQTT user name.")
    mqtt_password: SecretStr | None = secret_field(None, "MQTT password.")
    mqtt_tls: bool = Field(False, description="Connect over TLS.")
    mqtt_ca_file: str | None = Field(None, description="CA bundle to verify the MQTT broker (TLS); unset: the system's.")
    mqtt_ack_timeout_s: float = Field(10.0, gt=0, description="Longest wait for the broker's PUBACKs of one window.")
    # Webhook
    webhook_url: str | None = Field(None, description="URL each record is POSTed to (JSON body).")
    webhook_secret: SecretStr | None = secret_field(None, "HMAC-SHA256 key of the X-Linewatch-Signature header (required with the webhook sink).")
    webhook_timeout_s: float = Field(5.0, gt=0, description="Timeout of one POST.")
    webhook_max_attempts: int = Field(
        5, ge=1, description="Attempts for a record the receiver refuses (an HTTP status other than 2xx, 401, 403, 404, 429, 502-504); "
        "then it goes to the dead-letter topic. Unreachable receivers are retried without limit.",
    )
    webhook_concurrency: int = Field(4, ge=1, le=64, description="POSTs in flight at once.")
    # OPC UA
    opcua_endpoint: str = Field("opc.tcp://127.0.0.1:4840/linewatch/", description="Endpoint the bridge's OPC UA server listens on.")
    opcua_namespace: str = Field("urn:linewatch:bridge", description="Namespace URI of the bridge's nodes.")
    opcua_username: str = Field("plc", description="User name a client logs in with.")
    opcua_password: SecretStr | None = secret_field(None, "Password of opcua_username (required with the OPC UA sink unless anonymous).")
    opcua_allow_anonymous: bool = Field(False, description="Also accept anonymous clients (read only, no security).")
    opcua_allow_insecure: bool = Field(False, description="Also offer the unencrypted endpoint (SecurityPolicy None).")
    opcua_cameras: str = Field(
        "", description="Cameras whose objects exist from the start, comma-separated (others appear with their first verdict), "
        "so a PLC can browse and subscribe before the line runs.",
    )
    opcua_cert_dir: Path = Field(Path(".run/bridge/opcua"), description="Server certificate and key; made there when missing.")
    # OPC UA client mode: the bridge writes into the PLC's own server
    opcua_client_url: str | None = Field(None, description="Endpoint of the PLC's own OPC UA server the opcua_client sink writes each verdict into, e.g. opc.tcp://10.0.0.20:4840.")
    opcua_client_username: str | None = secret_field(None, "User name the opcua_client sink logs in to the PLC with (unset: anonymous).")
    opcua_client_password: SecretStr | None = secret_field(None, "Password of opcua_client_username.")
    opcua_client_security: Literal["Basic256Sha256_SignAndEncrypt", "Basic256Sha256_Sign", "None"] = Field(
        "Basic256Sha256_SignAndEncrypt", description="Security policy and mode of the connection to the PLC: Basic256Sha256_SignAndEncrypt, "
        "Basic256Sha256_Sign or None (unencrypted; only on a closed network).",
    )
    opcua_client_cert_dir: Path = Field(
        Path(".run/bridge/opcua-client"), description="The bridge's client certificate (client-cert.der) and key for the PLC; "
        "made there when missing; the PLC must trust client-cert.der.",
    )
    opcua_client_namespace: str = Field(
        "urn:linewatch:line", description="Namespace URI on the PLC whose index replaces {ns} in opcua_client_node_template (read at each connect).",
    )
    opcua_client_node_template: str = Field(
        "ns={ns};s=Linewatch.{camera}.{var}", description="Node id of one value on the PLC: {camera} is the camera (or its name in "
        "opcua_client_camera_nodes), {var} the variable (opcua_client_variables), {ns} the index of opcua_client_namespace.",
    )
    opcua_client_camera_nodes: dict[str, str] = Field(
        default_factory=dict, description='Per camera, what replaces {camera} in the node template, as JSON, e.g. {"press-1":"Station3"}; '
        "cameras not listed use their id.",
    )
    opcua_client_variables: str = Field(
        "LastVerdict,Score,FrameId,Seq,ResultCounter", description="Variables written per verdict, comma-separated, from "
        + ", ".join(PLC_VARIABLES) + "; ResultCounter (the handshake) is written last, in a request of its own.",
    )
    opcua_client_timeout_s: float = Field(5.0, gt=0, description="Timeout of one request to the PLC (connect, write), seconds.")

    @field_validator("bridge_sinks")
    @classmethod
    def _sinks(cls, value: str) -> str:
        return _names(value, SINKS, "bridge_sinks")

    @field_validator("bridge_inputs")
    @classmethod
    def _inputs(cls, value: str) -> str:
        return _names(value, INPUTS, "bridge_inputs")

    @field_validator("opcua_client_variables")
    @classmethod
    def _plc_variables(cls, value: str) -> str:
        return _names(value, PLC_VARIABLES, "opcua_client_variables")

    @field_validator("opcua_client_node_template")
    @classmethod
    def _template(cls, value: str) -> str:
        if "{camera}" not in value or "{var}" not in value:
            raise ValueError(f"opcua_client_node_template needs {{camera}} and {{var}} (got {value!r})")
        return value

    @property
    def plc_variables(self) -> list[str]:
        return self.opcua_client_variables.split(",")

    @property
    def sinks(self) -> list[str]:
        return self.bridge_sinks.split(",")

    @property
    def input_topics(self) -> list[str]:
        topics = self.topics
        return [topics.results if name == "results" else topics.alerts for name in self.bridge_inputs.split(",")]

    @property
    def dead_letter_topic(self) -> str:
        return self.bridge_dead_letter_topic or f"{self.topic_base}.bridge.dlq"
