"""Reference alert consumer: follows the alert topic with its own consumer group and prints
each alert as one JSON line (or forwards it to a webhook). Shows how alerts are meant to be read:
own group, commit after handling, deduplicate by (camera, frame_id) since delivery is at least once.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import urllib.request
from collections import OrderedDict

import structlog
from kafka import KafkaConsumer
from kafka.errors import KafkaError
from pydantic import Field

from linewatch.connect import kafka_connecting
from linewatch.contract import Alert
from linewatch.errors import FrameRejected, ServiceUnavailable
from linewatch.settings import KafkaSettings, RedisSettings
from linewatch.startup import EXIT_BAD_SETTINGS, program_settings
from linewatch.topics import await_partitions

log = structlog.get_logger(__name__)

TOPIC_WAIT_S = 60.0  # how long a start waits for the alert topic to exist


class AlertConsumerSettings(KafkaSettings, RedisSettings):
    """Settings of `linewatch-alerts`."""

    alerts_group_id: str = Field("linewatch-alert-printer", description="Consumer group of the alert consumer.")
    alerts_webhook: str | None = Field(None, description="POST each alert's JSON here instead of printing it.")
    alerts_from_beginning: bool = Field(False, description="Read the alert topic from its start on first run.")


class _Seen:
    """Remembers the last few thousand alert identities to drop redeliveries."""

    def __init__(self, size: int = 4096) -> None:
        self._keys: OrderedDict[tuple[str, str], None] = OrderedDict()
        self.size = size

    def first_time(self, key: tuple[str, str]) -> bool:
        if key in self._keys:
            return False
        self._keys[key] = None
        if len(self._keys) > self.size:
            self._keys.popitem(last=False)
        return True


def handle(alert: Alert, webhook: str | None) -> None:
    line = alert.to_json()
    if webhook:
        request = urllib.request.Request(webhook, data=line, headers={"Content-Type": "application/json"})
        urllib.request.urlopen(request, timeout=10).close()
    else:
        print(line.decode(), flush=True)


def follow(
    settings: AlertConsumerSettings, max_alerts: int = 0, idle_exit_s: float = 0, stop: threading.Event | None = None
) -> int:
    """Consume alerts; stop after `max_alerts` (0: never), `idle_exit_s` without one (0: never) or
    when `stop` is set, within one poll (half a second)."""
    stop = stop or threading.Event()
    with kafka_connecting(settings, "linewatch-alerts"):
        consumer = KafkaConsumer(
            **settings.kafka_client_kwargs(),
            group_id=settings.alerts_group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest" if settings.alerts_from_beginning else "latest",
        )
    seen, count, idle = _Seen(), 0, 0.0
    try:
        # Subscribe, then wait for the topic, then let the first poll join (the worker's order,
        # worker/kafka_input.py): a member that joins while the topic is missing may be assigned
        # nothing until the group rebalances again. In containers this program starts before the
        # topics one-shot; past the wait it exits 1, saying why, and its restart policy retries.
        consumer.subscribe([settings.topics.alerts])
        await_partitions(consumer, settings.topics.alerts, stop, TOPIC_WAIT_S)
        while (not max_alerts or count < max_alerts) and not stop.is_set():
            polled = consumer.poll(timeout_ms=500)
            idle = 0.0 if polled else idle + 0.5
            if idle_exit_s and idle >= idle_exit_s:
                break
            for records in polled.values():
                for record in records:
                    try:
                        alert = Alert.from_json(record.value)
                    except (FrameRejected, ValueError, TypeError, KeyError) as exc:
                        log.warning("unreadable alert skipped", error=str(exc), offset=record.offset)
                        continue
                    if seen.first_time((alert.camera, alert.frame_id)):
                        handle(alert, settings.alerts_webhook)
                        count += 1
            if polled:
                consumer.commit()  # after handling: an alert is never lost, at worst seen twice
    except KafkaError as exc:
        log.error("alert consumer stopped", error=str(exc))
        return -1
    finally:
        consumer.close()
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="linewatch-alerts",
        description="Follow the alert topic and print each alert as a JSON line (or POST it to "
        "LW_ALERTS_WEBHOOK). Settings: LW_* environment variables (README: Settings).",
    )
    parser.add_argument("--max-alerts", type=int, default=0, help="stop after this many alerts (0: never)")
    parser.add_argument("--idle-exit", type=float, default=0, help="stop after this many seconds without alerts")
    parser.add_argument("--from-beginning", action="store_true", help="read the topic from its start")
    args = parser.parse_args(argv)
    overrides = {"alerts_from_beginning": True} if args.from_beginning else {}
    settings = program_settings("linewatch-alerts", AlertConsumerSettings, overrides)
    if settings is None:
        return EXIT_BAD_SETTINGS
    # SIGTERM ends the loop after the current poll, with what was handled committed. Without a
    # handler, the process is PID 1 in its container, where an unhandled SIGTERM is ignored: it was
    # killed at the end of every stop's grace period.
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        return 0 if follow(settings, args.max_alerts, args.idle_exit, stop) >= 0 else 1
    except ServiceUnavailable as exc:
        log.error("alert consumer could not start", error=str(exc))
        return 1


if __name__ == "__main__":
    sys.exit(main())
