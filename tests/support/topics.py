"""Driving `fonestorm-bridge topics` in tests."""

from __future__ import annotations

import asyncio
import io

from bridge.cli import build_parser
from bridge.kafka.topics_cli import run_topics
from bridge.settings import Settings


async def topics_tool(settings: Settings, *argv: str) -> tuple[int, str, str]:
    """Run `fonestorm-bridge topics ARGV` in this event loop: status, stdout, stderr."""
    args = build_parser().parse_args(["topics", *argv])
    out, err = io.StringIO(), io.StringIO()
    code = await run_topics(settings, args, out, err)
    return code, out.getvalue(), err.getvalue()


async def check_settles(settings: Settings, expected: str) -> tuple[int, str, str]:
    """`topics check` once its report is ``expected``, or its last report after 30 s.

    Each broker learns of a new topic or config a moment after the request that made it
    returns, and `check` asks any one of them.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while True:
        code, out, err = await topics_tool(settings, "check")
        if out == expected or loop.time() > deadline:
            return code, out, err
        await asyncio.sleep(0.1)
