"""A worker frozen (SIGSTOP) past its group session, resumed after another worker took over.

Worker A gets a command and is stopped at a known point; worker B starts, the group expels A
when its session expires, and B finishes the command from what the ledger says. Then A is
resumed (SIGCONT). It still believes it owns the partition until aiokafka learns otherwise, and
must not act on that belief: no ``placing`` or ``pending`` over B's entries, no create-call.

What is asserted comes off the wire: the create-calls the sandbox saw, the results topic and the
ledger topic (nothing after B's ``done``). A has finished with the old assignment once it is
back in the group: aiokafka rejoins only after the revocation, which waits for A's jobs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from bridge.contracts.commands import PlaceCallCommand
from tests.support.commands import command
from tests.support.kafka_records import read_to_end
from tests.support.processes import worker_env, worker_process, worker_topics
from tests.support.sandbox import Sandbox, running_sandbox
from tests.support.topics import kafka_admin
from tests.support.waiting import eventually

pytestmark = [pytest.mark.integration, pytest.mark.fault]

#: The smallest session timeout a broker accepts by default (group.min.session.timeout.ms).
SESSION_TIMEOUT = 6
READ_TIMEOUT = 5.0


async def _sleep_until(moment: float) -> None:
    await asyncio.sleep(max(0.0, moment - time.monotonic()))


class Run:
    """Two worker processes of one group, the sandbox, and the topics they use."""

    def __init__(self, bootstrap: str, topics: dict[str, str], sandbox: Sandbox, tmp: Path):
        self.bootstrap = bootstrap
        self.topics = topics
        self.sandbox = sandbox
        self.group = f"g-{uuid.uuid4()}"
        self.logs = {name: tmp / f"worker-{name}.log" for name in "AB"}
        self.env = worker_env(
            bootstrap, topics, sandbox.url, group=self.group,
            BRIDGE_FONESTORM__READ_TIMEOUT=f"{READ_TIMEOUT:g}",
            BRIDGE_WORKER__SESSION_TIMEOUT=str(SESSION_TIMEOUT),
            BRIDGE_WORKER__MAX_IN_FLIGHT="1",
            BRIDGE_LOG__LEVEL="INFO",
            BRIDGE_LOG__FORMAT="text",
        )  # fmt: skip

    async def send(self, cmd: PlaceCallCommand) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all")
        await producer.start()
        try:
            await producer.send_and_wait(
                self.topics["PLACE_CALL"], cmd.model_dump_json().encode(),
                key=cmd.command_id.encode(),
            )  # fmt: skip
        finally:
            await producer.stop()

    async def ledger(self, command_id: str) -> list[str]:
        """The command's ledger states, in the order written."""
        records = await read_to_end(self.bootstrap, self.topics["COMMAND_LEDGER"])
        key = command_id.encode()
        return [json.loads(r.value)["state"] for r in records if r.key == key]

    async def results(self) -> Counter[str]:
        """Distinct results (by ``ce_id``) on the results topic, per command id.

        A result published again keeps its ``ce_id``, which consumers de-duplicate on: a
        worker back from a pause that finds its record finished publishes that result again
        in case its writer stopped before it could.
        """
        records = await read_to_end(self.bootstrap, self.topics["PLACE_CALL_RESULTS"])
        distinct = {
            (json.loads(r.value)["command_id"], dict(r.headers or ()).get("ce_id")) for r in records
        }
        return Counter(command_id for command_id, _ in distinct)

    async def until_ledger(self, command_id: str, state: str) -> None:
        async def written() -> bool:
            return state in await self.ledger(command_id)

        await eventually(written, f"{state!r} of {command_id} on the ledger", 60)

    async def until_results(self, *command_ids: str) -> None:
        async def published() -> bool:
            results = await self.results()
            return all(results[c] for c in command_ids)

        await eventually(published, f"results of {command_ids}", 90)

    async def until_members(self, count: int) -> None:
        """Until the group is stable with ``count`` members."""
        async with kafka_admin(self.bootstrap) as admin:

            async def stable() -> bool:
                [response] = await admin.describe_consumer_groups([self.group])
                _error, _group, state, _type, _protocol, members, *_ = response.groups[0]
                return bool(state == "Stable" and len(members) == count)

            await eventually(stable, f"the group stable with {count} members", 90)

    def calls(self) -> Counter[str | None]:
        return Counter(c.idempotency_key for c in self.sandbox.state.calls.values())

    def tails(self) -> str:
        return "\n".join(
            f"--- worker {name}\n{path.read_text()[-4000:]}" for name, path in self.logs.items()
        )

    async def assert_one_outcome(self, *command_ids: str) -> None:
        """At most one call, exactly one result, nothing on the ledger after ``done``."""
        results = await self.results()
        calls = self.calls()
        for command_id in command_ids:
            states = await self.ledger(command_id)
            context = f"{command_id}: ledger {states}, results {results[command_id]}"
            assert calls[command_id] <= 1, f"called twice: {context}\n{self.tails()}"
            assert results[command_id] == 1, f"not exactly one result: {context}\n{self.tails()}"
            assert states.count("done") == 1, f"done twice: {context}\n{self.tails()}"
            assert states[-1] == "done", f"written after done: {context}\n{self.tails()}"


