"""The harness's stall rule (testkit/watch.py: ProgressWatch.observe), fed offsets directly."""

from __future__ import annotations

from testkit.watch import ProgressWatch


def _watch() -> ProgressWatch:
    return ProgressWatch("127.0.0.1:1", "group", "topic", pool=None)  # type: ignore[arg-type] - run() is not started


def _feed(watch: ProgressWatch, seconds: int, moving: bool) -> None:
    """Partition 1 waits at offset 0 (end 100) throughout; partition 0 moves each second or not."""
    for t in range(seconds + 1):
        watch.observe(float(t), {0: t if moving else 0, 1: 0}, {0: 1000, 1: 100})


def test_a_partition_waiting_31_s_is_stalled_outside_windows() -> None:
    watch = _watch()
    _feed(watch, 31, moving=True)
    assert watch.stalled_partitions(30.0) == 1  # partition 1; partition 0 moved


def test_in_a_burst_a_partition_waiting_its_turn_while_the_group_moves_is_not_stalled() -> None:
    watch = _watch()
    watch.burst(0.0, 100.0)
    _feed(watch, 45, moving=True)
    assert watch.stalled_partitions(30.0) == 0
    assert watch.longest_wait_in_burst >= 45.0  # still reported as a figure


def test_in_a_burst_the_group_standing_still_is_a_stall() -> None:
    watch = _watch()
    watch.burst(0.0, 100.0)
    _feed(watch, 31, moving=False)
    assert watch.stalled_partitions(30.0) == 2


def test_an_outage_window_with_its_grace_is_not_counted() -> None:
    watch = _watch()
    watch.outage(0.0, 25.0)  # 10 s of grace after it
    _feed(watch, 34, moving=True)
    assert watch.stalled_partitions(30.0) == 0
