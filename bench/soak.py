"""Chaos soak of the command worker: at most one call and one outcome per command, whatever happens.

Thousands of place-call commands on a dedicated local broker; worker processes
(``fonestorm-bridge worker``) join, leave (SIGTERM), die (SIGKILL) and freeze (SIGSTOP, then
SIGCONT, mostly for longer than their session timeout, so the group gives their partitions
away while they are stopped) at random, the broker is restarted once, the sandbox injects
500s, timeouts, 429s and after-create faults (the call is created, the answer is a 500 or a
broken body), and the rate limit is low, so every rebalance meets a backlog. Then it counts,
from the sandbox's own record, the calls made for each command and checks:

* at most one call per command;
* exactly one outcome per command (the same status published again after a crash is counted
  as a republication, not a second outcome);
* no ``placed`` without a call, and every call that exists is reported ``placed`` or
  ``in_doubt``;
* the group's committed offsets reach the command topic's end offsets.

A worker that learns of its call after another worker reported the command publishes a
reconciled ``CallPlaced`` instead of a second result; the report counts those.

``make soak`` runs the long version and writes ``bench/SOAK.md``; ``tests/fault/test_soak.py``
runs a short one in CI. Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.request import urlopen

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from bench.harness import PY, ROOT, Proc, log, read_topic, spawn, wait_http
from bench.harness import producer as kafka_producer
from bench.soak_report import Report, SoakConfig, after_create_commands, why, with_hand_kept
from tests.support.paths import LOCAL_KAFKA
from tests.support.ports import free_port

TOKEN = "soak-token"  # noqa: S105 - the loopback sandbox's token
TOPICS = {
    "place_call": "soak.commands",
    "place_call_results": "soak.results",
    "command_ledger": "soak.ledger",
    "call_events": "soak.events",
    "dead_letters": "soak.dlq",
}
GROUP = "soak-workers"
SIGKILL, SIGTERM = "worker SIGKILLed", "worker stopped (SIGTERM)"
LONG_FREEZE, SHORT_FREEZE = "worker frozen past its session", "worker frozen briefly"
AFTER_CREATE_BURST = "after-create burst (500s, a broken body)"
#: What every run does at least once, and when (share of the chaos period) if chance has not.
MUST_HAPPEN = {
    AFTER_CREATE_BURST: 0.1,
    SIGKILL: 0.2,
    "Kafka restarted": 0.4,
    LONG_FREEZE: 0.5,
    SIGTERM: 0.65,
}


async def produce_backlog(bootstrap: str, topic: str, count: int, prefix: str) -> dict[str, str]:
    """``count`` place-call commands on ``topic``, each to a number of its own; returns
    destination -> command id."""
    by_number = {}
    async with kafka_producer(bootstrap) as p:
        for n in range(count):
            command_id = f"{prefix}-{n}-{uuid.uuid4()}"
            # Valid US numbers (the worker refuses others), in E.164 as the worker sends
            # them; the last four digits are n's, which pick the sandbox's outcome.
            to = f"+1410{555 + n // 10_000}{n % 10_000:04d}"
            by_number[to] = command_id
            value = {"command_id": command_id, "fonenumber": "3215551081", "to": to}
            await p.send(topic, json.dumps(value).encode(), key=command_id.encode())
        await p.flush()
    return by_number


class Soak:
    """One run: broker, sandbox, a changing set of workers, chaos, then the count."""

    def __init__(self, config: SoakConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)  # noqa: S311 - chaos, not crypto
        self.report = Report(config)
        self.kafka_name = f"soak-{os.getpid()}"
        self.kafka_port, self.controller_port = free_port(), free_port()
        self.bootstrap = f"127.0.0.1:{self.kafka_port}"
        self.sandbox_port = free_port()
        self.workers: list[Proc] = []
        self.dead: list[Proc] = []
        #: Workers under SIGSTOP, out of :attr:`workers` so that nothing else signals them.
        self.frozen: list[Proc] = []
        self.thaws: list[asyncio.Task[None]] = []
        self.started = 0

    def _kafka(self, command: str, *extra: str) -> None:
        args = [PY, str(LOCAL_KAFKA), command, "--name", self.kafka_name]
        if command == "start":
            args += [
                "--port",
                str(self.kafka_port),
                "--controller-port",
                str(self.controller_port),
                "--timeout",
                "120",
            ]
        subprocess.run(  # noqa: S603 - our own script, fixed arguments
            [*args, *extra],
            check=command == "start",
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def _env(self) -> dict[str, str]:
        env = {
            "BRIDGE_KAFKA__BOOTSTRAP_SERVERS": self.bootstrap,
            "BRIDGE_KAFKA__CREATE_TOPICS": "true",
            "BRIDGE_KAFKA__TOPIC_PARTITIONS": "6",
            "BRIDGE_WORKER__GROUP_ID": GROUP,
            "BRIDGE_WORKER__SESSION_TIMEOUT": f"{self.config.session_timeout:g}",
            "BRIDGE_WORKER__RATE_LIMIT": str(self.config.rate_limit),
            "BRIDGE_WORKER__MAX_IN_FLIGHT": "32",
            "BRIDGE_WORKER__BACKOFF_INITIAL": "0.2",
            "BRIDGE_WORKER__BACKOFF_MAX": "2",
            "BRIDGE_WORKER__MAX_RETRY_SECONDS": "600",
            "BRIDGE_WORKER__MAX_ATTEMPTS": "20",
            "BRIDGE_FONESTORM__BASE_URL": f"http://127.0.0.1:{self.sandbox_port}/v2",
            "BRIDGE_FONESTORM__TOKEN": TOKEN,
            "BRIDGE_FONESTORM__FONENUMBERS": '["3215551081"]',
            "BRIDGE_FONESTORM__READ_TIMEOUT": "3",
            "BRIDGE_HTTP__SHUTDOWN_TIMEOUT": "10",
            "BRIDGE_LOG__FORMAT": "text",
        }
        return env | {f"BRIDGE_TOPICS__{k.upper()}": v for k, v in TOPICS.items()}

    async def start_worker(self, *, ready: bool = False) -> None:
        self.started += 1
        port = free_port()
        env = self._env() | {"BRIDGE_HTTP__PORT": str(port)}
        if self.config.worker_dir != ROOT:
            env["PYTHONPATH"] = str(self.config.worker_dir)
        proc = await spawn(
            f"worker-{self.started}",
            [PY, "-m", "bridge.cli", "worker"],
            env,
            self.config.out,
            cwd=self.config.worker_dir,
        )
        # /readyz once the topics exist (the first worker creates them), else just alive.
        await wait_http(f"http://127.0.0.1:{port}/{'readyz' if ready else 'healthz'}", proc)
        self.workers.append(proc)
        self.report.actions["worker started"] += 1

    async def stop_worker(self, *, kill: bool) -> None:
        proc = self.workers.pop(self.rng.randrange(len(self.workers)))
        if kill:
            proc.proc.send_signal(signal.SIGKILL)
            await proc.proc.wait()
        else:
            await proc.stop()
        self.dead.append(proc)
        self.report.actions[SIGKILL if kill else SIGTERM] += 1

    def freeze_worker(self, *, past_session: bool) -> None:
        """SIGSTOP a worker; a task sends SIGCONT later, past the session timeout or within it.

        Past it, the group expels the worker and gives its partitions to another while its
        requests and jobs stand still; within it, its proof of membership may lapse all the same.
        """
        session = self.config.session_timeout
        seconds = session * (
            self.rng.uniform(1.3, 2.5) if past_session else self.rng.uniform(0.2, 0.9)
        )
        proc = self.workers.pop(self.rng.randrange(len(self.workers)))
        proc.proc.send_signal(signal.SIGSTOP)
        self.frozen.append(proc)
        self.thaws.append(asyncio.create_task(self._thaw(proc, seconds)))
        self.report.actions[LONG_FREEZE if past_session else SHORT_FREEZE] += 1
        log(f"soak: {proc.name} frozen for {seconds:.1f} s")

    async def _thaw(self, proc: Proc, seconds: float) -> None:
        began = time.monotonic()
        try:
            await asyncio.sleep(seconds)
        finally:
            proc.proc.send_signal(signal.SIGCONT)
            self.report.freezes.append(time.monotonic() - began)
            self.frozen.remove(proc)
            self.workers.append(proc)

    def after_create_burst(self) -> None:
        """The next few create-calls make the call and answer 500, one more a broken body."""
        self.sandbox_faults(
            fail_after_create_next=self.rng.randint(2, 5), break_body_after_create_next=1
        )
        self.report.actions[AFTER_CREATE_BURST] += 1

    def sandbox_faults(self, **faults: Any) -> None:
        body = json.dumps(faults).encode()
        url = f"http://127.0.0.1:{self.sandbox_port}/_sandbox/faults"
        with urlopen(url, data=body, timeout=5):
            pass

    def sandbox_get(self, what: str) -> list[dict[str, Any]]:
        """``GET /_sandbox/<what>`` (``calls`` or ``requests``)."""
        url = f"http://127.0.0.1:{self.sandbox_port}/_sandbox/{what}"
        with urlopen(url, timeout=30) as response:
            data: Any = json.loads(response.read())
        items: list[dict[str, Any]] = data[what] if isinstance(data, dict) else data
        return items

    async def produce(self) -> dict[str, str]:
        """The commands, each to a number of its own; returns destination -> command id."""
        return await produce_backlog(
            self.bootstrap, TOPICS["place_call"], self.config.commands, "soak"
        )

    async def chaos(self) -> None:
        """Random chaos for ``chaos_seconds``; each of :data:`MUST_HAPPEN` at least once.

        Each is due at a fixed share of the period and happens then if the dice have not
        already done it, so a short run cannot roll its way past any of them.
        """
        c = self.config
        began = time.monotonic()
        end = began + c.chaos_seconds
        due = {name: began + c.chaos_seconds * share for name, share in MUST_HAPPEN.items()}
        while time.monotonic() < end:
            await asyncio.sleep(c.interval * self.rng.uniform(0.5, 1.5))
            overdue = [name for name, at in due.items() if time.monotonic() >= at]
            if overdue:
                await self.must(overdue[0])
                del due[overdue[0]]
            else:
                await self.roll()
            log(f"soak: {len(self.workers)} workers; {dict(self.report.actions)}")
        for name in due:
            await self.must(name)
        await asyncio.gather(*self.thaws)

    async def must(self, name: str) -> None:
        """Do one of :data:`MUST_HAPPEN` now unless the dice already did."""
        if name == "Kafka restarted":
            log("soak: restarting Kafka")
            self._kafka("stop")
            await asyncio.sleep(3)
            await asyncio.to_thread(self._kafka, "start")
            self.report.actions[name] += 1
        elif name == AFTER_CREATE_BURST:
            if not self.report.actions[name]:
                self.after_create_burst()
        elif not self.report.actions[name]:
            # Another worker must be there to take over the partitions.
            if len(self.workers) < 2:
                await self.start_worker()
            if name == LONG_FREEZE:
                self.freeze_worker(past_session=True)
            else:
                await self.stop_worker(kill=name == SIGKILL)

    async def roll(self) -> None:
        roll = self.rng.random()
        running = len(self.workers) + len(self.frozen)
        if roll < 0.12:
            self.sandbox_faults(rate_limit_next=20, retry_after=1)
            self.report.actions["429 burst"] += 1
        elif roll < 0.2:
            self.sandbox_faults(timeout_next=3, timeout_seconds=4)
            self.report.actions["timeout burst"] += 1
        elif roll < 0.26:
            self.after_create_burst()
        elif roll < 0.36 and len(self.workers) > 1:
            self.freeze_worker(past_session=self.rng.random() < 0.6)
        elif running < self.config.max_workers and roll < 0.65:
            await self.start_worker()
        elif len(self.workers) > 1:
            await self.stop_worker(kill=roll < 0.82)

    async def lag(self) -> int:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            committed = await admin.list_consumer_group_offsets(GROUP)
        finally:
            await admin.close()
        records = await read_topic(self.bootstrap, TOPICS["place_call"], max_seconds=1)
        ends: Counter[TopicPartition] = Counter()
        for r in records:
            tp = TopicPartition(r.topic, r.partition)
            ends[tp] = max(ends[tp], r.offset + 1)
        return sum(
            max(0, end - (committed[tp].offset if tp in committed else 0))
            for tp, end in ends.items()
        )

    async def run(self) -> Report:
        c = self.config
        c.out.mkdir(parents=True, exist_ok=True)
        began = time.monotonic()
        sandbox = await spawn(
            "sandbox",
            [PY, "-m", "bridge.cli", "sandbox"],
            {
                "BRIDGE_SANDBOX__PORT": str(self.sandbox_port),
                "BRIDGE_SANDBOX__TOKEN": TOKEN,
                "BRIDGE_SANDBOX__ERROR_RATE": "0.03",
                "BRIDGE_SANDBOX__LATENCY": "0.02",
                "BRIDGE_SANDBOX__RING_DELAY": "0",
                "BRIDGE_SANDBOX__CALL_DURATION": "0",
                "BRIDGE_LOG__LEVEL": "WARNING",
            },
            c.out,
        )
        self._kafka("start", "--fresh")
        try:
            await wait_http(f"http://127.0.0.1:{self.sandbox_port}/healthz", sandbox)
            await self.start_worker(ready=True)
            by_number = await self.produce()
            self.report.command_ids = list(by_number.values())
            await self.start_worker()
            await self.chaos()
            while len(self.workers) < 2:
                await self.start_worker()
            await self.settle()
        finally:
            for thaw in self.thaws:
                thaw.cancel()
            await asyncio.gather(*self.thaws, return_exceptions=True)
            for proc in self.workers:
                await proc.stop()
            self.count_calls(by_number if "by_number" in locals() else {})
            await sandbox.stop()
            self._kafka("stop", "--purge")
        self.report.seconds = time.monotonic() - began
        return self.report

    async def settle(self) -> None:
        """Until every command has an outcome and every offset is committed (bounded)."""
        deadline = time.monotonic() + self.config.settle_seconds
        while time.monotonic() < deadline:
            await self.read_results()
            if len(self.report.outcomes) >= self.config.commands:
                break
            await asyncio.sleep(2)
        while time.monotonic() < deadline:
            self.report.lag = await self.lag()
            if self.report.lag == 0:
                break
            await asyncio.sleep(1)
        await asyncio.sleep(2)  # a late second outcome would show now
        await self.read_results()
        await self.read_reconciled()

    async def read_results(self) -> None:
        records = await read_topic(self.bootstrap, TOPICS["place_call_results"], max_seconds=60)
        outcomes: dict[str, set[str]] = {}
        doubts: Counter[str] = Counter()
        for r in records:
            result = json.loads(r.value)
            seen = outcomes.setdefault(result["command_id"], set())
            if result["status"] == "in_doubt" and "in_doubt" not in seen:
                doubts[why(result.get("error_message") or "")] += 1
            seen.add(result["status"])
        self.report.outcomes, self.report.doubts = outcomes, doubts
        self.report.result_records = len(records)

    async def read_reconciled(self) -> None:
        records = await read_topic(self.bootstrap, TOPICS["call_events"], max_seconds=60)
        events = [json.loads(r.value) for r in records]
        self.report.reconciled = {
            e["command_id"]: e["call_id"] for e in events if e.get("reconciled") is True
        }

    def count_calls(self, by_number: dict[str, str]) -> None:
        """Calls per command and the faults create-calls got, from the sandbox's own record."""
        calls = self.sandbox_get("calls")
        self.report.calls_per_command = Counter(
            by_number[c["to"]] for c in calls if c["to"] in by_number
        )
        requests = self.sandbox_get("requests")
        self.report.faults_served = Counter(r["fault"] for r in requests if r.get("fault"))
        self.report.after_create = after_create_commands(requests)


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.soak``: run, print the figures, write ``bench/SOAK.md``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--commands", type=int, default=SoakConfig.commands)
    parser.add_argument("--chaos-seconds", type=float, default=SoakConfig.chaos_seconds)
    parser.add_argument("--rate-limit", type=float, default=SoakConfig.rate_limit)
    parser.add_argument("--seed", type=int, default=SoakConfig.seed)
    parser.add_argument(
        "--worker-dir", type=Path, default=ROOT, help="run the workers from this checkout"
    )
    parser.add_argument("--write", type=Path, default=ROOT / "bench" / "SOAK.md")
    args = parser.parse_args(argv)
    config = SoakConfig(
        commands=args.commands,
        chaos_seconds=args.chaos_seconds,
        rate_limit=args.rate_limit,
        seed=args.seed,
        worker_dir=args.worker_dir.resolve(),
    )
    report = asyncio.run(Soak(config).run())
    text = report.markdown()
    print(text)
    existing = args.write.read_text(encoding="utf-8") if args.write.exists() else ""
    args.write.write_text(with_hand_kept(text, existing), encoding="utf-8")
    return 1 if report.violations else 0


if __name__ == "__main__":
    sys.exit(main())
