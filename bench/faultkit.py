"""The parts of the fault harness (bench/faults.py), usable on their own by tests.

    PrivateRedis, PrivateKafka   services of the harness's own, to stop, restart or fill
    WorkerPool                   worker processes (`python -m worker.app`) that can be killed and restarted
    GoodStream                   known-good frames from synthetic cameras, with where each one landed
    Fuzzer                       structure-aware mutations of good frame records
    ProgressWatch                committed offsets per partition over time, and workers' memory
    audit()                      what became of every record: scored once, dead-lettered, or lost
    spawn()                      a child process that dies with the thread that started it

Everything talks to real Kafka and Redis; nothing here is a mock.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import ctypes
import cv2
import numpy as np
import redis
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient

from linewatch import contract as c
from linewatch.contract import FrameMeta, frame_headers
from linewatch.settings import KafkaSettings
from producer.synthetic import SyntheticCamera

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- services of the harness's own -------------------------------------------------------------------
class PrivateRedis:
    """A redis-server on a free port, so it can be stopped, restarted or filled without harming others."""

    def __init__(self, folder: Path, maxmemory: str | None = None) -> None:
        self.port = free_port()
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.maxmemory = maxmemory

    def start(self) -> None:
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--daemonize", "yes",
                "--dir", str(self.folder), "--dbfilename", "dump.rdb", "--save", "",
                "--pidfile", str(self.folder / "redis.pid"), "--logfile", str(self.folder / "redis.log")]
        if self.maxmemory:
            args += ["--maxmemory", self.maxmemory, "--maxmemory-policy", "noeviction"]
        subprocess.run(args, check=True)
        client = redis.Redis.from_url(self.url)
        for _ in range(200):
            try:
                client.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError(f"private redis on {self.port} did not start")

    def stop(self) -> None:
        """SHUTDOWN SAVE: the data survives the outage, as with a persistent production Redis."""
        try:
            redis.Redis.from_url(self.url).shutdown(save=True)
        except redis.ConnectionError:
            pass  # the server closes the connection as it exits

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)


class PrivateKafka:
    """A second broker started by deploy/local/kafka.sh in a folder of its own (for broker restarts)."""

    def __init__(self, folder: Path) -> None:
        self.port, self.cport = free_port(), free_port()
        self.folder = Path(folder)
        self.bootstrap = f"127.0.0.1:{self.port}"
        self._env = {**os.environ, "LW_KAFKA_PORT": str(self.port), "LW_KAFKA_CONTROLLER_PORT": str(self.cport),
                     "LW_RUN_DIR": str(self.folder), "LW_KAFKA_NAME": "kafka-faults", "LW_KAFKA_HEAP": "384m"}

    def _script(self, verb: str) -> None:
        subprocess.run(["bash", str(REPO / "deploy/local/kafka.sh"), verb], env=self._env, check=True,
                       stdout=subprocess.DEVNULL)

    def start(self) -> None:
        self._script("start")

    def stop(self) -> None:
        self._script("stop")

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


def create_topics(bootstrap: str, base: str, partitions: int) -> None:
    from linewatch.settings import KafkaSettings
    from linewatch.topics import ensure_topics

    ensure_topics(KafkaSettings(kafka_bootstrap=bootstrap, topic_base=base), partitions)


def delete_topics(bootstrap: str, base: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.delete_topics([f"{base}.frames", f"{base}.alerts", f"{base}.frames.dlq"], raise_errors=False)
    finally:
        admin.close()


# -- workers ---------------------------------------------------------------------------------------
def read_rss(pid: int) -> tuple[int, int]:
    """(current RSS, peak RSS) of a process in bytes, from /proc; (0, 0) once it is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0, 0
    values = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in text.splitlines() if line.startswith(("VmRSS", "VmHWM"))}
    return values.get("VmRSS", 0), values.get("VmHWM", 0)


