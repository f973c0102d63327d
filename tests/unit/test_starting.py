"""``start_or_close``: what happens to a client whose start fails or is cancelled."""

from __future__ import annotations

import asyncio

import pytest

from bridge.kafka.starting import start_or_close


class Client:
    def __init__(self, start_takes: float = 0.0, fails: bool = False) -> None:
        self.start_takes, self.fails = start_takes, fails
        self.started = self.closed = self.start_cancelled = False

    async def start(self) -> None:
        try:
            await asyncio.sleep(self.start_takes)
        except asyncio.CancelledError:
            self.start_cancelled = True
            raise
        if self.fails:
            raise ConnectionError("refused")
        self.started = True

    async def close(self) -> None:
        await asyncio.sleep(0.01)
        self.closed = True


async def test_a_start_that_succeeds_is_left_open() -> None:
    client = Client()
    await start_or_close(client.start, client.close)
    assert (client.started, client.closed) == (True, False)


@pytest.mark.parametrize(("close_on_error", "closed"), [(True, True), (False, False)])
async def test_a_failed_start_closes_unless_told_not_to(close_on_error: bool, closed: bool) -> None:
    client = Client(fails=True)
    with pytest.raises(ConnectionError):
        await start_or_close(client.start, client.close, close_on_error=close_on_error)
    assert client.closed is closed


@pytest.mark.parametrize("close_on_error", [True, False])
async def test_a_cancelled_start_finishes_then_closes(close_on_error: bool) -> None:
    client = Client(start_takes=0.2)
    task = asyncio.create_task(
        start_or_close(client.start, client.close, close_on_error=close_on_error)
    )
    await asyncio.sleep(0.05)
    task.cancel()
    await asyncio.sleep(0.05)
    task.cancel()  # cancelled again while closing (as tasks.cancel_and_wait does): still closes
    await asyncio.wait([task])
    assert task.cancelled()
    assert (client.started, client.start_cancelled, client.closed) == (True, False, True)


async def test_a_cancelled_start_that_hangs_is_cancelled_after_the_grace() -> None:
    client = Client(start_takes=60)
    task = asyncio.create_task(start_or_close(client.start, client.close, grace=0.1))
    await asyncio.sleep(0.05)
    task.cancel()
    await asyncio.wait([task], timeout=5)
    assert task.cancelled()
    assert (client.start_cancelled, client.closed) == (True, True)
