"""retryd.offsets: out-of-order completion, in-order commit (the Kafka helper's bookkeeping)."""

import random

import pytest

from retryd.offsets import OffsetTracker, PartitionOffsets


def test_commit_waits_for_every_earlier_record():
    p = PartitionOffsets()
    for o in range(10, 15):
        p.start(o)
    assert p.committable() is None
    p.finish(12)
    p.finish(11)
    assert p.committable() is None  # 10 is still running
    p.finish(10)
    assert p.committable() == 13  # 10, 11, 12 done: the next offset to read is 13
    p.committed(13)
    assert p.committable() is None
    p.finish(14)
    assert p.committable() is None and p.in_flight() == 1
    p.finish(13)
    assert p.committable() == 15 and p.in_flight() == 0


def test_gaps_in_offsets_are_fine():
    p = PartitionOffsets()
    for o in (3, 7, 8, 20):
        p.start(o)
    p.finish(7)
    p.finish(3)
    assert p.committable() == 8
    p.finish(20)
    assert p.committable() == 8
    p.finish(8)
    assert p.committable() == 21


def test_rejects_misuse():
    p = PartitionOffsets()
    p.start(5)
    with pytest.raises(ValueError, match="offsets must increase"):
        p.start(5)
    with pytest.raises(ValueError, match="not in flight"):
        p.finish(6)
    p.finish(5)
    with pytest.raises(ValueError, match="not in flight"):
        p.finish(5)
    with pytest.raises(ValueError, match="below the finished prefix"):
        p.start(4)


def test_random_completion_order_never_commits_past_an_unfinished_record():
    rng = random.Random(7)
    p = PartitionOffsets()
    offsets = list(range(1000))
    for o in offsets:
        p.start(o)
    order = offsets[:]
    rng.shuffle(order)
    finished = set()
    last = None
    for o in order:
        p.finish(o)
        finished.add(o)
        c = p.committable()
        if c is not None:
            assert all(x in finished for x in range(c))  # everything below it is done
            assert c == 1000 or c not in finished  # and it stops at the first unfinished one
            assert last is None or c > last
            p.committed(c)
            last = c
    assert last == 1000


def test_tracker_is_per_partition_and_forgets_revoked_partitions():
    t = OffsetTracker()
    t.start("a", 0, 0)
    t.start("a", 1, 0)
    t.start("b", 0, 5)
    assert t.finish("a", 1, 0)
    assert t.committable() == [("a", 1, 1)]
    t.committed("a", 1, 1)
    assert t.committable() == []
    t.drop("a", 0)
    assert not t.finish("a", 0, 0)  # revoked: a late finish is ignored
    assert t.in_flight() == 1
    assert t.finish("b", 0, 5)
    assert t.committable() == [("b", 0, 6)]
