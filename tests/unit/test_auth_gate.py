"""The auth gate: what each answer does to it, when the worker takes a record, who probes."""

from __future__ import annotations

import asyncio
import time

import pytest

from bridge.commands.auth_gate import AuthGate, Effect, effect, records_to_start


@pytest.mark.parametrize(
    ("status", "refused", "expected"),
    [
        pytest.param(401, True, Effect.CLOSE, id="401: the token is refused"),
        pytest.param(None, True, Effect.CLOSE, id="no token configured"),
        pytest.param(403, False, Effect.KEEP, id="403: this request refused, token unknown"),
        pytest.param(None, False, Effect.KEEP, id="no answer: timeout, connection lost"),
        pytest.param(200, False, Effect.REOPEN, id="2xx without a call: the token passed"),
        pytest.param(400, False, Effect.REOPEN, id="400"),
        pytest.param(404, False, Effect.REOPEN, id="404"),
        pytest.param(422, False, Effect.REOPEN, id="422"),
        pytest.param(429, False, Effect.REOPEN, id="429"),
        pytest.param(500, False, Effect.REOPEN, id="500"),
        pytest.param(503, False, Effect.REOPEN, id="503"),
    ],
)
def test_what_an_answer_does_to_the_gate(status: int | None, refused: bool, expected: Effect):
    assert effect(status=status, refused=refused) is expected


@pytest.mark.parametrize(
    ("gate_open", "in_hand", "free", "expected"),
    [
        pytest.param(True, 0, 8, 8, id="open: every free slot"),
        pytest.param(True, 5, 3, 3, id="open, some in hand"),
        pytest.param(True, 8, 0, 0, id="open, full"),
        pytest.param(False, 0, 8, 1, id="closed, none in hand: one to probe with"),
        pytest.param(False, 1, 7, 0, id="closed, one in hand: it probes"),
        pytest.param(False, 8, 0, 0, id="closed, full"),
    ],
)
def test_records_the_worker_starts(gate_open: bool, in_hand: int, free: int, expected: int):
    assert records_to_start(gate_open=gate_open, in_hand=in_hand, free=free) == expected


async def _through(gate: AuthGate, name: str, log: list[str], release: asyncio.Event) -> None:
    async with gate.admit():
        log.append(f"{name} in")
        await release.wait()
        log.append(f"{name} out")


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_open_gate_lets_everyone_through_at_once() -> None:
    gate, log, release = AuthGate(60.0), [], asyncio.Event()
    tasks = [asyncio.create_task(_through(gate, n, log, release)) for n in "abc"]
    await _settle()
    assert log == ["a in", "b in", "c in"]
    release.set()
    await asyncio.gather(*tasks)


async def test_closed_gate_passes_the_probe_on_one_waiter_at_a_time_in_order() -> None:
    now = [0.0]
    gate = AuthGate(60.0, clock=lambda: now[0])
    gate.close("401")
    now[0] = 60.0  # the interval has passed
    log: list[str] = []
    releases = {n: asyncio.Event() for n in "abc"}
    tasks = []
    for n in "abc":
        tasks.append(asyncio.create_task(_through(gate, n, log, releases[n])))
        await asyncio.sleep(0)
    await _settle()
    assert log == ["a in"]
    assert gate.probing
    releases["a"].set()  # a's attempt ends without an answer (expired, revoked, a 403)
    await _settle()
    assert log == ["a in", "a out", "b in"]
    tasks[1].cancel()  # b is revoked while it holds the probe
    await _settle()
    assert log == ["a in", "a out", "b in", "c in"]
    releases["c"].set()
    await asyncio.gather(tasks[0], tasks[2])
    assert not gate.probing


async def test_reopening_lets_every_waiter_through() -> None:
    gate = AuthGate(60.0)
    gate.close("401")
    log: list[str] = []
    release = asyncio.Event()
    tasks = [asyncio.create_task(_through(gate, n, log, release)) for n in "abc"]
    await _settle()
    assert log == []  # the one holding the probe waits out the interval
    gate.observe(status=422, refused=False, reason="a final 4xx: the token got through")
    await _settle()
    assert sorted(log) == ["a in", "b in", "c in"]
    assert gate.is_open
    assert gate.describe() == ""
    release.set()
    await asyncio.gather(*tasks)


async def test_the_probe_waits_the_interval_after_each_request_while_closed() -> None:
    interval = 0.1
    gate = AuthGate(interval)
    gate.observe(status=401, refused=True, reason="POST /calls: FoneStorm answered 401")
    assert "401" in gate.describe()
    refused_at = time.monotonic()
    async with gate.admit():
        assert time.monotonic() - refused_at >= interval
        gate.observe(status=403, refused=False, reason="403: one command's own refusal")
        assert not gate.is_open
    sent_at = time.monotonic()
    async with gate.admit():
        assert time.monotonic() - sent_at >= interval
