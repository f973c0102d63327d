"""Helpers of the test suite itself that decide something."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.support import ports
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


class _Offered:
    """Sockets whose bind to port 0 gets the ports ``offers`` names, in turn."""

    def __init__(self, offers: list[int]) -> None:
        self.offers = offers

    def __call__(self) -> Any:
        offered = self

        class Socket:
            def bind(self, address: tuple[str, int]) -> None:
                self.port = offered.offers.pop(0)

            def getsockname(self) -> tuple[str, int]:
                return ("127.0.0.1", self.port)

            def close(self) -> None:
                pass

            def __enter__(self) -> Any:
                return self

            def __exit__(self, *exc: object) -> None:
                pass

        return Socket()


def test_a_port_handed_out_is_not_handed_out_again(monkeypatch: pytest.MonkeyPatch) -> None:
    # The OS offers a port again once its probe socket is closed, before the caller bound it:
    # a receiver and its admin port, or Jaeger's three, would then get one port twice.
    monkeypatch.setattr(ports, "_handed_out", set(), raising=False)
    offers = _Offered([40001, 40001, 40003, 40001, 40003, 40005])
    monkeypatch.setattr(ports, "socket", SimpleNamespace(socket=offers))
    assert ports.free_port() == 40001
    assert ports.free_port() == 40003
    assert ports.free_ports(1) == [40005]
