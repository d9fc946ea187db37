"""The commit rule, against a table of cases (faust's habit)."""

from __future__ import annotations

import pytest

from worker.offsets import OffsetBook, PartitionOffsets

TP = ("frames", 0)


@pytest.mark.parametrize(
    ("taken", "acked", "expected"),
    [
        ([], [], None),  # nothing seen: nothing to commit
        ([0, 1, 2], [], 0),  # nothing done: commit would say "start at 0", which is where we are
        ([0, 1, 2], [0], 1),
        ([0, 1, 2], [1, 2], 0),  # out of order: 0 still pending blocks everything
        ([0, 1, 2], [2, 0], 1),
        ([0, 1, 2], [0, 1, 2], 3),
        ([5, 9, 12], [5, 9], 12),  # gaps in offsets (compaction, control records) do not block
        ([5, 9, 12], [5, 9, 12], 13),
    ],
)
def test_committable_offset(taken: list[int], acked: list[int], expected: int | None) -> None:
    part = PartitionOffsets()
    for off in taken:
        part.take(off)
    for off in acked:
        part.ack(off)
    assert part.committable() == expected


def test_nothing_new_after_commit() -> None:
    part = PartitionOffsets()
    part.take(0)
    part.ack(0)
    assert part.committable() == 1
    part.committed = 1
    assert part.committable() is None
    part.take(1)
    assert part.committable() is None  # 1 is pending: still "start at 1"
    part.ack(1)
    assert part.committable() == 2


def test_acks_from_an_old_ownership_are_dropped() -> None:
    book = OffsetBook()
    epoch = book.take(TP, 0)
    book.forget(TP)  # revoked ...
    new_epoch = book.take(TP, 0)  # ... assigned back, offset 0 re-read
    assert new_epoch != epoch
    book.ack(TP, 0, epoch)  # the old ownership's late ack must not count
    assert book.committable() == {TP: 0}
    book.ack(TP, 0, new_epoch)
    assert book.committable() == {TP: 1}


def test_in_flight_counts_every_partition() -> None:
    book = OffsetBook()
    e0 = book.take(("f", 0), 0)
    book.take(("f", 1), 7)
    assert book.in_flight() == 2
    book.ack(("f", 0), 0, e0)
    assert book.in_flight() == 1
    book.mark_committed({("f", 0): 1})
    assert book.committable() == {("f", 1): 7}


def test_an_offset_taken_twice_needs_two_acks_even_when_both_come_early() -> None:
    # Offset 6 read again (the client went back to the committed offset without a revocation): both
    # copies are acknowledged while 5 is still pending; once 5 is, the commit point passes 6.
    p = PartitionOffsets()
    for offset in (5, 6, 6):
        p.take(offset)
    p.ack(6)
    p.ack(6)
    assert p.committable() == 5
    p.ack(5)
    assert p.committable() == 7 and p.in_flight == 0


def test_an_offset_taken_twice_waits_for_its_second_ack() -> None:
    p = PartitionOffsets()
    for offset in (6, 6, 7):
        p.take(offset)
    p.ack(6)
    p.ack(7)
    assert p.committable() == 6  # the second copy of 6 is still in the pipeline
    p.ack(6)
    assert p.committable() == 8
