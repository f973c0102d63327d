"""Raw HTTP against a real receiver process: its ports and topics, answers read off the wire,
and what it dead-lettered."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bridge.contracts.dead_letters import DeadLetter
from bridge.dead_letters.decision import decide
from tests.support.dead_letters import replay_context
from tests.support.kafka_broker import NewTopicFactory
from tests.support.kafka_records import consume_all
from tests.support.ports import free_port
from tests.support.processes import receiver_process

#: Far longer than the test's pytest timeout (120 s): an answer that waits for the body timeout
#: fails the test instead of arriving late.
BODY_TIMEOUT = 600


@dataclass
class Receiver:
    """A receiver process: its callback and admin ports, and its topics."""

    bootstrap: str
    port: int
    admin_port: int
    events: str
    dead_letters: str

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"


@dataclass
class Answer:
    """An HTTP answer as it came: status line, headers (names in lower case), body."""

    status_line: bytes
    headers: dict[str, str]
    body: bytes

    @property
    def status(self) -> int:
        """The status code."""
        return int(self.status_line.split()[1])

    def error(self) -> dict[str, Any]:
        """The JSON error of the answer, checked for the one shape and its content type."""
        assert self.headers.get("content-type", "").startswith("application/json"), self
        data = json.loads(self.body)
        assert set(data) == {"error"}, data
        assert set(data["error"]) == {"code", "message"}, data
        assert data["error"]["message"], data
        return data["error"]  # type: ignore[no-any-return]


@asynccontextmanager
async def start_receiver(
    kafka_bootstrap: str,
    new_topic: NewTopicFactory,
    tmp_path: Path,
    *,
    extensions: bool,
    env: dict[str, str] | None = None,
) -> AsyncIterator[Receiver]:
    """A receiver process with fresh topics and an admin port, running aiohttp's C parser
    (``extensions``) or its pure-Python one; ``env`` adds settings."""
    receiver = Receiver(
        bootstrap=kafka_bootstrap,
        port=0,
        admin_port=free_port(),
        events=await new_topic("events"),
        dead_letters=await new_topic("dlq"),
    )
    env = (env or {}) | {
        "BRIDGE_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
        "BRIDGE_TOPICS__CALL_EVENTS": receiver.events,
        "BRIDGE_TOPICS__DEAD_LETTERS": receiver.dead_letters,
        "BRIDGE_HTTP__BODY_TIMEOUT": str(BODY_TIMEOUT),
        # aiohttp's parser in C (as in the image) or in pure Python (AIOHTTP_NO_EXTENSIONS).
        "AIOHTTP_NO_EXTENSIONS": "" if extensions else "1",
    }
    log_path = tmp_path / "receiver.log"
    async with receiver_process(env, log_path, admin_port=receiver.admin_port) as (_, url):
        receiver.port = int(url.rsplit(":", 1)[1])
        yield receiver


def parse(data: bytes) -> Answer:
    """The answer in ``data`` (its body: all that follows the head)."""
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.split(b"\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return Answer(status_line, headers, body)


async def read_answer(reader: asyncio.StreamReader) -> Answer:
    """One answer off a connection that may carry more: its head, and its body by length."""
    answer = parse(await reader.readuntil(b"\r\n\r\n"))
    answer.body = await reader.readexactly(int(answer.headers.get("content-length", "0")))
    return answer


async def exchange(port: int, *parts: bytes, continued: bool = False) -> Answer:
    """Send ``parts`` on a new connection, and the answer read to the server's close.

    ``continued``: the first part is a head with ``Expect: 100-continue``; the rest is sent
    once the server says to go on, that is once a handler is reading the body.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        first, *rest = parts
        writer.write(first)
        await writer.drain()
        if continued:
            assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 100 ")
        for part in rest:
            writer.write(part)
            await writer.drain()
        # To EOF: each answer here ends its connection (the requests ask for it otherwise).
        return parse(await reader.read())
    finally:
        writer.close()


async def letters_by_request_id(receiver: Receiver, *, expected: int) -> dict[str, Any]:
    """The dead letters written (``expected`` of them), by the ``X-Request-Id`` of each."""
    records = await consume_all(receiver.bootstrap, receiver.dead_letters, expected=expected)
    letters = {}
    for record in records:
        letter = json.loads(record.value)
        # Header names as the parser spelled them (the C parser's for the headers it knows).
        headers = {name.lower(): value for name, value in letter["request"]["headers"].items()}
        letters[headers["x-request-id"]] = letter
    return letters


def replay_refusal(letter: dict[str, Any]) -> tuple[str, str | None]:
    """What ``dead-letters replay`` decides for ``letter`` (signed, fresh): its reason code
    and reason when it refuses it."""
    decision = decide(
        DeadLetter.model_validate(letter),
        None,
        replay_context(datetime.now(UTC), timedelta(days=6)),
        integrity="signed",
    )
    assert decision.outcome == "still_invalid", decision
    assert decision.reason_code is not None
    return decision.reason_code, decision.reason
