"""Waiting until Kafka names a live broker, before a client relies on knowing one.

A broker serves requests a moment before Kafka counts it live: one that has just started, or
was paused (SIGSTOP, a frozen VM) for longer than ``broker.session.timeout.ms``, is *fenced* by
the controller until it registers again, and meanwhile its metadata responses list no broker
at all. aiokafka (0.14) ignores such a response, so a client that bootstrapped from one knows no
broker. Reads and writes cope (they wait for leaders and ask again), but an admin client sends
its requests to node ``None``, and the coordinator lookup that a transactional producer's
``start()`` and a group consumer's first join begin with picks a known broker at random, and
with none fails ``assert node_id is not None, "Did we not perform bootstrap?"``
(``AIOKafkaClient.coordinator_lookup``): a traceback out of ``dead-letters replay``, and in a
worker a group coordination that has died for good.

:func:`wait_for_live_broker` asks again until the client's metadata names a broker: through
the bootstrap connection aiokafka keeps while it knows none, or, that connection gone (the
broker restarted meanwhile), by bootstrapping again. :func:`until_live` is its loop, for any
question whose answer must name a live broker.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiokafka.client import AIOKafkaClient, ConnectionGroup
from aiokafka.errors import KafkaError

from bridge.kafka.starting import start_or_close
from bridge.retrying import backoff_delays

log = logging.getLogger(__name__)

#: Where aiokafka keeps its bootstrap connection while the metadata names no broker.
_BOOTSTRAP = ("bootstrap", ConnectionGroup.DEFAULT)

#: Why a broker that answers may still be no live broker, for the messages.
FENCED = (
    "a broker that has just started, or was paused, is fenced until it registers with the "
    "controller again"
)


class NoLiveBrokerError(KafkaError):  # type: ignore[misc]
    """Kafka named no live broker within the time allowed."""

    retriable = True

    def __str__(self) -> str:
        # The message is a sentence of its own, without aiokafka's class-name prefix.
        return str(self.args[0]) if self.args else "Kafka named no live broker"


async def wait_for_live_broker(client: AIOKafkaClient, *, within: float | None, what: str) -> None:
    """Return once ``client``'s metadata names a broker: at once when it does already.

    ``client`` has bootstrapped (its consumer, producer or admin client started, or
    ``client.bootstrap()``). Raises :class:`NoLiveBrokerError` after ``within`` seconds
    (``None``: waits for ever).
    """
    if client.cluster.brokers():
        return

    async def named() -> bool:
        await _ask_again(client)
        return bool(client.cluster.brokers())

    await until_live(named, within=within, what=what)


async def until_live(
    ask: Callable[[], Awaitable[bool]], *, within: float | None, what: str
) -> None:
    """Await ``ask()`` until it is true (its answer named a live broker), backing off in
    between, and say once meanwhile that Kafka names none.

    Raises :class:`NoLiveBrokerError`, saying ``what`` was being done, once ``within`` seconds
    have passed (``None``: never); an ``ask()`` under way is not cut short, as it is bounded by
    the client's own request timeout and leaves its connection clean only when it ends.
    """
    loop = asyncio.get_running_loop()
    deadline = None if within is None else loop.time() + within
    delays = backoff_delays(0.05, 1.0)
    failure: KafkaError | None = None
    waited = False
    while True:
        try:
            if await ask():
                break
        except KafkaError as exc:
            failure = exc
        left = None if deadline is None else deadline - loop.time()
        if left is not None and left <= 0:
            why = f"no broker answered, or {FENCED}"
            if failure is not None:
                why += f"; last error: {failure}"
            after = f" within {within:g}s" if within else ""
            raise NoLiveBrokerError(f"{what}: Kafka named no live broker{after} ({why})")
        if not waited:
            log.warning("%s: Kafka names no live broker (%s); waiting for one", what, FENCED)
            waited = True
        await asyncio.sleep(next(delays) if left is None else min(next(delays), left))
    if waited:
        log.info("%s: Kafka names a live broker again", what)


async def _ask_again(client: AIOKafkaClient) -> None:
    conn = client._conns.get(_BOOTSTRAP)
    if conn is not None and conn.connected():
        await client.force_metadata_update()
        return
    # bootstrap() stores its connection at _BOOTSTRAP only while no broker is known, so a
    # dead one is all it replaces. Not cancelled half-way: that would leak its connection.
    await start_or_close(client.bootstrap, _nothing, close_on_error=False)


async def _nothing() -> None:
    """Nothing to close: the connection is the client's, which its owner closes."""
