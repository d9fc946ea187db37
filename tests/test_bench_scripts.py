"""The benchmark scripts' contracts that need no benchmark run."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a CUDA machine the check runs for real")
def test_gpu_check_says_there_is_no_gpu_and_exits_0() -> None:
    done = subprocess.run(["bash", "bench/gpu_check.sh"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "no CUDA device on this machine" in done.stdout
