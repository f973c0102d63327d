"""FoneStorm misbehaving while commands flow: bursts of 5xx, 429 with Retry-After, timeouts.

Every command gets exactly one final result, and FoneStorm (the sandbox) sees at most one call
per command_id, whatever it answered before.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import Counter, defaultdict

import pytest

from tests.support.bridge_app import BridgeFactory
from tests.support.commands import closed_loop, command
from tests.support.kafka_records import consume_until_distinct, read_to_end

pytestmark = [pytest.mark.integration, pytest.mark.fault]

COMMANDS = 200
RETRY_AFTER = 0.3
READ_TIMEOUT = 0.5
BURSTS = [
    {"fail_next": 25, "fail_status": 500},
    {"rate_limit_next": 25, "retry_after": RETRY_AFTER},
    {"timeout_next": 8, "timeout_seconds": 0.8},  # hangs longer than the worker's read timeout
    {"fail_next": 15, "fail_status": 503},
    {"rate_limit_next": 15, "retry_after": RETRY_AFTER},
    {"fail_next": 15, "fail_status": 502},
    {"timeout_next": 6, "timeout_seconds": 0.8},
]


@pytest.mark.timeout(150)
async def test_fonestorm_faults_give_one_result_and_at_most_one_call(
    start_bridge: BridgeFactory,
) -> None:
    async with closed_loop(
        start_bridge,
        # Opted in to retrying ambiguous answers: the sandbox's 5xx and timeouts create nothing.
        worker={"retry_ambiguous": True, "max_in_flight": 32, "rate_limit": 60, "max_attempts": 8,
                "backoff_initial": 0.05, "backoff_max": 0.5, "max_retry_seconds": 30},
        fonestorm={"read_timeout": READ_TIMEOUT},
    ) as loop:  # fmt: skip
        state = loop.sandbox.state
        commands = [command(f"fault-{i:04d}") for i in range(COMMANDS)]

        async def inject() -> None:
            # One burst every 0.35 s while commands flow, each on top of what is left.
            for burst in BURSTS:
                state.update_faults(burst)
                await asyncio.sleep(0.35)

        started = time.perf_counter()
        injector = asyncio.create_task(inject())
        await loop.send(*commands)
        await injector
        settings = loop.settings
        records = await consume_until_distinct(
            settings.kafka.bootstrap_servers, settings.topics.place_call_results,
            key=lambda r: r.key, expected=COMMANDS, timeout=90,
        )  # fmt: skip
        elapsed = time.perf_counter() - started
        await asyncio.sleep(1.0)  # a wrong second result or call would show up now
        records = await read_to_end(
            settings.kafka.bootstrap_servers, settings.topics.place_call_results
        )
        results = [json.loads(r.value) for r in records]

    per_command = Counter(r["command_id"] for r in results)
    status = {r["command_id"]: r["status"] for r in results}
    calls = loop.calls_per_command()
    requests = [r for r in state.requests if r.path == "/v2/calls"]
    answered = Counter(r.status for r in requests)
    faults = Counter(r.fault for r in requests if r.fault)
    print(
        f"\nFoneStorm faults: {COMMANDS} commands in {elapsed:.1f}s; create-call requests "
        f"{len(requests)} by status {dict(sorted(answered.items()))}, injected {dict(faults)}; "
        f"results in Kafka {len(results)} by status {dict(Counter(status.values()))}; "
        f"calls in the sandbox {sum(calls.values())} for {len(calls)} command ids"
    )
    assert set(per_command) == {c.command_id for c in commands}, "a command has no result"
    assert set(per_command.values()) == {1}, "a command has more than one result"
    assert set(status.values()) <= {"placed", "failed"}
    assert all(n == 1 for n in calls.values()), "FoneStorm saw two calls for one command_id"
    for command_id, outcome in status.items():
        assert calls.get(command_id, 0) == (1 if outcome == "placed" else 0), command_id
    # Every kind of fault really happened, and the worker waited out each Retry-After.
    assert faults["rate_limit"] >= 30
    assert faults["fail"] >= 50
    assert faults["hang"] >= 10
    by_key = defaultdict(list)
    for r in requests:
        by_key[r.idempotency_key].append(r)
    waited = [
        (later.at - earlier.at).total_seconds()
        for attempts in by_key.values()
        for earlier, later in itertools.pairwise(attempts)
        # The sandbox records a request when it answers: a hung attempt (which the worker gave
        # up on before its retry got the 429) is recorded after it, and is not a retry.
        if earlier.status == 429 and later.fault != "hang"
    ]
    assert waited
    assert min(waited) >= RETRY_AFTER - 0.05, sorted(waited)[:5]
