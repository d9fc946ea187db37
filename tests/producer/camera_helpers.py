"""Real camera servers for the tests: Debian's GStreamer RTSP server (scripts/rtsp_server.py) as a
process of its own, and the frame stamp it draws (each frame carries the server's clock)."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from testkit.services import free_port

REPO = Path(__file__).resolve().parents[2]
SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's: it has gi (GStreamer, Aravis); the venv has not
INSTALL_HINT = "install the camera test servers with: bash scripts/cameras.sh"
STAMP_BITS, STAMP_BLOCK, STAMP_ROW = 64, 5, 8  # as scripts/rtsp_server.py draws them


def stamped_ns(image: np.ndarray) -> int:
    """The server's time.time_ns() drawn into the frame's top rows (one bit per 5-pixel block)."""
    row = image[STAMP_ROW] if image.ndim == 2 else image[STAMP_ROW, :, 0]
    value = 0
    for i in range(STAMP_BITS):
        block = row[i * STAMP_BLOCK:(i + 1) * STAMP_BLOCK]
        value = (value << 1) | int(block.mean() > 127)
    return value


class RtspServer:
    """scripts/rtsp_server.py on a fixed loopback port, so it can be killed and started again."""

    def __init__(self, path: str = "line1", fps: int = 20, port: int | None = None) -> None:
        self.path, self.fps = path, fps
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/{self.path}"

    def start(self, timeout_s: float = 20.0) -> None:
        script = REPO / "scripts" / "rtsp_server.py"
        if not os.access(SYSTEM_PYTHON, os.X_OK):
            pytest.fail(f"{SYSTEM_PYTHON} is missing; {INSTALL_HINT}")
        self.proc = subprocess.Popen(
            [SYSTEM_PYTHON, str(script), "--port", str(self.port), "--path", self.path, "--fps", str(self.fps)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        deadline = time.monotonic() + timeout_s
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"rtsp_server.py exited ({self.proc.returncode}): {self.proc.stderr.read()[-800:]}; {INSTALL_HINT}")
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.2)
            if ready and self.proc.stdout.readline().startswith("ready"):
                return
        self.kill()
        pytest.fail(f"rtsp_server.py did not start within {timeout_s} s")

    def kill(self) -> None:
        """SIGKILL: the camera vanishes mid-stream, without an RTSP TEARDOWN (a power cut, a crashed encoder)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def __enter__(self) -> "RtspServer":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()


class GigeCamera:
    """scripts/gige_camera.py: Aravis's fake GigE Vision camera answering on loopback (UDP 3956)."""

    def __init__(self, serial: str) -> None:
        self.serial = serial
        self.proc: subprocess.Popen | None = None

    def start(self, timeout_s: float = 20.0) -> None:
        self.proc = subprocess.Popen(
            [SYSTEM_PYTHON, str(REPO / "scripts" / "gige_camera.py"), "--interface", "lo", "--serial", self.serial],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"gige_camera.py exited ({self.proc.returncode}): {self.proc.stderr.read()[-800:]}; {INSTALL_HINT}")
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.2)
            if ready and self.proc.stdout.readline().startswith("ready"):
                return
        self.kill()
        pytest.fail(f"gige_camera.py did not start within {timeout_s} s")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None
