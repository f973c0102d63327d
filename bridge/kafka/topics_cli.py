"""``fonestorm-bridge topics show|create|check``: the topic plan, against a real cluster.

Exit status: 0 done (``check``: every topic exists as planned), 1 ``check`` found topics missing
or drifted, 2 bad arguments, 3 Kafka failed (unreachable, not allowed). Each action writes to the
streams it is given, so tests run it in their own event loop (:func:`run_topics`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import TextIO

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from bridge.kafka.options import client_options
from bridge.kafka.starting import start_or_close
from bridge.kafka.topic_admin import (
    broker_count,
    create_topics,
    describe_topics,
    wait_for_topics,
)
from bridge.kafka.topic_plan import TopicSpec, plan_drift, topic_plan
from bridge.settings import Settings

EXIT_DRIFT = 1
EXIT_KAFKA = 3
#: Seconds `create` waits for the topics it created to have leaders.
TOPIC_READY_TIMEOUT = 60.0


def add_topics_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``topics`` and its actions on the top-level subparsers."""
    parser = sub.add_parser(
        "topics",
        help="show, create and check the topics the bridge uses",
        description="The topics the bridge uses, with partitions, replication factor and "
        "configs (BRIDGE_TOPICS__*, BRIDGE_KAFKA__TOPIC_*), fitted to the cluster's brokers.",
    )
    actions = parser.add_subparsers(dest="topics_command", required=True, metavar="ACTION")
    show = actions.add_parser("show", help="print the plan for the cluster")
    show.add_argument(
        "--brokers",
        type=int,
        metavar="N",
        help="plan for a cluster of N brokers without asking Kafka (default: count them)",
    )
    show.add_argument("--json", action="store_true", help="one JSON object per topic")
    show.set_defaults(func=cmd_topics, action="show")
    create = actions.add_parser("create", help="create the planned topics that are missing")
    create.set_defaults(func=cmd_topics, action="create")
    check = actions.add_parser(
        "check",
        help="report missing topics and drift (partitions, replication factor, configs); "
        "exit 1 if any",
    )
    check.set_defaults(func=cmd_topics, action="check")


def _line(spec: TopicSpec) -> str:
    configs = ",".join(f"{key}={value}" for key, value in sorted(spec.configs.items()))
    return (
        f"{spec.name}  partitions={spec.partitions}  "
        f"replication_factor={spec.replication_factor}  {configs}"
    ).rstrip()


def _json(spec: TopicSpec) -> str:
    return json.dumps(
        {
            "topic": spec.name,
            "partitions": spec.partitions,
            "replication_factor": spec.replication_factor,
            "configs": dict(spec.configs),
        }
    )


def _show(plan: list[TopicSpec], args: argparse.Namespace, out: TextIO) -> int:
    for spec in plan:
        print(_json(spec) if args.json else _line(spec), file=out)
    return 0


async def _act(
    settings: Settings, args: argparse.Namespace, admin: AIOKafkaAdminClient, out: TextIO
) -> int:
    brokers = await broker_count(admin)
    plan = topic_plan(settings, brokers)
    if args.action == "show":
        return _show(plan, args, out)
    if args.action == "create":
        existing = await describe_topics(admin, [spec.name for spec in plan])
        created = await create_topics(admin, [s for s in plan if s.name not in existing])
        try:
            async with asyncio.timeout(TOPIC_READY_TIMEOUT):
                await wait_for_topics(admin, created)
        except TimeoutError:
            raise KafkaError(
                f"topics {created} created but without leaders after {TOPIC_READY_TIMEOUT:g}s"
            ) from None
        for spec in plan:
            print(f"{'created' if spec.name in created else 'exists '} {spec.name}", file=out)
        return 0
    missing, drifted = plan_drift(plan, await describe_topics(admin, [s.name for s in plan]))
    for name in missing:
        print(f"missing {name}", file=out)
    for found in drifted:
        print(f"drift   {found}", file=out)
    if missing or drifted:
        return EXIT_DRIFT
    print(f"ok: {len(plan)} topics as planned for {brokers} broker(s)", file=out)
    return 0


async def run_topics(settings: Settings, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Run the parsed ``topics`` action (see the module's exit statuses)."""
    brokers = getattr(args, "brokers", None)
    if brokers is not None:
        if brokers < 1:
            print("fonestorm-bridge: --brokers must be at least 1", file=err)
            return 2
        return _show(topic_plan(settings, brokers), args, out)
    admin = AIOKafkaAdminClient(**client_options(settings.kafka))
    try:
        await start_or_close(admin.start, admin.close)
        try:
            return await _act(settings, args, admin, out)
        finally:
            await admin.close()
    except KafkaError as exc:
        print(f"fonestorm-bridge: Kafka: {exc}", file=err)
        return EXIT_KAFKA


def cmd_topics(settings: Settings, args: argparse.Namespace) -> int:
    """``topics show|create|check``, from the command line."""
    return asyncio.run(run_topics(settings, args, sys.stdout, sys.stderr))