@dataclass
class WorkerProc:
    name: str
    proc: subprocess.Popen
    port: int
    log: Path


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # A benchmark killed by a timeout or ^C must not leave producers and workers loading the machine
    # (and the next measurement) for hours.
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def spawn(argv: list[str], tied: bool = True, **kwargs: Any) -> subprocess.Popen:
    """A child process run from the repository root. A tied one is killed by the kernel when the
    thread that started it ends, so start tied children from the main thread only."""
    tie = _die_with_parent if tied and sys.platform == "linux" else None
    return subprocess.Popen(argv, cwd=REPO, preexec_fn=tie, **kwargs)


class WorkerPool:
    """Worker processes configured only by LW_* variables, as a supervisor would run them."""

    def __init__(self, env: dict[str, str], log_dir: Path, tied: bool = False) -> None:
        self.env = env
        self.tied = tied  # see spawn(): only for a pool whose workers all start on the main thread
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.workers: dict[str, WorkerProc] = {}
        self.exits: list[tuple[str, int]] = []  # (worker, exit code) of every process that ended
        self.starts = 0
        self.peak_rss = 0

    def start(self, name: str, **overrides: str) -> WorkerProc:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("LW_")}
        env.update(self.env)
        env.update({"LW_WORKER_ID": name, "LW_HTTP_PORT": str(port), "LW_HTTP_HOST": "127.0.0.1",
                    "PYTHONUNBUFFERED": "1", **overrides})
        log = self.log_dir / f"{name}.{self.starts}.log"
        proc = spawn([sys.executable, "-m", "worker.app"], self.tied, env=env, stdout=log.open("wb"),
                     stderr=subprocess.STDOUT)
        self.starts += 1
        self.workers[name] = WorkerProc(name, proc, port, log)
        return self.workers[name]

    def ready(self, name: str) -> tuple[int, dict]:
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.workers[name].port}/readyz", timeout=2) as reply:
                return reply.status, json.loads(reply.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")
        except (OSError, ValueError):
            return 0, {}

    def wait_ready(self, names: list[str], timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(self.ready(n)[0] == 200 for n in names):
                return
            for n in names:
                if self.workers[n].proc.poll() is not None:
                    raise RuntimeError(f"worker {n} exited: {self.workers[n].log.read_text()[-2000:]}")
            time.sleep(0.3)
        raise RuntimeError(f"workers {names} not ready within {timeout_s} s")

    def signal(self, name: str, sig: int, timeout_s: float = 60) -> int:
        """Send `sig` and wait for the worker to end; it is not restarted (the caller decides)."""
        worker = self.workers.pop(name)
        worker.proc.send_signal(sig)
        code = worker.proc.wait(timeout_s)
        self.exits.append((name, code))
        return code

    def sample_rss(self) -> None:
        for w in self.workers.values():
            if w.proc.poll() is None:
                self.peak_rss = max(self.peak_rss, read_rss(w.proc.pid)[1])

    def reap(self) -> list[tuple[str, int]]:
        """Workers that ended on their own since the last call (as a supervisor would notice them)."""
        ended = [(name, code) for name, w in list(self.workers.items()) if (code := w.proc.poll()) is not None]
        for name, code in ended:
            self.exits.append((name, code))
            del self.workers[name]
        return ended

    def stop_all(self, timeout_s: float = 60) -> None:
        for name in list(self.workers):
            self.signal(name, signal.SIGTERM, timeout_s)


# -- traffic ---------------------------------------------------------------------------------------
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

        self.producer.send(self.topic, key=key, value=value, headers=headers).add_callback(ok).add_errback(bad)

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
        self.producer.flush(60)

    def close(self) -> None:
        self.producer.flush(60)
        self.producer.close(10)


class RawName(str):
    """A header name whose bytes on the wire are not UTF-8 (kafka-python encodes names with str.encode)."""

    raw: bytes

    def __new__(cls, raw: bytes) -> "RawName":
        obj = super().__new__(cls, raw.decode("latin-1"))
        obj.raw = raw
        return obj

    def encode(self, *args: object, **kwargs: object) -> bytes:  # noqa: ARG002
        return self.raw


def png_bomb(width: int = 30000, height: int = 30000) -> bytes:
    """A small PNG whose IHDR declares `width` x `height` pixels."""
    small = cv2.imencode(".png", np.zeros((8, 8), np.uint8))[1].tobytes()
    data = struct.pack(">II", width, height) + small[24:29]
    return small[:16] + data + struct.pack(">I", zlib.crc32(b"IHDR" + data)) + small[33:]


def jpeg_bomb(width: int = 20000, height: int = 20000) -> bytes:
    """A small JPEG whose start-of-frame declares `width` x `height` pixels."""
    jpeg = bytearray(cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))[1].tobytes())
    pos = 2
    while pos < len(jpeg):
        marker, length = jpeg[pos + 1], struct.unpack(">H", jpeg[pos + 2 : pos + 4])[0]
        if marker == 0xC0:
            jpeg[pos + 5 : pos + 9] = struct.pack(">HH", height, width)
            return bytes(jpeg)
        pos += 2 + length
    raise RuntimeError("no SOF0 in OpenCV's JPEG")


