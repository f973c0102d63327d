"""The simulated world: workers running the real command code, Kafka, FoneStorm, and chaos.

:func:`simulate` runs one schedule from a seed on virtual time
(:mod:`tests.support.virtual_time`): a few commands, some of them sent twice under other keys,
worker processes that join, stop, are killed or frozen past their session, some of a newer
version (their ledger entries carry fields this one does not know), produces that fail (some
after landing), partitions added to the ledger (producers see them each at its own time),
clocks off by a second or more (workers' and producers'), copies replayed about one ledger
retention later with their original time, and a FoneStorm that answers every way it can,
creating the call before failing included, or refuses the token for a while. The real
:class:`~bridge.commands.worker.CommandWorker`,
:class:`~bridge.commands.processor.CommandProcessor` and
:class:`~bridge.commands.ledger.Ledger` run over the in-memory transports. After every call and
every result it checks: at most one call per command, never a call after its ``not_after``, one
outcome per command and no ``placed`` without a call; at the end, every command has its
outcome. The same seed replays the same schedule exactly (with the same ``PYTHONHASHSEED``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from unittest import mock

from bridge.commands.ledger import Ledger
from bridge.commands.processor import CommandProcessor
from bridge.commands.worker import CommandWorker
from bridge.contracts.commands import PlaceCallCommand, PlaceCallResult, ResultStatus
from bridge.contracts.ledger import read_entry
from bridge.obs.metrics import Metrics
from bridge.settings import Settings
from tests.sim.fonestorm import Call, SimClient, SimFoneStorm
from tests.sim.kafka import (
    EPOCH,
    Broker,
    Process,
    Record,
    SimConsumer,
    SimFollower,
    SimGroup,
    SimPublisher,
)
from tests.support.virtual_time import Deadlock, VirtualTimeLoop

FONENUMBER = "+13215551081"
COMMAND_PARTITIONS = 3
#: Virtual seconds of chaos, and the most a schedule may take to give every command its outcome.
CHAOS_SECONDS = 20.0
DEADLINE = 300.0
#: Short, so that late copies (a replayed backlog) reach workers that forgot their command.
LEDGER_RETENTION = 30.0
#: How far a process's clock may be off the broker's, and a command producer's.
WORKER_SKEW, PRODUCER_SKEW = (-1.0, 1.0), (-1.0, 3.0)


def sim_settings() -> Settings:
    return Settings(
        kafka={"bootstrap_servers": "sim:9092", "produce_timeout": 2.0},
        callbacks={"correlation_hold": 0.025},
        fonestorm={
            "base_url": "http://sim/v2", "token": "sim", "read_timeout": 2.0,
            "fonenumbers": [FONENUMBER],
        },
        worker={
            "max_in_flight": 2, "rate_limit": 10, "max_attempts": 4, "max_retry_seconds": 20,
            "backoff_initial": 0.1, "backoff_max": 1.0, "session_timeout": 3.0,
            "rebalance_timeout": 10.0, "auth_retry_interval": 1.0, "fence_margin": 0.5,
            "ledger_retention": LEDGER_RETENTION,
        },
        http={"shutdown_timeout": 2.0},
    )  # fmt: skip


@dataclass
class Report:
    """What one schedule did, and what it broke."""

    seed: int
    violations: list[str] = field(default_factory=list)
    calls: Counter[str | None] = field(default_factory=Counter)
    outcomes: dict[str, set[str]] = field(default_factory=dict)
    events: list[str] = field(default_factory=list)
    virtual_seconds: float = 0.0

    def describe(self) -> str:
        lines = [f"seed {self.seed}: {len(self.violations)} violations"]
        lines += [f"  VIOLATION {v}" for v in self.violations]
        lines += [f"  {e}" for e in self.events]
        return "\n".join(lines)


class Member:
    """One worker process: the real worker, processor and ledger over simulated transports."""

    def __init__(self, world: World, name: str) -> None:
        self.world = world
        self.name = name
        rng = random.Random(world.rng.random())
        # Mixed versions, as in a rolling upgrade or a rollback.
        self.process = Process(name, rng, newer=rng.random() < 0.3)
        self.skew = rng.uniform(*WORKER_SKEW)
        self.task: asyncio.Task[None] | None = None
        self.stopped = False

    async def start(self) -> None:
        w, process = self.world, self.process
        settings = w.settings
        ledger_topic = settings.topics.command_ledger
        publisher = SimPublisher(w.broker, process, failure_rate=0.03, ledger_topic=ledger_topic)

        def follow(topic: str, apply: object, on_batch: object) -> SimFollower:
            return SimFollower(w.broker, process, topic, apply, on_batch)  # type: ignore[arg-type]

        self.ledger = Ledger(settings, publisher, follow=follow, clock=self.epoch_seconds)
        client = SimClient(
            w.fonestorm, process, read_timeout=settings.fonestorm.read_timeout, skew=self.skew
        )
        loop = asyncio.get_running_loop()
        processor = CommandProcessor(
            settings, publisher, client, self.ledger, Metrics(),
            clock=self.utcnow, monotonic=loop.time, jitter=process.rng.random,
        )  # fmt: skip
        self.consumer = SimConsumer(w.broker, w.group, process)
        self.worker = CommandWorker(
            settings,
            self.consumer,  # type: ignore[arg-type]
            processor,
            self.ledger,
            Metrics(),
            clock=loop.time,
        )
        self.consumer.listener = self.worker.listener()
        self.worker.membership.attach(self.consumer)  # type: ignore[arg-type]
        await self.ledger.start()
        self.task = asyncio.create_task(self.worker.run())
        await w.group.join(self.consumer)

    def epoch_seconds(self) -> float:
        """This process's ``time.time()``: the broker's, off by its skew."""
        return self.world.epoch_seconds() + self.skew

    def utcnow(self) -> datetime:
        return datetime.fromtimestamp(self.epoch_seconds(), UTC)

    async def stop(self) -> None:
        """SIGTERM: what the app's cleanup does."""
        self.stopped = True
        if self.task is not None:
            self.task.cancel()
            await asyncio.wait({self.task})
        await self.worker.drain(self.world.settings.http.shutdown_timeout)
        await self.world.group.leave(self.consumer)
        await self.ledger.stop()
        self.process.kill()


