"""Failover on a three-node Kafka cluster: what callbacks and commands go through.

For each fault (:mod:`bench.failover_faults`: the group coordinator and events leader
SIGKILLed, the active KRaft controller SIGKILLed, a rolling restart, a broker frozen with
SIGSTOP, two brokers down at once) a fresh set of topics (three replicas,
``min.insync.replicas=2``), a real receiver and a real worker (``python -m bridge.cli
receiver|worker``) and the sandbox as FoneStorm; closed-loop HTTP callbacks into the receiver
and a backlog of place-call commands flowing through the worker while the fault happens. Then,
from what is on the topics and the sandbox's record: every acknowledged callback on the events
topic, no command called twice, one result record per command, the group's committed offsets
at the end; and the figures (callbacks acknowledged, lost, answered 503, acknowledgement
latency; commands placed, doubled, results per command).

``python -m bench.failover`` (``make failover``, part of ``make soak``) runs every fault on a
cluster of its own and writes ``bench/FAILOVER.md``; ``tests/fault/test_failover.py`` runs
them as tests. Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from bench.cluster import Cluster
from bench.failover_faults import BROKER_ONLY, FAULTS, QUORUM_KEPT, Scene
from bench.failover_report import TABLE_HEAD, Answer, FaultReport
from bench.harness import PY, ROOT, Proc, log, read_topic, spawn, wait_http
from bench.soak import produce_backlog
from bench.soak_report import with_hand_kept
from bridge.kafka.topics import ensure_topics
from bridge.settings import Settings
from tests.support.paths import LOCAL_KAFKA
from tests.support.ports import free_port

TOKEN = "failover-token"  # noqa: S105 - the loopback sandbox's token
OURS = "3215551081"
LOCAL_KAFKA_BUSY = 5  # exit code of `local-kafka start`: a port taken


@dataclass
class FailoverConfig:
    """How much load, and for how long around the fault."""

    clients: int = 16
    commands: int = 240
    #: The worker's create-call rate: low, so that the backlog flows through the fault.
    rate_limit: float = 8.0
    #: Seconds of load before the fault and after the cluster is in sync again.
    warmup: float = 3.0
    after: float = 3.0
    down_seconds: float = 3.0
    freeze_seconds: float = 15.0
    outage_seconds: float = 10.0
    frozen_followers: float = 0.0
    settle_seconds: float = 180.0
    #: Extra environment of the receiver and the worker (e.g. a setting under test).
    env: dict[str, str] = field(default_factory=dict)
    #: server.properties entries of every node in place of Kafka's defaults.
    broker_config: dict[str, str] = field(default_factory=dict)
    out: Path = ROOT / "bench" / "out" / "failover"


@dataclass
class _Load:
    report: FaultReport
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    #: Set by the first callback acknowledged that was sent after :attr:`since`.
    acknowledged: asyncio.Event = field(default_factory=asyncio.Event)
    since: float = float("inf")


def _callback(n: int) -> dict[str, object]:
    """A valid FoneStorm call callback (JSON method) with a fresh call id."""
    data: dict[str, object] = {
        "uid": str(uuid.uuid4()), "account_code": "ACC1", "direction": "INBOUND",
        "status": "END" if n % 2 else "BEGIN", "from": OURS, "to": "3215551801", "type": "VOICE",
    }  # fmt: skip
    if n % 2:
        data |= {"disposition": "ANSWERED", "billable_seconds": 30}
    return data


class Failover:
    """One fault under load on local-kafka instance ``instance`` (three nodes, running)."""

    def __init__(self, fault: str, instance: str, bootstrap: str, config: FailoverConfig) -> None:
        self.fault = fault
        self.instance = instance
        self.bootstrap = bootstrap
        self.config = config
        suffix = uuid.uuid4().hex[:8]
        self.topics = {
            "call_events": f"fo-{suffix}.events",
            "dead_letters": f"fo-{suffix}.dlq",
            "place_call": f"fo-{suffix}.commands",
            "place_call_results": f"fo-{suffix}.results",
            "command_ledger": f"fo-{suffix}.ledger",
        }
        self.group = f"fo-{suffix}-workers"
        self.sandbox_port = free_port()
        self.report = FaultReport(fault, quorum_kept=fault in QUORUM_KEPT)
        self._began = self.report.began = time.monotonic()

    def _env(self) -> dict[str, str]:
        env = {
            "BRIDGE_KAFKA__BOOTSTRAP_SERVERS": self.bootstrap,
            "BRIDGE_HTTP__HOST": "127.0.0.1",
            "BRIDGE_CALLBACKS__ALLOW_UNAUTHENTICATED": "true",
            "BRIDGE_WORKER__GROUP_ID": self.group,
            "BRIDGE_WORKER__RATE_LIMIT": f"{self.config.rate_limit:g}",
            "BRIDGE_FONESTORM__BASE_URL": f"http://127.0.0.1:{self.sandbox_port}/v2",
            "BRIDGE_FONESTORM__TOKEN": TOKEN,
            "BRIDGE_FONESTORM__FONENUMBERS": f'["{OURS}"]',
            "BRIDGE_FONESTORM__READ_TIMEOUT": "3",
            "BRIDGE_HTTP__SHUTDOWN_TIMEOUT": "10",
            "BRIDGE_LOG__FORMAT": "text",
        }
        env |= {f"BRIDGE_TOPICS__{k.upper()}": v for k, v in self.topics.items()}
        return env | self.config.env

    def mark(self, what: str, name: str | None = None) -> None:
        """Add ``what`` to the timeline (and its moment under ``name``), and say it."""
        at = time.monotonic() - self._began
        self.report.timeline.append((at, what))
        if name is not None:
            self.report.moments[name] = at
        log(f"failover {self.fault}: {at:6.1f} s {what}")

    async def run(self) -> FaultReport:
        """Topics, processes, load, the fault, the count."""
        c = self.config
        c.out.mkdir(parents=True, exist_ok=True)
        self._began = self.report.began = time.monotonic()
        settings = Settings(
            kafka={"bootstrap_servers": self.bootstrap, "topic_partitions": 3,
                   "create_topics": True},
            topics=self.topics,
        )  # fmt: skip
        await ensure_topics(settings, list(self.topics.values()))
        procs: list[Proc] = []
        async with Cluster(self.instance, self.bootstrap) as cluster:
            try:
                await cluster.wait_in_sync(self.topics.values())
                if self.fault in BROKER_ONLY:
                    await self._spare_controller(cluster)
                receiver_url = await self._start(procs)
                by_number = await self._produce()
                await self._under_load(cluster, receiver_url)
                await self._settle(cluster)
                await self._count(cluster, by_number)
            finally:
                await cluster.restore()
                for proc in reversed(procs):
                    await proc.stop()
        self.report.seconds = time.monotonic() - self._began
        return self.report

    async def _spare_controller(self, cluster: Cluster) -> None:
        """Take a group whose coordinator is not the active controller, so that the fault
        takes a broker down and not the controller with it (that is ``controller-kill``)."""
        controller = cluster.active_controller()
        if controller is not None:
            self.group = await cluster.group_coordinated_by_other_than(
                controller, self.group.removesuffix("-workers")
            )
        coordinator = await cluster.coordinator(self.group)
        self.mark(f"group coordinated by node {coordinator}; active controller node {controller}")

    async def _start(self, procs: list[Proc]) -> str:
        sandbox = await spawn(
            f"{self.fault}-sandbox",
            [PY, "-m", "bridge.cli", "sandbox"],
            {
                "BRIDGE_SANDBOX__PORT": str(self.sandbox_port),
                "BRIDGE_SANDBOX__TOKEN": TOKEN,
                "BRIDGE_SANDBOX__LATENCY": "0.02",
                "BRIDGE_SANDBOX__RING_DELAY": "0",
                "BRIDGE_SANDBOX__CALL_DURATION": "0",
                "BRIDGE_LOG__LEVEL": "WARNING",
            },
            self.config.out,
        )
        procs.append(sandbox)
        await wait_http(f"http://127.0.0.1:{self.sandbox_port}/healthz", sandbox)
        urls = []
        for role in ("receiver", "worker"):
            port = free_port()
            env = self._env() | {"BRIDGE_HTTP__PORT": str(port)}
            proc = await spawn(
                f"{self.fault}-{role}", [PY, "-m", "bridge.cli", role], env, self.config.out
            )
            procs.append(proc)
            urls.append(f"http://127.0.0.1:{port}")
            await wait_http(f"{urls[-1]}/readyz", proc)
        return urls[0]

    async def _produce(self) -> dict[str, str]:
        """The command backlog, each to a number of its own; destination -> command id."""
        by_number = await produce_backlog(
            self.bootstrap, self.topics["place_call"], self.config.commands, "fo"
        )
        self.report.command_ids = list(by_number.values())
        self.mark(f"{self.config.commands} commands queued")
        return by_number

    async def _under_load(self, cluster: Cluster, url: str) -> None:
        c = self.config
        load = _Load(self.report)
        limits = aiohttp.TCPConnector(limit=c.clients)
        async with aiohttp.ClientSession(
            connector=limits, timeout=aiohttp.ClientTimeout(total=60)
        ) as session:
            tasks = [
                asyncio.create_task(self._client(session, url, load)) for _ in range(c.clients)
            ]
            # A session of its own: the clients hold every connection of theirs.
            poller = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
            tasks.append(asyncio.create_task(self._poll_ready(poller, url, load)))
            try:
                await asyncio.sleep(c.warmup)
                self.report.calls_before_fault = len(await self._calls())
                scene = Scene(
                    cluster, self.topics["call_events"], self.group,
                    [*self.topics.values()], self.mark, c.down_seconds, c.freeze_seconds,
                    c.outage_seconds, c.frozen_followers,
                )  # fmt: skip
                await FAULTS[self.fault](scene)
                load.since = back = time.monotonic()
                await load.acknowledged.wait()
                self.mark(f"callbacks acknowledged again ({time.monotonic() - back:.1f} s)")
                await asyncio.sleep(c.after)
            finally:
                load.stop.set()
                await asyncio.gather(*tasks)
                await poller.close()
        self.mark(f"load stopped: {len(self.report.answers)} callbacks answered")

    async def _client(self, session: aiohttp.ClientSession, url: str, load: _Load) -> None:
        n = 0
        while not load.stop.is_set():
            n += 1
            started = time.monotonic()
            try:
                async with session.post(f"{url}/callbacks/calls", json=_callback(n)) as response:
                    body = await response.read()
                    event_id = None
                    if response.status == 200:
                        event_id = json.loads(body)["event_id"]
                        if started > load.since:
                            load.acknowledged.set()
                    load.report.answers.append(
                        Answer(started, time.monotonic(), response.status, event_id)
                    )
            except (aiohttp.ClientError, TimeoutError) as exc:
                load.report.client_errors.append(repr(exc))
                await asyncio.sleep(0.05)

    async def _poll_ready(self, session: aiohttp.ClientSession, url: str, load: _Load) -> None:
        while not load.stop.is_set():
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(f"{url}/readyz") as response:
                    load.report.readiness.append((time.monotonic() - self._began, response.status))
            await asyncio.sleep(0.1)

    async def _settle(self, cluster: Cluster) -> None:
        """Until every command has a result and the group committed to the end (bounded)."""
        deadline = time.monotonic() + self.config.settle_seconds
        while time.monotonic() < deadline:
            await self._read_results()
            if len(self.report.outcomes) >= self.config.commands:
                break
            await asyncio.sleep(1)
        while time.monotonic() < deadline:
            self.report.lag = await cluster.lag(self.group, self.topics["place_call"])
            if self.report.lag == 0:
                break
            await asyncio.sleep(1)
        await asyncio.sleep(2)  # a late second result would show now
        await self._read_results()
        self.mark(f"settled: {len(self.report.outcomes)} commands with a result, lag "
                  f"{self.report.lag}")  # fmt: skip

    async def _read_results(self) -> None:
        records = await read_topic(self.bootstrap, self.topics["place_call_results"])
        outcomes: dict[str, set[str]] = {}
        ids: dict[str, set[bytes]] = {}
        for r in records:
            result = json.loads(r.value)
            outcomes.setdefault(result["command_id"], set()).add(result["status"])
            ids.setdefault(result["command_id"], set()).add(dict(r.headers)["ce_id"])
        self.report.outcomes = outcomes
        self.report.results_per_command = Counter({c: len(found) for c, found in ids.items()})
        self.report.republished = len(records) - sum(len(found) for found in ids.values())

    async def _count(self, cluster: Cluster, by_number: dict[str, str]) -> None:
        records = await read_topic(self.bootstrap, self.topics["call_events"])
        self.report.events = Counter(json.loads(r.value)["event_id"] for r in records)
        self.report.calls_per_command = Counter(
            by_number[c["to"]] for c in await self._calls() if c["to"] in by_number
        )

    async def _calls(self) -> list[dict[str, str]]:
        """The calls the sandbox has made (its own record)."""
        url = f"http://127.0.0.1:{self.sandbox_port}/_sandbox/calls"
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            data = await response.json()
        calls: list[dict[str, str]] = data["calls"] if isinstance(data, dict) else data
        return calls


def markdown(
    reports: list[FaultReport],
    command: str,
    env: dict[str, str],
    broker_config: dict[str, str] | None = None,
) -> str:
    """``bench/FAILOVER.md``: the table, then each fault's timeline and checks."""
    settings = ", ".join(f"`{k}={v}`" for k, v in sorted(env.items())) or "the defaults"
    brokers = (
        ", ".join(f"`{k}={v}`" for k, v in broker_config.items())
        if broker_config
        else "Kafka defaults otherwise: a dead broker is fenced after "
        "`broker.session.timeout.ms=9000`"
    )
    lines = [
        "# Failover on three brokers",
        "",
        f"`{command}` on {time.strftime('%Y-%m-%d')}, one receiver and one worker with "
        f"{settings}; a three-node local-kafka cluster (KRaft, combined nodes, replication "
        f"factor 3, `min.insync.replicas=2`, {brokers}). Closed-loop HTTP callbacks; a command "
        "backlog flowing through the worker at its rate limit. Latencies are of acknowledged "
        "callbacks; *max wait* is the longest any callback waited, whatever its answer.",
        "",
        *TABLE_HEAD,
        *(r.row() for r in reports),
        "",
    ]
    for report in reports:
        lines += report.details()
    return "\n".join(lines)