HEADER_REASONS = frozenset({c.R_BAD_HEADER, c.R_MISSING_HEADER, c.R_UNKNOWN_SCHEMA, c.R_KEY_MISMATCH})
IMAGE_REASONS = frozenset({c.R_UNDECODABLE, c.R_WRONG_DIMENSIONS, c.R_OVERSIZE})


@dataclass(slots=True)
class Mutant:
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]
    kinds: list[str] = field(default_factory=list)
    must_reject: bool = False  # at least one mutation makes the record invalid for certain
    acceptable: set[str] = field(default_factory=set)  # dead-letter reasons the mutations may cause
    # Header damage is judged on the final headers: a later op may drop the header an earlier one
    # broke (an empty lw-channels, then lw-channels dropped, is a valid record again).
    bad_values: set[tuple[str, bytes | None]] = field(default_factory=set)  # (name, value) invalid for certain
    touched: set[str] = field(default_factory=set)  # names duplicated or dropped

    def headers_certainly_bad(self) -> bool:
        for name in self.touched | {n for n, _ in self.bad_values}:
            values = [v for k, v in self.headers if k == name]
            if not values and name != c.H_CHANNELS:
                return True  # a required header is missing
            if len(set(values)) > 1 or (len(values) == 1 and (name, values[0]) in self.bad_values):
                return True
        return False


# An operation changes a Mutant and says (certainly invalid?, reasons it may cause).
Op = Callable[[Mutant, dict[str, bytes]], tuple[bool, frozenset[str]]]
_NONE: tuple[bool, frozenset[str]] = (False, frozenset())


