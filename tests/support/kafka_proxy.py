"""A TCP proxy in front of a real Kafka broker that holds the broker's answer to one request.

To force an interleaving: the first request of a given API key (3: Metadata) that passes
through marks its connection, and nothing more goes back on that connection until
:meth:`HoldingProxy.release`. The proxy also counts the client connections still open, so a
test can assert that a client closed every connection it opened.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from types import TracebackType

METADATA = 3


class HoldingProxy:
    """Forwards to ``upstream`` (``host:port``); holds answers after a ``hold_api_key`` request."""

    def __init__(self, upstream: str, hold_api_key: int = METADATA) -> None:
        host, port = upstream.split(",", maxsplit=1)[0].rsplit(":", 1)
        self._upstream = (host, int(port))
        self._hold_api_key = hold_api_key
        self.held = asyncio.Event()
        self._released = asyncio.Event()
        self._open = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def address(self) -> str:
        assert self._server is not None
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"{host}:{port}"

    @property
    def open_connections(self) -> int:
        """Client connections the client has not closed yet."""
        return self._open

    def release(self) -> None:
        """Let the held answer (and everything after it) through."""
        self._released.set()

    async def until_closed(self, timeout: float) -> None:
        """Until every client connection is closed; ``TimeoutError`` naming how many are not."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._open:
            if loop.time() > deadline:
                raise TimeoutError(f"{self._open} client connection(s) still open")
            await asyncio.sleep(0.05)

    async def __aenter__(self) -> HoldingProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self._open += 1
        holding = asyncio.Event()
        try:
            broker_r, broker_w = await asyncio.open_connection(*self._upstream)
            answers = asyncio.create_task(self._answers(broker_r, client_w, holding))
            self._tasks.add(answers)
            try:
                await self._requests(client_r, broker_w, holding)
            finally:
                answers.cancel()
                await asyncio.gather(answers, return_exceptions=True)
                self._tasks.discard(answers)
                broker_w.close()
        finally:
            self._open -= 1
            client_w.close()

    async def _requests(
        self, client: asyncio.StreamReader, broker: asyncio.StreamWriter, holding: asyncio.Event
    ) -> None:
        """Client to broker, request by request (size-prefixed), until the client closes."""
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                size = await client.readexactly(4)
                body = await client.readexactly(struct.unpack(">i", size)[0])
                (api_key,) = struct.unpack(">h", body[:2])
                if api_key == self._hold_api_key and not self.held.is_set():
                    holding.set()
                    self.held.set()
                broker.write(size + body)
                await broker.drain()

    async def _answers(
        self, broker: asyncio.StreamReader, client: asyncio.StreamWriter, holding: asyncio.Event
    ) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await broker.read(65536):
                if holding.is_set():
                    await self._released.wait()
                client.write(data)
                await client.drain()
