"""Helpers of the test suite itself that decide something."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from tests.support.leftovers import running_children, unwaited_popens
from tools.local_kafka.process import reap_spawned, spawn_detached, terminate


def test_a_child_left_running_is_named_until_it_is_reaped() -> None:
    child = subprocess.Popen(["sleep", "30"])
    try:
        assert (child.pid, "sleep 30") in running_children(os.getpid())
    finally:
        child.kill()
        child.wait()
    assert child.pid not in dict(running_children(os.getpid()))


def test_a_broker_stopped_by_pid_leaves_no_popen_that_says_it_runs(tmp_path: Path) -> None:
    # Brokers are stopped by pid (from their pid file); the Popen that started one must learn
    # that its child is gone, or Python warns "subprocess N is still running" when it goes.
    child = spawn_detached(["sleep", "30"], tmp_path / "out.log", tmp_path)
    assert terminate(child.pid, grace=5) is False
    assert child.returncode is not None
    assert child.pid not in dict(running_children(os.getpid()))


def test_a_broker_stopped_by_another_process_is_reaped_at_exit(tmp_path: Path) -> None:
    # `local-kafka stop` runs in a process of its own: the child it kills stays a zombie of
    # the process that started it, whose Popen says it runs until someone polls it.
    child = spawn_detached(["sleep", "30"], tmp_path / "out.log", tmp_path)
    subprocess.run(["kill", str(child.pid)], check=True)
    while Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
        time.sleep(0.01)
    reap_spawned()
    assert child.returncode is not None


def test_a_popen_nobody_waited_for_is_named_and_reaped() -> None:
    child = subprocess.Popen(["true"])
    while Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
        time.sleep(0.01)
    assert (child.pid, "['true']", True) in unwaited_popens()
    assert child.returncode == 0
