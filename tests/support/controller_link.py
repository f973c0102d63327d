"""A TCP relay between a broker and its KRaft controller that a test cuts and mends.

With the link cut the broker still serves clients but cannot heartbeat, so after
``broker.session.timeout.ms`` the controller fences it: its metadata then names no live broker,
as a broker's does that has just started or was thawed after a long pause, only not for a few
milliseconds but for as long as the test wants. Mended, the broker registers again by itself.

The relay runs on an event loop of its own, in a thread: the broker's heartbeats must not wait
for the test's loop, nor stop while a fixture blocks it (a controlled shutdown goes through the
link too).
"""

from __future__ import annotations

import asyncio
import threading
from types import TracebackType


class ControllerLink:
    """Relays 127.0.0.1:``port`` to 127.0.0.1:``target``; cut, it closes every connection and
    refuses new ones until mended."""

    def __init__(self, port: int, target: int) -> None:
        self.port = port
        self._target = target
        self._cut = False
        self._pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._relays: set[asyncio.Task[None]] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

    def __enter__(self) -> ControllerLink:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._relay, "127.0.0.1", self.port), self._loop
        ).result()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def cut(self) -> None:
        """Close every relayed connection; refuse new ones until :meth:`mend`."""
        self._loop.call_soon_threadsafe(self._cut_now)

    def mend(self) -> None:
        """Relay again (thread-safe: a logging handler may call it)."""
        self._loop.call_soon_threadsafe(setattr, self, "_cut", False)

    def _cut_now(self) -> None:
        self._cut = True
        for pair in self._pairs:
            for writer in pair:
                writer.close()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._relays.add(task)
        task.add_done_callback(self._relays.discard)
        if self._cut:
            writer.close()
            return
        try:
            upstream_reader, upstream = await asyncio.open_connection("127.0.0.1", self._target)
        except OSError:
            writer.close()
            return
        pair = (writer, upstream)
        self._pairs.add(pair)
        try:
            await asyncio.gather(_pipe(reader, upstream), _pipe(upstream_reader, writer))
        finally:
            self._pairs.discard(pair)

    async def _close(self) -> None:
        self._cut_now()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        await asyncio.gather(*self._relays, return_exceptions=True)


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    try:
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
    except (OSError, asyncio.IncompleteReadError):
        pass  # cut, or the other side went away
    finally:
        sink.close()
