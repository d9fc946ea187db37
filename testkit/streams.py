"""Traffic of known-good frames from synthetic cameras, and of their mutants, remembering where
each record landed so that the audit can say what became of it."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import cv2
from kafka import KafkaProducer
from kafka.errors import KafkaError

from linewatch import contract as c
from linewatch.contract import FrameMeta, frame_headers
from linewatch.settings import KafkaSettings
from producer.synthetic import SyntheticCamera
from testkit.fuzz import Fuzzer, Mutant


@dataclass(frozen=True, slots=True)
class Landed:
    """Where a record went: partition and offset in the frames topic."""

    partition: int
    offset: int

    @property
    def frame_id(self) -> str:
        return c.frame_id(self.partition, self.offset)


class GoodStream:
    """Good frames from `cameras` synthetic cameras, optionally paced; remembers where each landed."""

    def __init__(self, bootstrap: str, topic: str, cameras: int, *, size: int = 128,
                 defects: dict[str, tuple[int, int]] | None = None, first_seed: int = 1) -> None:
        self.topic = topic
        # Connection settings as the producer app's (linewatch's KafkaSettings): a broker restart is
        # noticed as soon as the app would notice it.
        kafka = KafkaSettings(kafka_bootstrap=bootstrap).kafka_client_kwargs()
        self.producer = KafkaProducer(**kafka, linger_ms=5, acks="all")
        self.names = [f"cam-{i + 1}" for i in range(cameras)]
        self.cams = {
            name: SyntheticCamera(seed=first_seed + i, width=size, height=size, defect_rate=0.0,
                                  defect_from=(defects or {}).get(name, (None, None))[0],
                                  defect_to=(defects or {}).get(name, (None, None))[1])
            for i, name in enumerate(self.names)
        }
        self.size = size
        self.landed: dict[tuple[str, int], Landed] = {}
        self.failed = 0
        self._next = {name: 0 for name in self.names}
        self._lock = threading.Lock()
        self._frames: dict[tuple[str, int], bytes] = {}

    def record(self, camera: str, seq: int) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
        """(key, value, headers) of a good frame."""
        value = cv2.imencode(".jpg", self.cams[camera].render(seq)[0], [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes()
        meta = FrameMeta(camera=camera, seq=seq, capture_ns=time.time_ns(), encoding="jpeg", width=self.size, height=self.size)
        return camera.encode(), value, frame_headers(meta)

    def send_one(self, camera: str) -> None:
        with self._lock:
            seq = self._next[camera]
            self._next[camera] = seq + 1
        key, value, headers = self.record(camera, seq)

        def ok(md: Any) -> None:
            self.landed[(camera, seq)] = Landed(md.partition, md.offset)

        def bad(_exc: Any) -> None:
            self.failed += 1

        try:
            future = self.producer.send(self.topic, key=key, value=value, headers=headers)
        except KafkaError:  # no metadata or buffer within max_block_ms (a broker away): not sent, not audited
            self.failed += 1
            return
        future.add_callback(ok).add_errback(bad)

    def send_round(self) -> None:
        for name in self.names:
            self.send_one(name)

    def run(self, rounds: int, fps: float = 0.0, stop: threading.Event | None = None) -> None:
        """`rounds` frames per camera at `fps` per camera (0: as fast as Kafka takes them)."""
        period = 1.0 / fps if fps else 0.0
        due = time.monotonic()
        for _ in range(rounds):
            if stop is not None and stop.is_set():
                break
            self.send_round()
            if period:
                due += period
                time.sleep(max(0.0, due - time.monotonic()))
        self.flush()

    def flush(self, timeout_s: float = 180.0) -> None:
        """Wait until every record sent is acknowledged or failed (the producer gives a record up
        after its delivery timeout, 120 s: a broker restart must not end the stream)."""
        try:
            self.producer.flush(timeout_s)
        except KafkaError:  # those still unanswered are counted by their errback when they expire
            pass

    def close(self) -> None:
        self.flush()
        self.producer.close(10)


class FuzzStream:
    """Sends mutants of a GoodStream's frames (to a `fuzz-*` camera's key) and remembers where each landed."""

    def __init__(self, bootstrap: str, topic: str, good: GoodStream, seed: int = 0) -> None:
        self.topic = topic
        self.good = good
        self.fuzzer = Fuzzer(seed)
        self.producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all",
                                      max_request_size=8 * 1024 * 1024)
        self.landed: dict[int, tuple[Landed, Mutant]] = {}
        self.refused: Counter = Counter()  # mutations of mutants the Kafka client refused to send
        self._n = 0
        self._other = good.record(good.names[-1], 0)[1]

    def send(self, count: int) -> None:
        rng = self.fuzzer.rng
        for _ in range(count):
            camera = f"fuzz-{rng.randrange(4)}"
            seq = rng.randrange(10**6)
            key, value, headers = self._fuzz_base(camera, seq)
            mutant = self.fuzzer.mutate(key, value, headers, self._other)
            n = self._n
            self._n += 1

            def ok(md: Any, n: int = n, mutant: Mutant = mutant) -> None:
                self.landed[n] = (Landed(md.partition, md.offset), mutant)

            def bad(_exc: Any, mutant: Mutant = mutant) -> None:
                self.refused.update(mutant.kinds)

            try:
                future = self.producer.send(self.topic, key=mutant.key, value=mutant.value, headers=mutant.headers)
            except Exception:  # noqa: BLE001 - the client refused the mutant before sending: nothing landed
                self.refused.update(mutant.kinds)
                continue
            future.add_callback(ok).add_errback(bad)
        try:
            self.producer.flush(180)
        except KafkaError:  # a broker away: those unanswered are counted by their errback later
            pass

    def _fuzz_base(self, camera: str, seq: int) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
        value = self.good.record(self.good.names[seq % len(self.good.names)], seq % 50)[1]
        meta = FrameMeta(camera=camera, seq=seq, capture_ns=time.time_ns(), encoding="jpeg",
                         width=self.good.size, height=self.good.size)
        return camera.encode(), value, frame_headers(meta)

    def close(self) -> None:
        self.producer.close(10)
