"""Commit only past offsets whose every predecessor is finished."""

from aiokafka import TopicPartition

from bridge.commands.offsets import OffsetTracker

TP = TopicPartition("t", 0)


def test_out_of_order_completion_commits_contiguous_prefix() -> None:
    tracker = OffsetTracker()
    for offset in (10, 11, 12):
        tracker.started(TP, offset)
    tracker.finished(TP, 12)
    assert tracker.take_commits() == {}
    tracker.finished(TP, 10)
    assert tracker.take_commits() == {TP: 11}
    tracker.finished(TP, 11)
    assert tracker.take_commits() == {TP: 13}
    assert tracker.in_flight(TP) == 0


def test_partitions_are_independent_and_forget_drops() -> None:
    tracker = OffsetTracker()
    other = TopicPartition("t", 1)
    tracker.started(TP, 0)
    tracker.started(other, 5)
    tracker.finished(other, 5)
    assert tracker.take_commits() == {other: 6}
    tracker.forget(TP)
    tracker.finished(TP, 0)
    assert tracker.take_commits() == {}


def test_failed_commit_is_restored_unless_superseded_or_revoked() -> None:
    tracker = OffsetTracker()
    other = TopicPartition("t", 1)
    for offset in (0, 1):
        tracker.started(TP, offset)
        tracker.started(other, offset)
    tracker.finished(TP, 0)
    tracker.finished(other, 0)
    failed = tracker.take_commits()
    tracker.finished(TP, 1)  # a newer offset of TP is committable now
    tracker.forget(other)  # other was revoked meanwhile
    tracker.restore(failed)
    assert tracker.take_commits() == {TP: 2}
    tracker.started(TP, 2)
    failed = {TP: 3}
    tracker.restore(failed)  # nothing newer: the failed offset comes back
    assert tracker.take_commits() == failed
