"""Child processes of the test process still running when the session ends, named.

A child left running is a test that did not stop what it started (Python then warns
"subprocess N is still running" as the interpreter exits, without saying which). The terminal
summary lists each with its command line, so the log names the test's process.
"""

from __future__ import annotations

import atexit
import os
import sys
from pathlib import Path

import pytest


def running_children(parent: int) -> list[tuple[int, str]]:
    """``(pid, command line)`` of the live (not zombie) children of ``parent`` (Linux)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError):
            continue  # gone meanwhile
        state, ppid = fields[0], int(fields[1])
        if ppid == parent and state != "Z":
            command = cmdline.replace(b"\0", b" ").decode(errors="replace").strip()
            found.append((int(stat.parent.name), command[:300]))
    return sorted(found)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Name the children left running (none on a clean run)."""
    for pid, command in running_children(os.getpid()):
        terminalreporter.write_line(f"child process still running at the end: {pid} {command}")


def _at_exit() -> None:
    for pid, command in running_children(os.getpid()):
        print(f"child process still running at exit: {pid} {command}", file=sys.stderr)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Name, on stderr, the children still running as the interpreter exits (after pytest)."""
    atexit.register(_at_exit)
