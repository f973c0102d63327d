"""The bridge as PID 1 of a PID namespace of its own, as in a container with no init.

``unshare --user --map-root-user --pid --fork --mount-proc`` needs no root where unprivileged
user namespaces are allowed. The process it forks is the init of the new namespace, so the
kernel discards every signal sent to it whose disposition is still the default one, as in a
container whose entry point is the bridge itself. From here it has an ordinary PID, and its
``/proc`` entries show what it catches and what it has loaded.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import shutil
import signal
import subprocess
import sys
import tomllib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.paths import REPO_ROOT

UNSHARE = ["unshare", "--user", "--map-root-user", "--pid", "--fork", "--mount-proc"]


@functools.cache
def unavailable() -> str | None:
    """Why no process can be run as PID 1 of a new PID namespace here, or None."""
    if shutil.which("unshare") is None:
        return "unshare (util-linux) is not installed"
    try:
        done = subprocess.run([*UNSHARE, "true"], capture_output=True, timeout=30, check=False)
    except subprocess.TimeoutExpired:
        return "unshare did not finish"
    if done.returncode != 0:
        why = done.stderr.decode(errors="replace").strip()
        return f"unshare cannot make a user and PID namespace here (no root needed): {why}"
    return None


def console_script(name: str = "fonestorm-bridge") -> list[str]:
    """The command that runs console script ``name`` as an install of this checkout would.

    Its ``module:function`` read from pyproject.toml and run as the script pip writes runs it,
    rather than the installed script, which an install older than the entry point may have
    left pointing elsewhere.
    """
    with (REPO_ROOT / "pyproject.toml").open("rb") as file:
        target = tomllib.load(file)["project"]["scripts"][name]
    module, function = target.split(":")
    code = f"import sys\nfrom {module} import {function}\nsys.exit({function}())"
    return [sys.executable, "-c", code]


@dataclass
class Pid1:
    """A process running as PID 1 of its namespace, seen from outside it."""

    #: The ``unshare`` that waits for it; its exit status is the process's.
    unshare: asyncio.subprocess.Process
    #: Its PID here (1 in its own namespace).
    pid: int

    def send(self, signum: int) -> None:
        """Send ``signum`` from here, as the kubelet's runtime does."""
        os.kill(self.pid, signum)

    def catches(self, signum: int) -> bool:
        """Whether it has a handler for ``signum`` (the kernel delivers it then)."""
        for line in self._proc("status").splitlines():
            if line.startswith("SigCgt:"):
                return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
        return False

    def imports_packages(self) -> bool:
        """Whether its imports have reached the installed packages (a compiled module of
        site-packages is mapped): the long part of the bridge's start-up."""
        return any(
            "site-packages" in line and ".so" in line for line in self._proc("maps").splitlines()
        )

    async def wait(self) -> int:
        """Its exit status."""
        return await self.unshare.wait()

    def _proc(self, name: str) -> str:
        try:
            return Path(f"/proc/{self.pid}/{name}").read_text()
        except (FileNotFoundError, ProcessLookupError):
            return ""  # it has exited


@asynccontextmanager
async def as_pid1(argv: Sequence[str], env: dict[str, str], log_path: Path) -> AsyncIterator[Pid1]:
    """``argv`` as PID 1 of a new PID namespace, output appended to ``log_path``, from the
    moment it is forked (before its exec); SIGKILLed on the way out, which ends the namespace."""
    with log_path.open("ab") as log_file:
        unshare = await asyncio.create_subprocess_exec(
            *UNSHARE, *argv, env={**os.environ, **env}, stdout=log_file, stderr=log_file
        )
    pids: list[str] = []
    try:
        while not (pids := _children(unshare.pid)):
            assert unshare.returncode is None, "unshare exited before it forked"
            await asyncio.sleep(0.001)
        yield Pid1(unshare, int(pids[0]))
    finally:
        if unshare.returncode is None:
            if pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pids[0]), signal.SIGKILL)
            try:
                await asyncio.wait_for(unshare.wait(), 30)
            except TimeoutError:
                unshare.kill()
                await unshare.wait()


def _children(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
