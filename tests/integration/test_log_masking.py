"""The real ``fonestorm-bridge`` process logs phone numbers masked, unless told otherwise."""

from __future__ import annotations

import asyncio
import os
import sys

import pytest

pytestmark = pytest.mark.integration

FONENUMBER = "3215551081"


async def _startup_line(**env: str) -> str:
    """The receiver's "starting ... with settings" line (it lists our FoneNumbers)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bridge.cli", "receiver",
        env={
            **clean,
            "BRIDGE_CALLBACKS__ALLOW_UNAUTHENTICATED": "true",
            "BRIDGE_HTTP__HOST": "127.0.0.1",
            "BRIDGE_HTTP__PORT": "0",
            "BRIDGE_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:1",  # nothing listens: never ready
            "BRIDGE_FONESTORM__FONENUMBERS": f"{FONENUMBER},+442079460958",
            **env,
        },
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stderr is not None
    try:
        while line := (await proc.stderr.readline()).decode():
            if "with settings" in line:
                return line
        raise AssertionError("the receiver exited without its start-up line")
    finally:
        proc.terminate()
        await proc.wait()


async def test_phone_numbers_are_masked_by_default() -> None:
    line = await _startup_line()
    assert FONENUMBER not in line
    assert '\\"fonenumbers\\":[\\"******1081\\",\\"+********0958\\"]' in line


async def test_full_phone_numbers_when_asked() -> None:
    line = await _startup_line(BRIDGE_LOG__FULL_PHONE_NUMBERS="true")
    assert f'\\"fonenumbers\\":[\\"{FONENUMBER}\\",\\"+442079460958\\"]' in line
