"""`linewatch-bridge`: results and/or alerts from Kafka to the line's protocols (OPC UA, MQTT, webhooks).

Each sink chosen in LW_BRIDGE_SINKS gets a runner thread reading every partition of its topics,
with offsets in a consumer group of its own (<LW_BRIDGE_GROUP_ID>.<sink>; one bridge per group:
it assigns the partitions itself, there is no rebalancing between bridges): at least once, committed after the sink acknowledged, a sink that
is down holds only its own backlog, in Kafka. /readyz names every sink that is down and why.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Any

import structlog
from kafka import KafkaConsumer, KafkaProducer

from bridge.dead_letters import DeadLetters
from bridge.runner import Delivery, Sink, SinkRunner
from bridge.settings import BridgeSettings
from linewatch.connect import kafka_connecting
from linewatch.errors import ConfigError, ServiceUnavailable
from linewatch.health import HealthServer
from linewatch.startup import EXIT_BAD_SETTINGS, program_settings
from linewatch.topics import ensure_named_topics

log = structlog.get_logger(__name__)


def make_sink(name: str, s: BridgeSettings) -> Sink:
    if name == "mqtt":
        from bridge.sinks.mqtt import MqttSink

        return MqttSink(s)
    if name == "webhook":
        from bridge.sinks.webhook import WebhookSink

        return WebhookSink(s)
    if name == "opcua_client":
        from bridge.sinks.opcua_client import OpcUaClientSink

        return OpcUaClientSink(s)
    if name == "opcua":
        from bridge.sinks.opcua import OpcUaSink

        return OpcUaSink(s)
    from bridge.sinks.printer import PrintSink

    return PrintSink()


class Bridge:
    """The sinks, their runners and the HTTP endpoint; start(), stop(), readiness()."""

    def __init__(self, settings: BridgeSettings) -> None:
        self.s = settings
        self.sinks: list[Sink] = [make_sink(name, settings) for name in settings.sinks]
        self.runners: list[SinkRunner] = []
        self.died = threading.Event()
        self.death = ""
        self.http: HealthServer | None = None
        self._producer: KafkaProducer | None = None

    def _consumer(self, sink: str) -> KafkaConsumer:
        s = self.s
        return KafkaConsumer(
            **s.kafka_client_kwargs(), group_id=f"{s.bridge_group_id}.{sink}", client_id=f"linewatch-bridge-{sink}",
            enable_auto_commit=False, auto_offset_reset="earliest" if s.bridge_from_beginning else "latest",
            max_poll_records=s.bridge_window,
        )

    def _on_death(self, thread: str, exc: BaseException) -> None:
        self.death = f"{thread} died: {type(exc).__name__}: {exc}"
        log.error("bridge thread died; stopping", thread=thread, error=str(exc))
        self.died.set()

    def start(self) -> None:
        s = self.s
        if s.bridge_create_dead_letter_topic:
            ensure_named_topics(s, {s.dead_letter_topic: {}}, partitions=1)
        with kafka_connecting(s, "linewatch-bridge"):
            self._producer = KafkaProducer(**s.kafka_client_kwargs(), acks="all", client_id="linewatch-bridge-dlq", max_block_ms=10_000)
        dead_letters = DeadLetters(self._producer, s.dead_letter_topic)
        delivery = Delivery(window=s.bridge_window, retry_max_s=s.bridge_retry_max_s, max_attempts=s.webhook_max_attempts)
        for sink in self.sinks:
            sink.start()
            runner = SinkRunner(sink, self._consumer, s.input_topics, s.topics.results, dead_letters, delivery, self._on_death)
            self.runners.append(runner)
            runner.start()
        if s.bridge_http_port:
            self.http = HealthServer(s.bridge_http_host, s.bridge_http_port, self.liveness, self.readiness)
            self.http.start()
        log.info("bridge started", sinks=s.sinks, topics=s.input_topics, group=s.bridge_group_id)

    def wait_assigned(self, timeout_s: float = 30.0) -> bool:
        """True once every runner's consumer has its partitions (tests start producing after this)."""
        return all(r.ready.wait(timeout_s) for r in self.runners)

    def liveness(self) -> tuple[bool, dict[str, Any]]:
        dead = [r.name for r in self.runners if not r.is_alive()]
        return not dead and not self.died.is_set(), {"dead_threads": dead, "death": self.death}

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        sinks: dict[str, dict[str, Any]] = {}
        for runner in self.runners:
            up, reason = runner.state()
            sinks[runner.sink.name] = {"up": up, **({"reason": reason} if reason else {})}
            sinks[runner.sink.name].update(getattr(runner.sink, "details", lambda: {})())
        down = [name for name, st in sinks.items() if not st["up"]]
        live, _ = self.liveness()
        return live and not down, {"sinks": sinks, "down": down}

    def stop(self) -> None:
        for runner in self.runners:
            runner.stop()
        for runner in self.runners:
            runner.join(timeout=15)
        for sink in self.sinks:
            sink.close()
        if self.http is not None:
            self.http.stop()
        if self._producer is not None:
            self._producer.close(timeout=5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="linewatch-bridge",
        description="Deliver per-frame verdicts (<base>.results) and/or alerts to OPC UA, MQTT, signed webhooks "
        "or stdout. Settings: LW_* environment variables (README: Settings; docs/integrations.md).",
    )
    parser.add_argument("--sinks", help="override LW_BRIDGE_SINKS, e.g. opcua,mqtt")
    parser.add_argument("--from-beginning", action="store_true", help="a sink's first run reads from the topics' start")
    args = parser.parse_args(argv)
    overrides: dict[str, Any] = {}
    if args.sinks:
        overrides["bridge_sinks"] = args.sinks
    if args.from_beginning:
        overrides["bridge_from_beginning"] = True
    settings = program_settings("linewatch-bridge", BridgeSettings, overrides)
    if settings is None:
        return EXIT_BAD_SETTINGS
    try:
        bridge = Bridge(settings)
    except ConfigError as exc:
        print(f"linewatch-bridge: bad settings: {exc}", file=sys.stderr)
        return EXIT_BAD_SETTINGS
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        bridge.start()
    except ServiceUnavailable as exc:
        log.error("bridge could not start", error=str(exc))
        return 1
    while not stop.is_set() and not bridge.died.is_set():
        stop.wait(0.5)
    bridge.stop()
    return 1 if bridge.died.is_set() else 0


if __name__ == "__main__":
    sys.exit(main())