def run_all(faults: list[str], config: FailoverConfig) -> list[FaultReport]:
    """Every fault in ``faults`` on a cluster of its own (started here, purged at the end)."""
    name = f"failover-{os.getpid()}"
    overrides = [f"--override={key}={value}" for key, value in config.broker_config.items()]
    for _ in range(5):  # ports port..port+5 must all be free; another try elsewhere if not
        base = random.randrange(20000, 32000)  # noqa: S311 - a port, not a secret
        started = subprocess.run(  # noqa: S603 - our own script, fixed arguments
            [PY, str(LOCAL_KAFKA), "start", "--name", name, "--brokers", "3", "--fresh",
             "--port", str(base), "--controller-port", str(base + 3), "--timeout", "120",
             *overrides],
            check=False, cwd=ROOT, capture_output=True, text=True,
        )  # fmt: skip
        if started.returncode != LOCAL_KAFKA_BUSY:
            break
    if started.returncode != 0:
        raise RuntimeError(f"local-kafka start failed: {started.stderr}")
    bootstrap = started.stdout.strip().splitlines()[-1]
    try:
        return [asyncio.run(Failover(f, name, bootstrap, config).run()) for f in faults]
    finally:
        subprocess.run(  # noqa: S603 - our own script, fixed arguments
            [PY, str(LOCAL_KAFKA), "stop", "--name", name, "--purge"],
            check=False, cwd=ROOT, capture_output=True,
        )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.failover``: run, print the figures, write ``bench/FAILOVER.md``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--fault", action="append", choices=list(FAULTS))
    parser.add_argument("--clients", type=int, default=FailoverConfig.clients)
    parser.add_argument("--commands", type=int, default=FailoverConfig.commands)
    parser.add_argument(
        "--frozen-followers", type=float, default=0.0, metavar="SECONDS",
        help="leader-kill: freeze the other nodes this long before the kill (proves the "
        "loss check: with acks=1 the records the leader took meanwhile are lost)",
    )  # fmt: skip
    parser.add_argument(
        "--env", action="append", default=[], metavar="NAME=VALUE",
        help="a setting of the receiver and worker, e.g. BRIDGE_KAFKA__PRODUCE_TIMEOUT=5",
    )  # fmt: skip
    parser.add_argument(
        "--broker-config", action="append", default=[], metavar="KEY=VALUE",
        help="a server.properties entry of every node, e.g. broker.session.timeout.ms=3000",
    )  # fmt: skip
    parser.add_argument("--write", type=Path, default=ROOT / "bench" / "FAILOVER.md")
    args = parser.parse_args(argv)
    env = dict(item.split("=", 1) for item in args.env)
    broker_config = dict(item.split("=", 1) for item in args.broker_config)
    config = FailoverConfig(
        clients=args.clients, commands=args.commands, env=env,
        frozen_followers=args.frozen_followers, broker_config=broker_config,
    )  # fmt: skip
    reports = run_all(args.fault or list(FAULTS), config)
    command = "python -m bench.failover " + " ".join(argv if argv is not None else sys.argv[1:])
    text = markdown(reports, command.strip(), env, broker_config)
    print(text)
    existing = args.write.read_text(encoding="utf-8") if args.write.exists() else ""
    args.write.write_text(with_hand_kept(text, existing), encoding="utf-8")
    return 1 if any(r.violations for r in reports) else 0


if __name__ == "__main__":
    sys.exit(main())