class Fuzzer:
    """Mutates good frame records: header names and values, keys, values, encodings, dimensions.

    Each mutant gets one to three mutations. The worker checks a record in one order and
    dead-letters it with the reason of the first check that fails, so a mutant's acceptable
    reasons are the union of what its mutations may cause. A mutation of image bytes may leave a
    decodable image: unless another mutation is certain to invalidate the record, the audit then
    accepts one result or one dead letter, but never neither and never both.
    """

    def __init__(self, seed: int = 0) -> None:
        self.rng = random.Random(seed)
        self.ops: list[Op] = [
            self._header_name_not_utf8, self._header_name_empty, self._header_name_huge, self._header_name_non_ascii,
            self._header_value_empty, self._header_value_huge, self._header_value_not_ascii, self._header_value_negative,
            self._header_value_overflow, self._header_duplicate_conflict, self._header_dropped,
            self._key_missing, self._key_odd, self._key_long, self._value_truncated, self._value_bit_flips,
            self._value_swapped, self._value_null, self._value_random, self._encoding_lies, self._dimensions_lie,
            self._png_bomb, self._jpeg_bomb,
        ]
        # Mutations that replace the value; a later one may undo what an earlier one broke.
        self._value_ops = {self._value_truncated, self._value_bit_flips, self._value_swapped, self._value_null,
                           self._value_random, self._png_bomb, self._jpeg_bomb}

    def mutate(self, key: bytes, value: bytes, headers: list[tuple[str, bytes]], other: bytes) -> Mutant:
        m = Mutant(key, value, list(headers))
        value_certain = False  # only the last mutation of the value decides what the value is
        for op in self.rng.sample(self.ops, self.rng.randint(1, 3)):
            certain, reasons = op(m, {"other": other})
            m.kinds.append(op.__name__.lstrip("_"))
            if op in self._value_ops:
                value_certain = certain
            else:
                m.must_reject |= certain
            m.acceptable |= reasons
        m.must_reject |= value_certain or m.headers_certainly_bad()
        if "header_name_not_utf8" in m.kinds:  # the client fails before any check of ours sees the record
            m.must_reject, m.acceptable = True, {c.R_UNPARSEABLE}
        return m

    # header names
    def _header_name_not_utf8(self, m: Mutant, _: dict) -> tuple[bool, frozenset[str]]:
        m.headers.append((RawName(b"lw-\xff\xfe" + bytes([self.rng.randrange(128, 256)])), b"x"))
        return True, frozenset({c.R_UNPARSEABLE})

    def _header_name_empty(self, m: Mutant, _: dict) -> tuple[bool, frozenset[str]]:
        m.headers.append(("", b"x"))  # not one of ours: ignored
        return _NONE

    def _header_name_huge(self, m: Mutant, _: dict) -> tuple[bool, frozenset[str]]:
        m.headers.append(("x-" + "n" * 20_000, b"x"))
        return _NONE

    def _header_name_non_ascii(self, m: Mutant, _: dict) -> tuple[bool, frozenset[str]]:
        m.headers.append(("lw-s\u00e9q", b"1"))
        return _NONE

    def _pick(self, m: Mutant) -> int:
        ours = [i for i, (k, _) in enumerate(m.headers) if k in _REQUIRED]
        return self.rng.choice(ours) if ours else -1

    # header values
    def _set(self, m: Mutant, value: bytes | None) -> tuple[bool, frozenset[str]]:
        i = self._pick(m)
        if i < 0:
            return _NONE
        name = m.headers[i][0]
        m.headers[i] = (name, value)
        if name == c.H_CHANNELS and value is None:
            return _NONE  # lw-channels is optional: a null one is as good as none
        m.bad_values.add((name, value))
        return False, HEADER_REASONS  # certainty: Mutant.headers_certainly_bad, on the final headers

    def _header_value_empty(self, m: Mutant, _: dict) -> tuple[bool, frozenset[str]]:
        return self._set(m, b"")

    def _header_value_huge(self, m: Mutant, _: dict) -> tuple[bool, frozenset[str]]:
        return self._set(m, b"9" * 50_000)

    def _header_value_not_ascii(self, m: Mutant, _: dict) -> tuple[bool, frozenset[str]]:
        return self._set(m, b"\xff\xfe\x00")

    def _header_value_negative(self, m: Mutant, _: dict) -> tuple[bool, frozenset[str]]:
        return self._set(m, b"-" + str(self.rng.randint(1, 10**6)).encode())

    def _header_value_overflow(self, m: Mutant, _: dict) -> tuple[bool, frozenset[str]]:
        return self._set(m, str(2**64 + self.rng.randint(0, 1000)).encode())

    def _header_duplicate_conflict(self, m: Mutant, _: dict) -> tuple[bool, frozenset[str]]:
        i = self._pick(m)
        if i < 0:
            return _NONE
        name, value = m.headers[i]
        m.headers.append((name, (value or b"") + b"7"))
        m.touched.add(name)
        return False, HEADER_REASONS

    def _header_dropped(self, m: Mutant, _: dict) -> tuple[bool, frozenset[str]]:
        i = self._pick(m)
        if i < 0:
            return _NONE
        name = m.headers.pop(i)[0]
        m.touched.add(name)
        return _NONE if name == c.H_CHANNELS else (False, HEADER_REASONS)

    # keys
    def _key_missing(self, m: Mutant, _: dict) -> tuple[bool, frozenset[str]]:
        m.key = None
        return True, frozenset({c.R_MISSING_KEY}) | HEADER_REASONS

    def _key_odd(self, m: Mutant, _: dict) -> tuple[bool, frozenset[str]]:
        m.key = b"\x00\xff" + bytes(self.rng.randrange(256) for _ in range(6))
        return True, HEADER_REASONS

    def _key_long(self, m: Mutant, _: dict) -> tuple[bool, frozenset[str]]:
        m.key = b"k" * 100_000
        return True, HEADER_REASONS

    # values
    def _value_truncated(self, m: Mutant, _: dict) -> tuple[bool, frozenset[str]]:
        if m.value:
            m.value = m.value[: self.rng.randrange(0, len(m.value))]
        return False, IMAGE_REASONS

    def _value_bit_flips(self, m: Mutant, _: dict) -> tuple[bool, frozenset[str]]:
        if m.value:
            data = bytearray(m.value)
            for _ in range(self.rng.randint(1, 10)):
                data[self.rng.randrange(len(data))] ^= 1 << self.rng.randrange(8)
            m.value = bytes(data)
        return False, IMAGE_REASONS

    def _value_swapped(self, m: Mutant, ctx: dict) -> tuple[bool, frozenset[str]]:
        m.value = ctx["other"]  # another camera's frame of the same size: may well be valid
        return False, IMAGE_REASONS

    def _value_null(self, m: Mutant, _: dict) -> tuple[bool, frozenset[str]]:
        m.value = None
        return True, IMAGE_REASONS

    def _value_random(self, m: Mutant, _: dict) -> tuple[bool, frozenset[str]]:
        m.value = bytes(self.rng.randrange(256) for _ in range(self.rng.randint(1, 4096)))
        return False, IMAGE_REASONS

    # encodings and dimensions
    def _encoding_lies(self, m: Mutant, _: dict) -> tuple[bool, frozenset[str]]:
        for i, (k, _v) in enumerate(m.headers):
            if k == c.H_ENCODING:
                m.headers[i] = (k, self.rng.choice([b"png", b"raw"]))
        return False, IMAGE_REASONS  # certain only while the value is still the JPEG, which a later op may change

    def _dimensions_lie(self, m: Mutant, _: dict) -> tuple[bool, frozenset[str]]:
        for i, (k, v) in enumerate(m.headers):
            if k in (c.H_WIDTH, c.H_HEIGHT) and v and v.isdigit() and len(v) <= 9:  # an earlier op may have made it 50 KB of digits
                m.headers[i] = (k, str(int(v) * self.rng.choice([2, 3, 7])).encode())
        return False, IMAGE_REASONS | HEADER_REASONS

    def _png_bomb(self, m: Mutant, _: dict) -> tuple[bool, frozenset[str]]:
        m.value = png_bomb(self.rng.choice([30000, 20000, 16384]), self.rng.choice([30000, 20000, 16384]))
        m.headers = [(k, b"png" if k == c.H_ENCODING else v) for k, v in m.headers]
        return True, IMAGE_REASONS

    def _jpeg_bomb(self, m: Mutant, _: dict) -> tuple[bool, frozenset[str]]:
        m.value = jpeg_bomb(self.rng.choice([20000, 16000, 9000]), self.rng.choice([20000, 12000]))
        m.headers = [(k, b"jpeg" if k == c.H_ENCODING else v) for k, v in m.headers]
        return True, IMAGE_REASONS


