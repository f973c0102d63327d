"""Stopping background tasks for certain, even inside libraries that lose a cancellation.

On Python 3.11 ``asyncio.wait_for`` swallows a cancellation that arrives just as the awaited
future completes (fixed in 3.12), and aiokafka awaits its broker requests with ``wait_for``. A
task cancelled once at that moment goes on running; cancelled during start-up, the command
worker then consumed for ever after shutdown (seen in the integration tests). So every stop
cancels until the task is done.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger(__name__)

#: Seconds between repeated cancellations of a task that is not done yet.
RECANCEL_INTERVAL = 0.5


async def cancel_and_wait(task: asyncio.Task[Any], *, interval: float = RECANCEL_INTERVAL) -> None:
    """Cancel ``task`` (again every ``interval`` s if a cancellation is lost) until it is done.

    ``asyncio.wait``, not ``await task``: the caller's own cancellation still propagates.
    """
    task.cancel()
    await asyncio.wait([task], timeout=interval)
    while not task.done():
        log.warning(
            "task %s is still running after a cancellation; cancelling again", task.get_name()
        )
        task.cancel()
        await asyncio.wait([task], timeout=interval)
