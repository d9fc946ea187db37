"""The reduced fault harness (bench/faults.py --quick) on the real Kafka and Redis: fuzzed records
among good frames, a worker SIGKILLed mid-stream, a Redis outage. Fails on any figure off target."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.faults import QUICK, SCENARIOS, Harness, format_row

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.mark.parametrize("scenario", QUICK)
def test_reduced_fault_harness(scenario: str, kafka_bootstrap: str, redis_url: str, model_root: Path, tmp_path: Path) -> None:
    harness = Harness(bootstrap=kafka_bootstrap, redis_url=redis_url, model_root=model_root, out=tmp_path, quick=True)
    row = SCENARIOS[scenario](harness)
    assert row.ok, format_row(row)
    assert row.good_sent > 0 and row.good_once_pct == 100.0 and row.duplicates == 0
    assert row.alerts == 1
    if scenario == "fuzz":
        assert row.bad_sent >= 900 and row.bad_accounted_pct == 100.0 and row.must_reject_pct == 100.0
    if scenario == "kills":
        assert any(exit.endswith(":-9") for exit in row.exits)  # the SIGKILL really happened

