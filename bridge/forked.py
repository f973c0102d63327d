"""``--workers N``: N forked processes serving one port, and the parent that watches them.

The parent forks the processes and then only watches. It stops them as one process stops:

* a stop signal (SIGTERM, SIGINT) is passed on to every process as SIGTERM, each stops
  gracefully, and the parent exits 0 once they all have;
* a stop signal while it is still forking ends the forking: the processes forked so far are
  stopped as above, no more are forked, and the status is 0 as for a single process whose
  start-up a signal cut short (:mod:`bridge.stop_signals` gives the status of a signal before
  anything started: the command line exits so before the first fork);
* a process that exits before any stop was asked for (it crashed, failed to start, or was
  killed) leaves the others serving short-handed: the parent logs which one and how, stops the
  others and exits 1, so that whatever restarts the bridge restarts all of it.

The parent keeps the stop signals and SIGCHLD blocked and takes them with ``sigwaitinfo``, so
that no handler runs half-way through a fork or the bookkeeping of who is still running. A
signal that comes while a process is being forked is taken right after the fork, and that
process is stopped with the others.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from collections.abc import Callable
from typing import NoReturn

from bridge.stop_signals import STOP_SIGNALS, exit_status, forget, received

log = logging.getLogger(__name__)


def how_it_ended(code: int) -> str:
    """A process's end in words, from its exit code as ``os.waitstatus_to_exitcode`` gives it
    (negative: the signal that killed it)."""
    if code < 0:
        return f"was killed by {_signal_name(-code) or f'signal {-code}'}"
    # 128 + N: how the bridge leaves when signal N comes before its start-up.
    if code > 128 and (name := _signal_name(code - 128)) is not None:
        return f"exited with status {code} ({name})"
    return f"exited with status {code}"


def _signal_name(signum: int) -> str | None:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return None


def stopped_cleanly(code: int, *, stopping: bool) -> bool:
    """Whether a forked process that exited with ``code`` did what was asked of it.

    Only a stop makes an exit clean: before one, any exit leaves the others short-handed. Once
    the stop is asked for, a graceful stop (0) is clean, and so is the stop-signal status of a
    process the signal reached before its own start-up (it started nothing to stop).
    """
    if not stopping:
        return False
    return code == 0 or code in {exit_status(signum) for signum in STOP_SIGNALS}


def run_forked(count: int, serve: Callable[[], int], port: int) -> int:
    """Run ``serve()`` in ``count`` forked processes; the exit status of the whole (above)."""
    # A stop signal inherited as ignored stays so (a blocked signal would be queued instead).
    stops = {signum for signum in STOP_SIGNALS if signal.getsignal(signum) is not signal.SIG_IGN}
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {*stops, signal.SIGCHLD})
    try:
        children: dict[int, int] = {}  # pid -> its number, from 1
        for number in range(1, count + 1):
            if _stop_asked(stops) is not None:
                break
            pid = os.fork()
            if pid == 0:
                _child(serve, mask)
            children[pid] = number
        stop = _stop_asked(stops)
        if stop is not None and not children:
            log.info("%s before start-up: not starting", signal.Signals(stop).name)
            return exit_status(stop)
        if stop is None:
            log.info("started %d processes %s on port %d", count, list(children), port)
        else:
            log.info(
                "%s while starting processes: %d of %d started, stopping them",
                signal.Signals(stop).name,
                len(children),
                count,
            )
            _stop(children)
        return _watch(children, stops, stopping=stop is not None)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def _stop_asked(stops: set[signal.Signals]) -> int | None:
    # Noted by the handler before the signals were blocked, or pending since.
    if (noted := received()) is not None:
        return noted
    pending = signal.sigpending()
    return next((int(signum) for signum in STOP_SIGNALS if signum in stops & pending), None)


def _child(serve: Callable[[], int], mask: set[int | signal.Signals]) -> NoReturn:
    code = 1
    try:
        # A signal the parent noted is the parent's: it passes it on to this process, which
        # must not take it for one of its own. Forgotten before the signals are unblocked, so a
        # SIGTERM passed on already is noted afresh.
        forget()
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        code = serve()
    except BaseException:
        log.exception("worker process failed")
    finally:
        logging.shutdown()
        os._exit(code)


def _watch(children: dict[int, int], stops: set[signal.Signals], *, stopping: bool) -> int:
    running = dict(children)
    failed = False
    while running:
        signum = signal.sigwaitinfo({*stops, signal.SIGCHLD}).si_signo
        if signum != signal.SIGCHLD:
            if not stopping:
                log.info("%s: stopping the %d processes", signal.Signals(signum).name, len(running))
            stopping = True
            _stop(running)
            continue
        # One SIGCHLD may stand for several exits.
        for pid, code in _reap():
            number = running.pop(pid, None)
            if number is None:
                continue  # an orphan adopted as PID 1 of a container
            if stopped_cleanly(code, stopping=stopping):
                before = "" if code == 0 else " before its start-up"
                log.info("process %d (pid %d) stopped%s", number, pid, before)
                continue
            failed = True
            if stopping:
                log.error("process %d (pid %d) %s while stopping", number, pid, how_it_ended(code))
                continue
            log.error(
                "process %d (pid %d) %s: stopping the other %d",
                number,
                pid,
                how_it_ended(code),
                len(running),
            )
            stopping = True
            _stop(running)
    return 1 if failed else 0


def _reap() -> list[tuple[int, int]]:
    ended: list[tuple[int, int]] = []
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return ended
        if pid == 0:
            return ended
        ended.append((pid, os.waitstatus_to_exitcode(status)))


def _stop(running: dict[int, int]) -> None:
    for pid in running:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
