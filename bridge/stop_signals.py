"""SIGTERM and SIGINT before the event loop takes them over: noted, so that none is lost.

In a container the bridge is PID 1 (the image's entry point is the bridge itself, no init), and
the kernel discards a signal sent to the init process of a PID namespace while that signal has
its default disposition. Left so until asyncio installs its handlers, after the imports, a
SIGTERM that comes early (a pod deleted just after it started) would be lost: the process would
go on to serve and place calls until the kubelet's SIGKILL. So the console script
(:mod:`bridge.entry`) calls :func:`install` before importing anything else; the command line
asks :func:`received` before it starts anything and then exits with :func:`exit_status`, and
the server asks again once the event loop's handlers are in place, so that a signal noted in
between is not lost either.

The interpreter's own start-up, before any code of the bridge runs, is the one moment left
when a signal to PID 1 is still discarded; only an init in front of the bridge (``docker run
--init``, a pod's shared process namespace) closes it.
"""

from __future__ import annotations

import signal
from types import FrameType

#: The signals that stop the bridge's services. SIGINT first: until then Python's own handler
#: raises KeyboardInterrupt, so once SIGTERM has the bridge's handler, both are noted.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

_installed: list[int] = []
_received: int | None = None


def install() -> None:
    """Note SIGTERM and SIGINT from now on, until the event loop's handlers replace these.

    A signal the process inherited as ignored stays ignored, as Python leaves SIGINT.
    """
    for signum in STOP_SIGNALS:
        if signal.getsignal(signum) is not signal.SIG_IGN:
            signal.signal(signum, _note)
            _installed.append(signum)


def _note(signum: int, frame: FrameType | None) -> None:
    # Only a flag: a handler runs between any two bytecodes, and an exception raised here
    # could land half-way through a fork, a logging call or the event loop's start.
    global _received  # noqa: PLW0603 - the one flag the handler may set
    if _received is None:
        _received = signum


def received() -> int | None:
    """The first stop signal noted since :func:`install`, or None."""
    return _received


def forget() -> None:
    """In a process just forked: drop the note the parent had made (the parent passes its
    stop on to its processes itself)."""
    global _received  # noqa: PLW0603 - see _note
    _received = None


def release() -> int | None:
    """Python's default handlers again (a tool's Ctrl-C raises KeyboardInterrupt); the stop
    signal noted meanwhile, or None."""
    while _installed:
        signum = _installed.pop()
        if signum == signal.SIGINT:
            signal.signal(signum, signal.default_int_handler)
        else:
            signal.signal(signum, signal.SIG_DFL)
    return _received


def exit_status(signum: int) -> int:
    """The status of a process a signal stopped, as shells report it: 128 + its number."""
    return 128 + signum
