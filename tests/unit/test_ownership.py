"""Ownership across generations: what may start, what must stay paused."""

from aiokafka import TopicPartition

from bridge.commands.ownership import Ownership

P0, P1, P2 = (TopicPartition("commands", p) for p in range(3))


def test_assigned_partitions_start_only_once_the_ledger_caught_up() -> None:
    owned = Ownership()
    generation = owned.assign([P0, P1])
    assert not owned.startable(P0)
    assert owned.to_pause([P0, P1], accepting=True) == {P0, P1}
    owned.mark_ready([P0, P1], generation)
    assert owned.startable(P0)
    assert owned.to_pause([P0, P1], accepting=True) == set()
    assert owned.to_pause([P0, P1], accepting=False) == {P0, P1}


def test_a_catch_up_of_an_older_generation_does_not_release_a_newer_assignment() -> None:
    owned = Ownership()
    first = owned.assign([P0])
    owned.revoke([P0])
    second = owned.assign([P0, P2])
    owned.mark_ready([P0, P2], first)  # the first catch-up finishes late
    assert not owned.startable(P0)
    owned.mark_ready([P0, P2], second)
    assert owned.startable(P0)
    assert owned.startable(P2)


def test_revocation_ends_ownership_of_that_generation_for_good() -> None:
    owned = Ownership()
    generation = owned.assign([P0, P1])
    owned.mark_ready([P0, P1], generation)
    owned.revoke([P0])
    assert not owned.owns(P0, generation)
    assert owned.owns(P1, generation)
    assert owned.generation_of(P0) is None
    again = owned.assign([P0])
    assert owned.owns(P0, again)
    assert not owned.owns(P0, generation)  # a task of the old generation stays revoked


def test_shutdown_gives_up_every_partition_of_every_generation() -> None:
    owned = Ownership()
    first = owned.assign([P0])
    second = owned.assign([P1, P2])
    owned.mark_ready([P0], first)
    owned.mark_ready([P1, P2], second)
    owned.revoke_all()
    assert not any(owned.owns(tp, g) for tp in (P0, P1, P2) for g in (first, second))
    assert not any(owned.startable(tp) for tp in (P0, P1, P2))
    assert owned.generations() == set()