@pytest.fixture
async def topics(new_topic: Callable[..., Awaitable[str]]) -> dict[str, str]:
    return await worker_topics(new_topic)


@pytest.mark.timeout(240)
async def test_frozen_during_a_rate_limit_backoff_never_places_again(
    kafka_bootstrap: str, topics: dict[str, str], tmp_path: Path
) -> None:
    retry_after = 10.0
    cmd = command(f"frozen-backoff-{uuid.uuid4()}")
    async with running_sandbox() as sandbox:
        run = Run(kafka_bootstrap, topics, sandbox, tmp_path)
        sandbox.state.update_faults({"rate_limit_next": 1, "retry_after": retry_after})
        async with worker_process(run.env, run.logs["A"]) as a:
            await run.send(cmd)
            # 429: A records `pending` and backs off for Retry-After; stop it in the backoff.
            await run.until_ledger(cmd.command_id, "pending")
            a.send_signal(signal.SIGSTOP)
            backoff_over = time.monotonic() + retry_after
            try:
                async with worker_process(run.env, run.logs["B"]):
                    # B joins; the group waits for A until its session expires, then B alone
                    # owns the partition, reads `pending` and places the call.
                    await run.until_results(cmd.command_id)
                    await _sleep_until(backoff_over + 0.5)  # A's retry is due when it resumes
                    a.send_signal(signal.SIGCONT)
                    await run.until_members(2)
                    await run.assert_one_outcome(cmd.command_id)
            finally:
                with contextlib.suppress(ProcessLookupError):
                    a.send_signal(signal.SIGCONT)


@pytest.mark.timeout(240)
async def test_frozen_between_placing_and_sending_never_sends(
    kafka_bootstrap: str, topics: dict[str, str], tmp_path: Path
) -> None:
    # One request out at a time: a first command's request, held in the sandbox, keeps the
    # second command between its `placing` and its request for as long as the test wants.
    first, second = (command(f"frozen-placing-{uuid.uuid4()}") for _ in range(2))
    async with running_sandbox() as sandbox:
        run = Run(kafka_bootstrap, topics, sandbox, tmp_path)
        sandbox.state.update_faults({"hold": True})
        async with worker_process(run.env, run.logs["A"]) as a:
            await run.send(first)
            await eventually(_held(sandbox), "the first create-call held in the sandbox", 60)
            first_sent = time.monotonic()
            await run.send(second)
            await run.until_ledger(second.command_id, "placing")
            a.send_signal(signal.SIGSTOP)
            # The held request now hangs without creating a call; A's read timeout ends it
            # when A resumes, which frees the send slot for the second command.
            sandbox.state.update_faults({"hold": False, "timeout_next": 1, "timeout_seconds": 600})
            try:
                async with worker_process(run.env, run.logs["B"]):
                    # B finds both `placing` with no request of its own: in_doubt, no call.
                    await run.until_results(first.command_id, second.command_id)
                    await _sleep_until(first_sent + READ_TIMEOUT + 0.5)
                    a.send_signal(signal.SIGCONT)
                    await run.until_members(2)
                    await run.assert_one_outcome(first.command_id, second.command_id)
            finally:
                with contextlib.suppress(ProcessLookupError):
                    a.send_signal(signal.SIGCONT)


def _held(sandbox: Sandbox) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return sandbox.state.held == 1

    return check