_REQUIRED = (c.H_SCHEMA, c.H_CAMERA, c.H_SEQ, c.H_CAPTURE_NS, c.H_ENCODING, c.H_WIDTH, c.H_HEIGHT, c.H_CHANNELS)


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
        self.producer.flush(60)

    def _fuzz_base(self, camera: str, seq: int) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
        value = self.good.record(self.good.names[seq % len(self.good.names)], seq % 50)[1]
        meta = FrameMeta(camera=camera, seq=seq, capture_ns=time.time_ns(), encoding="jpeg",
                         width=self.good.size, height=self.good.size)
        return camera.encode(), value, frame_headers(meta)

    def close(self) -> None:
        self.producer.close(10)


# -- watching --------------------------------------------------------------------------------------
class ProgressWatch(threading.Thread):
    """Samples the group's committed offsets, the topic's end offsets and the workers' memory each second."""

    def __init__(self, bootstrap: str, group: str, topic: str, pool: WorkerPool, redis_client: redis.Redis | None = None) -> None:
        super().__init__(name="progress-watch", daemon=True)
        self.bootstrap, self.group, self.topic, self.pool = bootstrap, group, topic, pool
        self.redis = redis_client
        self.stop_event = threading.Event()
        self.outages: list[tuple[float, float]] = []  # deliberate outage windows (monotonic), excluded
        self.longest_stall: dict[int, float] = {}
        self.redis_memory: list[tuple[float, int]] = []
        self.rss: list[tuple[float, int]] = []

    def outage(self, start: float, end: float) -> None:
        self.outages.append((start, end))

    def _in_outage(self, t0: float, t1: float) -> bool:
        return any(a <= t1 and t0 <= b + 10 for a, b in self.outages)  # 10 s of grace to catch up

    def run(self) -> None:
        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap)
        consumer = KafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None)
        last: dict[int, tuple[int, float]] = {}
        try:
            while not self.stop_event.wait(1.0):
                now = time.monotonic()
                self.pool.sample_rss()
                rss = sum(read_rss(w.proc.pid)[0] for w in self.pool.workers.values() if w.proc.poll() is None)
                self.rss.append((now, rss))
                if self.redis is not None:
                    try:
                        self.redis_memory.append((now, int(self.redis.info("memory")["used_memory"])))
                    except redis.RedisError:
                        pass
                try:
                    committed = admin.list_group_offsets(self.group).get(self.group, {})
                    parts = [TopicPartition(self.topic, p) for p in consumer.partitions_for_topic(self.topic) or ()]
                    ends = consumer.end_offsets(parts)
                except Exception:  # noqa: BLE001 - the broker may be down on purpose; try again next second
                    continue
                for tp in parts:
                    done = committed[tp].offset if tp in committed else 0
                    prev = last.get(tp.partition)
                    if prev is None or done != prev[0] or done >= ends[tp]:
                        last[tp.partition] = (done, now)
                        continue
                    if not self._in_outage(prev[1], now):
                        self.longest_stall[tp.partition] = max(self.longest_stall.get(tp.partition, 0.0), now - prev[1])
        finally:
            consumer.close()
            admin.close()

    def stalled_partitions(self, limit_s: float = 30.0) -> int:
        return sum(1 for s in self.longest_stall.values() if s >= limit_s)

    def stop(self) -> None:
        self.stop_event.set()
        self.join(10)


