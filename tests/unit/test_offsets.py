"""Commit only past offsets whose every predecessor is finished, and only of owned partitions."""

from aiokafka import TopicPartition

from bridge.commands.offsets import OffsetTracker

TP = TopicPartition("t", 0)
OTHER = TopicPartition("t", 1)


def tracker_owning(*tps: TopicPartition, generation: int = 1) -> OffsetTracker:
    tracker = OffsetTracker()
    for tp in tps:
        tracker.assign(tp, generation)
    return tracker


def test_out_of_order_completion_commits_contiguous_prefix() -> None:
    tracker = tracker_owning(TP)
    for offset in (10, 11, 12):
        assert tracker.started(TP, offset, 1)
    tracker.finished(TP, 12, 1)
    assert tracker.take_commits() == {}
    tracker.finished(TP, 10, 1)
    assert tracker.take_commits() == {TP: 11}
    tracker.finished(TP, 11, 1)
    assert tracker.take_commits() == {TP: 13}
    assert tracker.in_flight(TP) == 0


def test_partitions_are_independent_and_revoke_drops() -> None:
    tracker = tracker_owning(TP, OTHER)
    tracker.started(TP, 0, 1)
    tracker.started(OTHER, 5, 1)
    tracker.finished(OTHER, 5, 1)
    assert tracker.take_commits() == {OTHER: 6}
    tracker.revoke(TP)
    tracker.finished(TP, 0, 1)
    assert tracker.take_commits() == {}


def test_a_partition_not_owned_is_never_started_nor_committed() -> None:
    tracker = OffsetTracker()
    assert not tracker.started(TP, 0, 1)
    tracker.finished(TP, 0, 1)
    assert tracker.take_commits() == {}
    tracker.restore({TP: 1})
    assert tracker.take_commits() == {}


def test_a_late_finish_of_an_earlier_generation_does_not_touch_the_new_one() -> None:
    tracker = tracker_owning(TP, generation=1)
    tracker.started(TP, 7, 1)  # a task of generation 1 outlives the revocation...
    tracker.revoke(TP)
    tracker.assign(TP, 2)  # ...and the partition comes back, re-read from the commit
    assert not tracker.started(TP, 8, 1)
    assert tracker.started(TP, 7, 2)
    tracker.finished(TP, 7, 1)  # the old task ends: not generation 2's record 7
    assert tracker.take_commits() == {}
    assert tracker.in_flight(TP) == 1
    tracker.finished(TP, 7, 2)
    assert tracker.take_commits() == {TP: 8}


def test_failed_commit_is_restored_unless_superseded_or_revoked() -> None:
    tracker = tracker_owning(TP, OTHER)
    for offset in (0, 1):
        tracker.started(TP, offset, 1)
        tracker.started(OTHER, offset, 1)
    tracker.finished(TP, 0, 1)
    tracker.finished(OTHER, 0, 1)
    failed = tracker.take_commits()
    tracker.finished(TP, 1, 1)  # a newer offset of TP is committable now
    tracker.revoke(OTHER)  # OTHER was revoked meanwhile
    tracker.restore(failed)
    assert tracker.take_commits() == {TP: 2}
    tracker.started(TP, 2, 1)
    failed = {TP: 3}
    tracker.restore(failed)  # nothing newer: the failed offset comes back
    assert tracker.take_commits() == failed
