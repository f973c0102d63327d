"""Child processes of the test process still running when the session ends, named.

A child left running is a test that did not stop what it started (Python then warns
"subprocess N is still running" as the interpreter exits, without saying which). The terminal
summary lists each with its command line, so the log names the test's process, and every
``Popen`` whose exit was never seen (an exited child nobody waited for makes the same warning).
"""

from __future__ import annotations

import atexit
import gc
import os
import subprocess
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


def unwaited_popens() -> list[tuple[int, str, bool]]:
    """``(pid, arguments, exited)`` of every ``Popen`` alive whose exit nobody has seen yet
    (Python warns about each as it is collected); each is polled, which reaps an exited one."""
    found = []
    for thing in gc.get_objects():
        if isinstance(thing, subprocess.Popen) and thing.returncode is None:
            exited = thing.poll() is not None
            found.append((thing.pid, str(thing.args)[:300], exited))
    return sorted(found)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Name the children left running and the processes nobody waited for (none on a clean
    run)."""
    for pid, command in running_children(os.getpid()):
        terminalreporter.write_line(f"child process still running at the end: {pid} {command}")
    for pid, args, exited in unwaited_popens():
        state = "exited, never waited for" if exited else "still running"
        terminalreporter.write_line(f"Popen {state} at the end: {pid} {args}")


def _at_exit() -> None:
    for pid, command in running_children(os.getpid()):
        print(f"child process still running at exit: {pid} {command}", file=sys.stderr)
    for pid, args, exited in unwaited_popens():
        state = "exited, never waited for" if exited else "still running"
        print(f"Popen {state} at exit: {pid} {args}", file=sys.stderr)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Name, on stderr, the children still running as the interpreter exits (after pytest)."""
    atexit.register(_at_exit)