def wait_committed(bootstrap: str, group: str, topic: str, timeout_s: float) -> bool:
    """Wait until the group committed every partition up to its end offset."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            try:
                parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
                ends = consumer.end_offsets(parts)
                committed = admin.list_group_offsets(group).get(group, {})
                if parts and all((committed[tp].offset if tp in committed else 0) >= ends[tp] for tp in parts):
                    return True
            except Exception:  # noqa: BLE001 - broker restarting: keep waiting
                pass
            time.sleep(0.5)
        return False
    finally:
        consumer.close()
        admin.close()


def read_topic(bootstrap: str, topic: str, idle_s: float = 3.0) -> list[Any]:
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None,
                             fetch_max_bytes=64 * 1024 * 1024, max_partition_fetch_bytes=32 * 1024 * 1024)
    records: list[Any] = []
    quiet_since = time.monotonic()
    try:
        while time.monotonic() - quiet_since < idle_s:
            got = consumer.poll(timeout_ms=500)
            if got:
                quiet_since = time.monotonic()
                for batch in got.values():
                    records.extend(batch)
    finally:
        consumer.close()
    return records


# -- the audit -------------------------------------------------------------------------------------
@dataclass
class Audit:
    good_sent: int = 0
    good_scored_once: int = 0
    good_missing: int = 0
    duplicates: int = 0  # results visible twice in Redis
    bad_sent: int = 0
    bad_dead_lettered: int = 0
    bad_scored: int = 0  # a mutation that left a valid frame
    bad_unaccounted: int = 0
    reason_ok: int = 0  # dead letters whose reason is one the mutations may cause
    must_reject: int = 0
    must_reject_dead_lettered: int = 0
    reasons: Counter = field(default_factory=Counter)
    mismatches: list[str] = field(default_factory=list)

    @property
    def good_pct(self) -> float:
        return 100.0 * self.good_scored_once / self.good_sent if self.good_sent else 100.0

    @property
    def bad_pct(self) -> float:
        accounted = self.bad_dead_lettered + self.bad_scored
        return 100.0 * accounted / self.bad_sent if self.bad_sent else 100.0


def results_by_frame(client: redis.Redis, prefix: str) -> dict[str, list[dict[str, str]]]:
    """Every history entry under `prefix`, by frame_id."""
    found: dict[str, list[dict[str, str]]] = {}
    for key in client.scan_iter(f"{prefix}:history:*", count=1000):
        for _entry_id, fields in client.xrange(key):
            entry = {k.decode(): v.decode(errors="replace") for k, v in fields.items()}
            found.setdefault(entry["frame_id"], []).append(entry)
    return found


def audit(bootstrap: str, base: str, client: redis.Redis, prefix: str, good: GoodStream,
          fuzz: FuzzStream | None = None, retained: int = 0) -> Audit:
    """`retained` > 0: audit only each camera's last `retained` good frames, the ones the history's
    caps still keep (a soak outlives them by design)."""
    topic = f"{base}.frames"
    results = results_by_frame(client, prefix)
    dead = {}
    for record in read_topic(bootstrap, f"{base}.frames.dlq"):
        headers = dict((k, v) for k, v in record.headers or [] if isinstance(k, str))
        source = headers.get(c.H_DLQ_SOURCE, b"").decode()
        if source.startswith(f"{topic}:"):
            _, p, o = source.rsplit(":", 2)
            dead.setdefault(f"{p}-{o.split('-')[0]}", []).append(headers.get(c.H_DLQ_REASON, b"").decode())
    landed_good = good.landed
    if retained:
        newest: dict[str, int] = {}
        for camera, seq in landed_good:
            newest[camera] = max(newest.get(camera, seq), seq)
        landed_good = {k: v for k, v in landed_good.items() if k[1] > newest[k[0]] - retained}
    a = Audit(good_sent=len(landed_good), bad_sent=len(fuzz.landed) if fuzz else 0)
    for (camera, seq), landed in landed_good.items():
        entries = results.get(landed.frame_id, [])
        if len(entries) == 1 and entries[0]["camera"] == camera and entries[0]["seq"] == str(seq):
            a.good_scored_once += 1
        elif not entries:
            a.good_missing += 1
            a.mismatches.append(f"good {camera}#{seq} at {landed.frame_id}: no result ({dead.get(landed.frame_id)})")
        a.duplicates += max(0, len(entries) - 1)
    for n, (landed, mutant) in (fuzz.landed.items() if fuzz else []):
        scored = results.get(landed.frame_id, [])
        reasons = dead.get(landed.frame_id, [])
        a.duplicates += max(0, len(scored) - 1)
        if len(reasons) == 1 and not scored:
            a.bad_dead_lettered += 1
            a.reasons[reasons[0]] += 1
            if reasons[0] in mutant.acceptable:
                a.reason_ok += 1
            else:
                a.mismatches.append(f"mutant {n} {mutant.kinds}: dead-lettered as {reasons[0]}, not {sorted(mutant.acceptable)}")
        elif len(scored) == 1 and not reasons:
            a.bad_scored += 1
        else:
            a.bad_unaccounted += 1
            a.mismatches.append(f"mutant {n} {mutant.kinds} at {landed.frame_id}: {len(scored)} results, dead letters {reasons}")
        if mutant.must_reject:
            a.must_reject += 1
            if len(reasons) == 1 and not scored:
                a.must_reject_dead_lettered += 1
            else:
                a.mismatches.append(f"mutant {n} {mutant.kinds}: invalid, yet {len(scored)} results")
    return a


def new_names() -> tuple[str, str, str]:
    """(topic base, redis prefix, group) of a scenario of its own."""
    tag = uuid.uuid4().hex[:10]
    return f"faults-{tag}", f"faults:{tag}", f"faults-{tag}"
