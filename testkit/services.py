"""Services of a test's or the fault harness's own: a free port, a private Redis, a private broker.

A test that stops, restarts or fills a service starts one of these instead of touching the shared
Kafka and Redis that every other test uses.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A port nothing listens on now (the caller binds it soon: another process could take it first)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
                     "LW_RUN_DIR": str(self.folder), "LW_KAFKA_NAME": "kafka-faults", "LW_KAFKA_HEAP": "384m",
                     # a restart on a loaded 2-core machine has taken minutes (docs/reliability.md)
                     "LW_KAFKA_START_TIMEOUT": os.environ.get("LW_KAFKA_START_TIMEOUT", "300")}

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
