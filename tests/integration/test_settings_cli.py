"""A malformed setting stops the real ``fonestorm-bridge`` process with one line naming it."""

from __future__ import annotations

import asyncio
import os
import sys

import pytest

pytestmark = pytest.mark.integration


async def _cli(*args: str, **env: str) -> tuple[int, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bridge.cli", *args,
        env={**clean, "BRIDGE_CALLBACKS__ALLOW_UNAUTHENTICATED": "true", **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, err.decode()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("BRIDGE_CALLBACKS__ALLOWED_NETWORKS", "10.0.0.0/33"),
        ("BRIDGE_HTTP__TRUSTED_PROXIES", "[10.0.0.0/8"),
        ("BRIDGE_WORKER__DENIED_DESTINATIONS", '["+1900", '),
    ],
)
async def test_a_malformed_list_setting_is_one_line_naming_it(name: str, value: str) -> None:
    code, err = await _cli("receiver", **{name: value})
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"fonestorm-bridge: {name}: ")
    assert "comma-separated" in lines[0]
    assert "Traceback" not in err
