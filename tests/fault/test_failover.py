"""Failover on the three-broker cluster under callback load and a command backlog.

Each test runs one fault of :mod:`bench.failover_faults` on the session's ``three_brokers``
cluster, with a real receiver and worker (subprocesses, default settings), the sandbox as
FoneStorm, closed-loop HTTP callbacks and a backlog of place-call commands flowing through the
worker while it happens. The checks are on what the topics and the sandbox hold afterwards
(:attr:`bench.failover_report.FaultReport.violations`): every acknowledged callback on the
events topic, no command called twice, one result per command, the group's committed offsets
at the end offsets.

The leader kill and the freeze take a broker down that is not the active KRaft controller; the
controller kill takes that one down (a controller election, then the fence). Only the leader
kill runs by default; the others take minutes and run with
``BRIDGE_TEST_FAILOVER=1`` (``make failover``, part of ``make soak``); ``python -m
bench.failover`` runs them all for the figures.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.failover import Failover, FailoverConfig, markdown
from bench.failover_report import FaultReport
from bridge.settings import KafkaSettings
from tests.support.kafka_broker import three_brokers_instance

pytestmark = [pytest.mark.integration, pytest.mark.fault]

#: The long faults run only with BRIDGE_TEST_FAILOVER=1 (make failover).
long_fault = pytest.mark.skipif(
    os.environ.get("BRIDGE_TEST_FAILOVER") != "1",
    reason="long failover run: BRIDGE_TEST_FAILOVER=1 (make failover)",
)
DEFAULTS = KafkaSettings()


async def _run(fault: str, bootstrap: str, tmp_path: Path, **config: float) -> FaultReport:
    settings = FailoverConfig(out=tmp_path, **config)  # type: ignore[arg-type]
    report = await Failover(fault, three_brokers_instance(), bootstrap, settings).run()
    print(markdown([report], f"tests/fault/test_failover.py ({fault})", {}))
    assert 0 < report.calls_before_fault < len(report.command_ids), "no backlog in the fault"
    assert report.acked, "no callback was acknowledged"
    return report


@pytest.mark.timeout(300)
async def test_leader_and_coordinator_sigkill_lose_nothing_and_answer_no_503(
    three_brokers: str, tmp_path: Path
) -> None:
    report = await _run(
        "leader-kill", three_brokers, tmp_path,
        clients=8, commands=120, rate_limit=6, down_seconds=1, after=2,
    )  # fmt: skip
    assert report.violations == []
    # The produce timeout outlasts the election: nobody is told to retry while two are up,
    # and the receiver stays ready (the brokers left answer).
    assert report.unavailable == []
    assert {status for _, status in report.readiness} == {200}


@pytest.mark.failover_long
@long_fault
@pytest.mark.timeout(600)
@pytest.mark.parametrize("fault", ["rolling-restart", "freeze"])
async def test_routine_faults_lose_nothing_and_answer_no_503(
    fault: str, three_brokers: str, tmp_path: Path
) -> None:
    # Frozen past the producer's request timeout, and past the broker's session (fenced).
    freeze = DEFAULTS.producer_request_timeout_ms / 1000 + 12
    report = await _run(fault, three_brokers, tmp_path, freeze_seconds=freeze)
    assert report.violations == []
    assert report.unavailable == []


@pytest.mark.failover_long
@long_fault
@pytest.mark.timeout(300)
async def test_active_controller_sigkill_loses_nothing_and_answers_within_the_timeout(
    three_brokers: str, tmp_path: Path
) -> None:
    report = await _run("controller-kill", three_brokers, tmp_path, down_seconds=1, after=2)
    assert report.violations == []
    # A controller election comes before the fence: a callback may get 503 (counted in the
    # figures), but none waits past the produce timeout, under the sender's ~15 s.
    assert max(a.ended - a.started for a in report.answers) < DEFAULTS.produce_timeout + 1


@pytest.mark.failover_long
@long_fault
@pytest.mark.timeout(600)
async def test_two_brokers_down_answer_503_then_recover_without_a_restart(
    three_brokers: str, tmp_path: Path
) -> None:
    timeout = DEFAULTS.produce_timeout
    outage = 2.5 * timeout
    report = await _run("two-down", three_brokers, tmp_path, outage_seconds=outage)
    assert report.violations == []
    down, up = report.moments["down"], report.moments["up"]
    # Sent while both were down, early enough to be answered before they were started again.
    during = [a for a in report.answers if down < a.started - report.began < up - timeout - 1]
    assert during, "no callback was sent during the outage"
    assert {a.status for a in during} == {503}, "acknowledged below min.insync.replicas"
    # /readyz learns of it from the first produce that times out, then stays false.
    known = down + timeout + 3.0
    polls = [status for at, status in report.readiness if known <= at <= up]
    assert polls, "no /readyz poll during the outage"
    assert set(polls) == {503}, "/readyz said ready while two brokers were down"
    assert any(a.status == 200 and a.started - report.began > up for a in report.answers)
    assert report.readiness[-1][1] == 200, "/readyz did not follow the cluster back"
