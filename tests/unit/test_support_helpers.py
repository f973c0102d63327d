"""Helpers of the test suite itself that decide something."""

from __future__ import annotations

import os
import subprocess

from tests.support.leftovers import running_children


def test_a_child_left_running_is_named_until_it_is_reaped() -> None:
    child = subprocess.Popen(["sleep", "30"])
    try:
        assert (child.pid, "sleep 30") in running_children(os.getpid())
    finally:
        child.kill()
        child.wait()
    assert child.pid not in dict(running_children(os.getpid()))