class World:
    """One schedule."""

    def __init__(self, seed: int, *, ledger_growth: bool = True) -> None:
        self.seed = seed
        self.ledger_growth = ledger_growth
        self.rng = random.Random(seed)
        self.settings = sim_settings()
        self.broker = Broker()
        self.fonestorm = SimFoneStorm()
        self.report = Report(seed)
        self.members: list[Member] = []
        self.commands: dict[str, PlaceCallCommand] = {}
        self.records: Counter[str] = Counter()
        self.results: Counter[str] = Counter()
        self.outcomes: defaultdict[str, set[str]] = defaultdict(set)
        #: Commands refused as too old to tell (an outcome only when they have no other).
        self.too_old: set[str] = set()
        topics = self.settings.topics
        self.broker.create(topics.place_call, COMMAND_PARTITIONS)
        for topic in (topics.command_ledger, topics.place_call_results, topics.call_events,
                      topics.dead_letters):  # fmt: skip
            self.broker.create(topic, 1)
        self.group = SimGroup(
            self.broker,
            topics.place_call,
            session_timeout=self.settings.worker.session_timeout,
            rebalance_timeout=self.settings.worker.rebalance_timeout,
        )
        self.group.note = self.note
        self.fonestorm.on_call.append(self._check_call)
        self.broker.on_append.append(self._check_record)

    def utcnow(self) -> datetime:
        return datetime.fromtimestamp(self.epoch_seconds(), UTC)

    def epoch_seconds(self) -> float:
        """Now, as ``time.time()`` on the virtual clock (what record timestamps say)."""
        return EPOCH + asyncio.get_running_loop().time()

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def note(self, event: str) -> None:
        self.report.events.append(f"{self.now():8.3f} {event}")

    def violation(self, what: str) -> None:
        self.note(f"VIOLATION {what}")
        self.report.violations.append(what)

    def _check_call(self, call: Call) -> None:
        cid = call.command_id or "?"
        self.note(f"call for {cid}")
        if self.fonestorm.per_command()[call.command_id] > 1:
            self.violation(f"{cid} called twice")
        command = self.commands.get(cid)
        not_after = None if command is None else command.not_after
        issued = datetime.fromtimestamp(EPOCH + call.issued_at, UTC)
        if not_after is not None and issued >= not_after:
            # A process frozen after its last look sends late; only the look is the bridge's,
            # by its own clock.
            self.violation(f"{cid}: a request issued after its not_after")

    def _check_record(self, record: Record) -> None:
        if record.topic == self.settings.topics.command_ledger and record.value is not None:
            entry = read_entry(record.value)
            if entry is not None:
                self.note(
                    f"ledger {entry.command_id}: {entry.state.value} from {entry.source} by "
                    f"{(entry.writer or '?')[:6]}"
                )
        if record.topic != self.settings.topics.place_call_results or record.value is None:
            return
        result = PlaceCallResult.model_validate_json(record.value)
        cid = result.command_id
        self.results[cid] += 1
        self.note(f"result {cid}: {result.status.value} ({result.error_message or ''})")
        # A copy too old for the ledger to vouch for is refused without an outcome, as a
        # duplicate is: whether the command was placed is unknown to it.
        too_old = result.status is ResultStatus.EXPIRED and result.error_code == "too_old"
        if too_old:
            self.too_old.add(cid)
        elif result.status is not ResultStatus.DUPLICATE:
            self.outcomes[cid].add(result.status.value)
        if len(self.outcomes[cid]) > 1:
            self.violation(f"{cid} has outcomes {sorted(self.outcomes[cid])}")
        if result.status is ResultStatus.PLACED and not self.fonestorm.per_command()[cid]:
            self.violation(f"{cid} reported placed without a call")

    async def send_commands(self) -> None:
        count = self.rng.randint(2, 5)
        plan: list[tuple[float, PlaceCallCommand, bytes, float | None]] = []
        for n in range(count):
            cid = f"cmd-{n}"
            fields: dict[str, object] = {"command_id": cid, "fonenumber": FONENUMBER,
                                         "to": f"+1321555{1100 + n}"}  # fmt: skip
            at = self.rng.uniform(0, 6)
            if self.rng.random() < 0.2:
                fields["not_after"] = self.utcnow() + timedelta(
                    seconds=at + self.rng.uniform(1, 10)
                )
            command = PlaceCallCommand.model_validate(fields)
            self.commands[cid] = command
            written = EPOCH + at + self.rng.uniform(*PRODUCER_SKEW)
            if self.rng.random() < 0.35:  # a copy under another key
                plan.append((at + self.rng.uniform(0, 4), command, f"{cid}-copy".encode(), None))
            if self.rng.random() < 0.15:  # a copy replayed late, with its original time
                late = at + self.rng.uniform(0.8, 1.2) * LEDGER_RETENTION
                plan.append((late, command, f"{cid}-late".encode(), written))
            plan.append((at, command, cid.encode(), written))
        for at, command, key, stamp in sorted(plan, key=lambda p: p[0]):
            await asyncio.sleep(max(0.0, at - self.now()))
            self.records[command.command_id] += 1
            self.broker.append(
                self.settings.topics.place_call, command.model_dump_json().encode(), key=key,
                timestamp=stamp,
            )  # fmt: skip
            self.note(f"command {command.command_id} sent, key {key.decode()}")

    def alive(self) -> list[Member]:
        return [m for m in self.members if not m.stopped and not m.process.dead]

    async def add_member(self) -> None:
        member = Member(self, f"w{len(self.members)}")
        self.members.append(member)
        self.note(f"{member.name} starts")
        await member.start()

    async def chaos(self) -> None:
        await self.add_member()
        while self.now() < CHAOS_SECONDS:
            await asyncio.sleep(self.rng.uniform(0.5, 4))
            alive = self.alive()
            roll = self.rng.random()
            if roll < 0.3 and len(alive) < 3:
                asyncio.create_task(self.add_member())  # noqa: RUF006 - joins take a rebalance
            elif roll < 0.55 and alive:
                member = self.rng.choice(alive)
                seconds = self.rng.uniform(0.5, 8)
                self.note(f"{member.name} frozen for {seconds:.1f}s")
                member.process.freeze()
                asyncio.get_running_loop().call_later(seconds, self._thaw, member)
            elif roll < 0.7 and alive:
                member = self.rng.choice(alive)
                self.note(f"{member.name} SIGKILLed")
                member.process.kill()
            elif roll < 0.85 and len(alive) > 1:
                member = self.rng.choice(alive)
                self.note(f"{member.name} SIGTERMed")
                asyncio.create_task(member.stop())  # noqa: RUF006 - a drain takes its time
            elif roll < 0.88 and self.ledger_growth:
                ledger = self.settings.topics.command_ledger
                added = self.rng.randint(1, 2)
                self.note(f"the ledger gets {added} partitions more")
                self.broker.grow(ledger, added)
            elif roll < 0.94:
                seconds = self.rng.uniform(1, 10)
                self.note(f"FoneStorm refuses the token for {seconds:.1f}s")
                self.fonestorm.refusing_until = self.now() + seconds
        if not any(m.process.awake.is_set() for m in self.alive()):
            await self.add_member()

    def abandon(self, loop: asyncio.AbstractEventLoop) -> None:
        """The schedule is over: let every task, frozen or killed ones too, unwind."""
        self.fonestorm.on_call.clear()
        self.broker.on_append.clear()
        for member in self.members:
            member.process.dead = False
            member.process.thaw()
        tasks = asyncio.all_tasks(loop)
        for task in tasks:
            task.cancel()
        if tasks:
            with contextlib.suppress(Deadlock):
                loop.run_until_complete(asyncio.wait(tasks, timeout=60))

    def _thaw(self, member: Member) -> None:
        if not member.process.dead:
            self.note(f"{member.name} thawed")
            member.process.thaw()

    async def run(self) -> Report:
        self.group.start()
        try:
            async with asyncio.timeout(DEADLINE):
                await asyncio.gather(self.send_commands(), self.chaos())
        except TimeoutError:
            self.violation("the schedule's chaos did not end (a simulation bug)")
        while self.now() < DEADLINE and not self.report.violations:
            if all(self.outcomes[cid] or cid in self.too_old for cid in self.commands) and all(
                self.results[cid] >= self.records[cid] for cid in self.commands
            ):
                break
            await asyncio.sleep(0.5)
        # A late second call or result would show now.
        await asyncio.sleep(5)
        for cid in self.commands:
            if not self.outcomes[cid] and cid not in self.too_old:
                self.violation(f"{cid} has no outcome by {DEADLINE:g}s")
            elif self.fonestorm.per_command()[cid] and not self.outcomes[cid] & {
                "placed", "in_doubt"
            }:  # fmt: skip
                self.violation(f"{cid} was called but reported {sorted(self.outcomes[cid])}")
        self.report.calls = self.fonestorm.per_command()
        self.report.outcomes = dict(self.outcomes)
        self.report.virtual_seconds = self.now()
        return self.report


def simulate(seed: int, *, ledger_growth: bool = True) -> Report:
    """Run the schedule of ``seed`` to its end on a fresh virtual-time loop.

    ``ledger_growth``: some schedules add partitions to the ledger mid-run.
    """
    ids = random.Random(-seed)
    with mock.patch.object(
        uuid, "uuid4", side_effect=lambda: uuid.UUID(int=ids.getrandbits(128), version=4)
    ):
        return _simulate(seed, ledger_growth)


def _simulate(seed: int, ledger_growth: bool) -> Report:
    loop = VirtualTimeLoop()
    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)  # thousands of schedules: their logs would drown a failure
    try:
        world = World(seed, ledger_growth=ledger_growth)
        try:
            return loop.run_until_complete(world.run())
        except Deadlock as exc:
            world.violation(f"deadlock: {exc}")
            return world.report
        finally:
            world.abandon(loop)
    finally:
        logging.disable(previous)
        loop.close()
