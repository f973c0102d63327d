"""The ``fonestorm-bridge`` console script: stop signals noted first, then the command line.

It imports nothing of the bridge but :mod:`bridge.stop_signals` before installing its handlers:
the command line's imports are the longest part of start-up, and a SIGTERM to PID 1 meanwhile
would otherwise be discarded (see that module).
"""

from __future__ import annotations

from bridge import stop_signals


def main() -> int:
    """Entry point of the ``fonestorm-bridge`` console script."""
    stop_signals.install()
    # Imported only now, on purpose: see the module's docstring.
    from bridge.cli import main as run_command  # noqa: PLC0415

    return run_command()
