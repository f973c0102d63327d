"""The real worker process SIGKILLed at random moments while 1,000 commands flow.

After each kill a new worker process takes over (after the group notices the dead member).
Nothing is lost and nothing rings twice: every command has a result, one status per command,
and FoneStorm (the sandbox) saw at most one create-call per ``command_id``.

A kill that lands while a create-call request is in flight leaves the ledger at ``placing``:
the next worker cannot know whether FoneStorm created the call, so under the default
``at-most-once`` delivery it reports ``in_doubt`` instead of calling again. Those are counted
and printed, split by whether FoneStorm had created the call or not.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from tests.support.commands import command
from tests.support.kafka_records import consume_until_distinct, read_to_end
from tests.support.processes import start_worker, worker_env, worker_topics
from tests.support.sandbox import running_sandbox

pytestmark = [pytest.mark.integration, pytest.mark.fault]

COMMANDS = 1000
KILLS = 4
SANDBOX_LATENCY = 0.05  # every create-call takes 50 ms: kills often land during one


@pytest.mark.timeout(220)
async def test_sigkill_at_random_moments_loses_nothing_and_never_calls_twice(
    kafka_bootstrap: str, new_topic: Callable[..., Awaitable[str]], tmp_path: Path
) -> None:
    seed = int(os.environ.get("FAULT_SEED", str(random.randrange(1 << 30))))
    rng = random.Random(seed)
    topics = await worker_topics(new_topic, command_partitions=3)
    commands = [command(f"kill-{uuid.uuid4()}") for _ in range(COMMANDS)]
    log_path = tmp_path / "worker.log"
    async with running_sandbox(latency=SANDBOX_LATENCY) as sandbox:
        env = worker_env(
            kafka_bootstrap, topics, sandbox.url,
            BRIDGE_FONESTORM__READ_TIMEOUT="5",
            BRIDGE_WORKER__RATE_LIMIT="100",
            BRIDGE_WORKER__MAX_IN_FLIGHT="32",
            BRIDGE_LOG__LEVEL="WARNING",
        )  # fmt: skip
        producer = AIOKafkaProducer(
            bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=True
        )
        await producer.start()
        try:
            for cmd in commands:
                await producer.send(
                    topics["PLACE_CALL"], cmd.model_dump_json().encode(),
                    key=cmd.command_id.encode(),
                )  # fmt: skip
            await producer.flush()
        finally:
            await producer.stop()

        started = time.perf_counter()
        kills: list[tuple[float, int]] = []  # (seconds into the run, create-calls so far)
        proc = await start_worker(env, log_path)
        try:
            for _ in range(KILLS):
                # Let the new worker get going (join the group, catch up with the ledger) and
                # place some calls, then kill it at a random moment while commands flow.
                seen = len(sandbox.state.requests)
                async with asyncio.timeout(60):
                    while len(sandbox.state.requests) < seen + 5:
                        await asyncio.sleep(0.02)
                await asyncio.sleep(rng.uniform(0.2, 2.0))
                if len(sandbox.state.requests) >= COMMANDS:
                    break  # everything placed already; a kill now would prove little
                proc.send_signal(signal.SIGKILL)
                await proc.wait()
                kills.append((time.perf_counter() - started, len(sandbox.state.requests)))
                # Requests the dead worker had in flight still complete in the sandbox: let
                # them land, so only the next worker's requests count as it getting going.
                await asyncio.sleep(5 * SANDBOX_LATENCY)
                proc = await start_worker(env, log_path)
            records = await consume_until_distinct(
                kafka_bootstrap, topics["PLACE_CALL_RESULTS"], key=lambda r: r.key,
                expected=COMMANDS, timeout=120,
            )  # fmt: skip
            elapsed = time.perf_counter() - started
            await asyncio.sleep(1.0)  # time for a wrong extra call or result to show up
        finally:
            if proc.returncode is None:
                proc.terminate()
                await asyncio.wait_for(proc.wait(), 30)
        records = await read_to_end(kafka_bootstrap, topics["PLACE_CALL_RESULTS"])
        calls = Counter(c.idempotency_key for c in sandbox.state.calls.values())
        call_ids = {c.idempotency_key: c.id for c in sandbox.state.calls.values()}
        create_requests = Counter(
            r.idempotency_key for r in sandbox.state.requests if r.path == "/v2/calls"
        )

    results = [json.loads(r.value) for r in records]
    statuses: dict[str, set[str]] = {}
    for r in results:
        statuses.setdefault(r["command_id"], set()).add(r["status"])
    final = {cid: next(iter(s)) for cid, s in statuses.items()}
    in_doubt = [cid for cid, s in final.items() if s == "in_doubt"]
    doubt_called = sum(1 for cid in in_doubt if calls.get(cid))
    republished = len(results) - len(statuses)
    summary = (
        f"\nworker SIGKILL (seed {seed}): {len(kills)} kills at "
        f"{[f'{t:.1f}s/{n} calls' for t, n in kills]}; {COMMANDS} commands done in "
        f"{elapsed:.1f}s; results in Kafka {len(results)} ({republished} republished after a "
        f"kill between ledger and commit) by status {dict(Counter(final.values()))}; sandbox: "
        f"{sum(calls.values())} calls, max {max(create_requests.values())} create-call "
        f"request(s) per command_id.\n  in_doubt: {len(in_doubt)} = kills during a create-call "
        f"request (ledger said 'placing', the outcome was unknown to the next worker): "
        f"{doubt_called} of them FoneStorm had created, {len(in_doubt) - doubt_called} it had "
        f"not (the kill came before the request left); none was placed a second time."
    )
    print(summary)
    tail = log_path.read_text()[-3000:]
    assert len(kills) >= KILLS - 1, "the commands finished before the kills: raise COMMANDS"
    assert set(final) == {c.command_id for c in commands}, f"commands without a result\n{tail}"
    assert all(len(s) == 1 for s in statuses.values()), "conflicting results for one command"
    assert set(final.values()) <= {"placed", "in_doubt"}
    assert max(calls.values()) == 1, "a command_id was placed twice"
    assert max(create_requests.values()) == 1, "FoneStorm was asked twice for one command_id"
    for r in results:
        if r["status"] == "placed":
            assert r["call_id"] == call_ids[r["command_id"]]
