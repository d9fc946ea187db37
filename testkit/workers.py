"""Worker processes (`python -m worker.app`) that a test or the harness starts, kills and restarts
as a supervisor would, and any child process that must die with the run that started it."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testkit.probes import readiness
from testkit.services import REPO, free_port


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
        return readiness(self.workers[name].port, timeout_s=2)

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
