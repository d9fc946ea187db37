"""How soon Kafka clients notice a restarted broker: their reconnect back-off, measured.

One private broker (testkit/services.py PrivateKafka) and four producers writing to it every 0.2 s:
kafka-python and librdkafka (confluent-kafka), each with its library's default reconnect back-off
and with linewatch's `LW_KAFKA_RECONNECT_BACKOFF_MAX_MS` (via KafkaSettings.kafka_client_kwargs).
The broker is stopped for `--down-s`, started again, and each client's first acknowledged record
after the broker answered (ApiVersions, as kafka.sh start waits for) is timed. All clients share
the one restart, so the figures compare like with like however long the broker takes to start.

    .venv/bin/python bench/reconnect.py [--down-s 15] [--out bench/results/reconnect.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from confluent_kafka import Producer  # noqa: E402
from kafka import KafkaProducer  # noqa: E402

from testkit.services import PrivateKafka  # noqa: E402
from testkit.topics import create_topics  # noqa: E402
from linewatch.settings import KafkaSettings  # noqa: E402


class Client(threading.Thread):
    """Sends one record every 0.2 s; remembers when each acknowledgement came."""

    def __init__(self, name: str, send: Callable[[Callable[[], None]], None], serve: Callable[[], None]) -> None:
        super().__init__(daemon=True)
        self.name, self._send, self._serve = name, send, serve
        self.acks: list[float] = []
        self.failures: Counter[str] = Counter()  # delivery errors by kind (expired batches, ...)
        self.done = threading.Event()

    def failed(self, exc: object) -> None:
        self.failures[type(exc).__name__ if isinstance(exc, BaseException) else str(exc)] += 1

    def _acked(self) -> None:
        self.acks.append(time.time())

    def run(self) -> None:
        while not self.done.is_set():
            try:
                self._send(self._acked)
            except Exception as exc:  # noqa: BLE001 - refused at send (no metadata in time, full buffer): count it, keep trying
                self.failures[f"send: {type(exc).__name__}"] += 1
            self._serve()
            time.sleep(0.2)

    def first_after(self, t: float) -> float | None:
        return next((a - t for a in list(self.acks) if a > t), None)


def kafka_python(name: str, topic: str, kwargs: dict[str, Any]) -> Client:
    producer = KafkaProducer(**kwargs, linger_ms=5, acks="all", max_block_ms=100)
    client = Client(name, lambda ok: producer.send(topic, b"x").add_callback(lambda _md: ok()).add_errback(client.failed),
                    lambda: None)
    return client


def librdkafka(name: str, topic: str, config: dict[str, Any]) -> Client:
    producer = Producer({**config, "linger.ms": 5, "acks": "all", "message.timeout.ms": 600_000})

    def send(ok: Callable[[], None]) -> None:
        producer.produce(topic, b"x", on_delivery=lambda err, _msg: ok() if err is None else client.failed(err.name()))

    client = Client(name, send, lambda: producer.poll(0.05))
    return client


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--down-s", type=float, default=15.0)
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "reconnect.json"))
    args = parser.parse_args(argv)
    # kafka-python's own warnings, timed, on stderr: what a client says while it does not recover.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(threadName)s %(name)s %(message)s")
    broker = PrivateKafka(Path(tempfile.mkdtemp(prefix="reconnect-")))
    broker.start()
    try:
        base = f"reconnect-{os.getpid()}"
        create_topics(broker.bootstrap, base, 1)
        topic = f"{base}.frames"
        bounded = KafkaSettings(kafka_bootstrap=broker.bootstrap).kafka_client_kwargs()
        limit = bounded["reconnect_backoff_max_ms"]
        clients = [
            kafka_python("kafka-python, default (30000 ms)", topic, {"bootstrap_servers": broker.bootstrap}),
            kafka_python(f"kafka-python, linewatch ({limit} ms)", topic, bounded),
            librdkafka("librdkafka, default (10000 ms)", topic, {"bootstrap.servers": broker.bootstrap}),
            librdkafka(f"librdkafka, linewatch ({limit} ms)", topic,
                       {"bootstrap.servers": broker.bootstrap, "reconnect.backoff.max.ms": limit}),
        ]
        for c in clients:
            c.start()
        time.sleep(5)
        stopped = time.time()
        broker.stop()
        time.sleep(args.down_s)
        broker.start()
        answered = time.time()
        deadline = answered + 120
        while time.time() < deadline and any(c.first_after(answered) is None for c in clients):
            time.sleep(0.2)
        for c in clients:
            c.done.set()
        rows = [{"client": c.name, "first_ack_after_answer_s": None if (s := c.first_after(answered)) is None else round(s, 2),
                 "delivery_failures": dict(c.failures)} for c in clients]
    finally:
        broker.remove()
    result = {"machine": f"{platform.node()}, {os.cpu_count()} cores", "down_s": args.down_s,
              "broker_away_s": round(answered - stopped, 1), "rows": rows,
              "command": "bench/reconnect.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"broker away {result['broker_away_s']} s (stopped {args.down_s:g} s, then its start-up)\n")
    print("| client (reconnect.backoff.max) | first record acknowledged after the broker answered | delivery failures |\n|---|---|---|")
    for r in rows:
        s = r["first_ack_after_answer_s"]
        failures = ", ".join(f"{k} {v}" for k, v in r["delivery_failures"].items()) or "none"
        print(f"| {r['client']} | {'none within 120 s' if s is None else f'{s} s'} | {failures} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
