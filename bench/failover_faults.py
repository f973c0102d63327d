"""The faults of the failover run (:mod:`bench.failover`), each on a three-node cluster.

Each takes the :class:`~bench.cluster.Cluster`, the topics and group in play and a ``mark``
callback for the timeline, and returns once the cluster is whole and in sync again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiokafka.errors import KafkaError

from bench.cluster import OFFSETS_TOPIC, Cluster

#: Adds a line to the timeline; with a name, remembers the moment under it too.
Mark = Callable[..., None]


@dataclass(frozen=True)
class Scene:
    """What a fault acts on."""

    cluster: Cluster
    events: str
    group: str
    #: Every topic of the run (checked for replicas in sync after the fault).
    topics: list[str]
    mark: Mark
    #: Seconds a killed node stays down once its partitions have new leaders.
    down_seconds: float = 3.0
    #: Seconds a frozen node stays frozen.
    freeze_seconds: float = 15.0
    #: Seconds two nodes stay down at once.
    outage_seconds: float = 10.0
    #: Seconds the other nodes are frozen just before a leader kill (0: not frozen): the
    #: killed leader's followers then lack what it took meanwhile, which it must not have
    #: acknowledged (acks=all) for nothing to be lost. To prove the loss check can fail.
    frozen_followers: float = 0.0


async def _leads(scene: Scene, node: int) -> list[str]:
    """The events and offsets partitions ``node`` leads, as ``topic[p]``."""
    parts = await scene.cluster.partitions([scene.events, OFFSETS_TOPIC])
    return sorted(f"{t}[{p}]" for (t, p), meta in parts.items() if meta["leader"] == node)


async def _until_moved(scene: Scene, node: int, timeout: float) -> float | None:  # noqa: ASYNC109
    """Seconds until no events or offsets partition names ``node`` leader (None: not within
    ``timeout``)."""
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        with contextlib.suppress(KafkaError):  # no node answered: still electing
            if not await _leads(scene, node):
                return time.monotonic() - began
        await asyncio.sleep(0.1)
    return None


async def _in_sync(scene: Scene, since: float) -> None:
    await scene.cluster.wait_in_sync(scene.topics)
    scene.mark(f"every replica in sync again ({time.monotonic() - since:.1f} s after the start)")


async def leader_kill(scene: Scene) -> None:
    """SIGKILL the group's coordinator, which also leads an events partition, then restart it.

    The run picks a group whose coordinator is not the active controller (:data:`BROKER_ONLY`).
    Should the coordinator lead no events partition, the leader of the events topic's first
    partition is killed and restarted afterwards as well.
    """
    cluster = scene.cluster
    coordinator = await cluster.coordinator(scene.group)
    targets = [coordinator]
    leads = await _leads(scene, coordinator)
    if not any(name.startswith(f"{scene.events}[") for name in leads):
        controller = cluster.active_controller()
        leaders = sorted(set((await cluster.leaders(scene.events)).values()))
        targets.append(next((n for n in leaders if n != controller), leaders[0]))
    await _kill_and_restart(scene, targets, coordinator)


async def controller_kill(scene: Scene) -> None:
    """SIGKILL the active KRaft controller (a combined node: a broker too, leading partitions),
    then restart it. The brokers' sessions start again on the controller elected next, so the
    dead broker is fenced a controller election later than in :func:`leader_kill`."""
    controller = scene.cluster.active_controller()
    if controller is None:
        raise RuntimeError("no node has recorded an active controller")
    await _kill_and_restart(scene, [controller], await scene.cluster.coordinator(scene.group))


async def _kill_and_restart(scene: Scene, targets: list[int], coordinator: int) -> None:
    cluster = scene.cluster
    for node in targets:
        roles = {
            "the group's coordinator": node == coordinator,
            "the active controller": node == cluster.active_controller(),
        }
        role = "".join(f"{name}; " for name, holds in roles.items() if holds)
        leads = ", ".join(await _leads(scene, node)) or "nothing"
        scene.mark(f"SIGKILL node {node} ({role}leads {leads})")
        followers = [n for n in cluster.up if n != node] if scene.frozen_followers else []
        for follower in followers:
            cluster.freeze(follower)
        await asyncio.sleep(scene.frozen_followers)
        await cluster.kill(node)
        for follower in followers:
            cluster.thaw(follower)
        moved = await _until_moved(scene, node, timeout=60)
        scene.mark(f"its partitions have new leaders ({moved or 0:.1f} s after the kill)")
        await asyncio.sleep(scene.down_seconds)
        began = time.monotonic()
        await cluster.start(node)
        scene.mark(f"node {node} restarted and answering ({time.monotonic() - began:.1f} s)")
        await _in_sync(scene, began)


async def rolling_restart(scene: Scene) -> None:
    """Stop (SIGTERM: a controlled shutdown) and restart every node in turn, each time
    waiting until every replica is in sync again."""
    cluster = scene.cluster
    for node in cluster.nodes.ids:
        began = time.monotonic()
        scene.mark(f"SIGTERM node {node} (leads {', '.join(await _leads(scene, node)) or '-'})")
        await cluster.stop(node)
        scene.mark(f"node {node} stopped ({time.monotonic() - began:.1f} s)")
        began = time.monotonic()
        await cluster.start(node)
        scene.mark(f"node {node} restarted and answering ({time.monotonic() - began:.1f} s)")
        await _in_sync(scene, began)


async def freeze(scene: Scene) -> None:
    """SIGSTOP the group's coordinator (an events leader too, as a rule) for
    ``freeze_seconds``, then SIGCONT it."""
    cluster = scene.cluster
    node = await cluster.coordinator(scene.group)
    scene.mark(f"SIGSTOP node {node} (leads {', '.join(await _leads(scene, node))})")
    began = time.monotonic()
    cluster.freeze(node)
    scene.mark(f"node {node} frozen", name="down")
    moved = await _until_moved(scene, node, timeout=scene.freeze_seconds)
    if moved is not None:
        scene.mark(f"its partitions have new leaders ({moved:.1f} s after the SIGSTOP)")
    await asyncio.sleep(max(0.0, scene.freeze_seconds - (time.monotonic() - began)))
    cluster.thaw(node)
    scene.mark(f"SIGCONT node {node} after {time.monotonic() - began:.1f} s", name="up")
    await _in_sync(scene, time.monotonic())


async def two_down(scene: Scene) -> None:
    """SIGKILL two of the three nodes at once (below min.insync.replicas=2, and the KRaft
    quorum lost with them), then start both again."""
    cluster = scene.cluster
    coordinator = await cluster.coordinator(scene.group)
    nodes = [coordinator, next(n for n in cluster.nodes.ids if n != coordinator)]
    await asyncio.gather(*(cluster.kill(node) for node in nodes))
    scene.mark(f"SIGKILLed nodes {nodes} at once", name="down")
    await asyncio.sleep(scene.outage_seconds)
    began = time.monotonic()
    scene.mark(f"starting nodes {nodes} again", name="up")
    # Together: a node is ready once it sees every node, so neither can wait for the other.
    await asyncio.gather(*(cluster.start(node) for node in nodes))
    scene.mark(f"nodes {nodes} answering ({time.monotonic() - began:.1f} s)")
    await _in_sync(scene, began)


FAULTS: dict[str, Callable[[Scene], Awaitable[None]]] = {
    "leader-kill": leader_kill,
    "controller-kill": controller_kill,
    "rolling-restart": rolling_restart,
    "freeze": freeze,
    "two-down": two_down,
}
#: Faults during which two of the three brokers stay up.
QUORUM_KEPT = frozenset({"leader-kill", "controller-kill", "rolling-restart", "freeze"})
#: Faults of a broker alone: their group is one whose coordinator is not the active controller,
#: so that the node they take down is not (``controller-kill`` takes that one down).
BROKER_ONLY = frozenset({"leader-kill", "freeze"})
