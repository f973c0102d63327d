"""One-shot operations against FoneStorm and Kafka: registering callbacks, producing a command."""

from __future__ import annotations

import logging

from bridge.contracts.base import utcnow
from bridge.contracts.commands import PlaceCallCommand
from bridge.fonestorm.client import FoneStormClient, new_session
from bridge.fonestorm.templates import build_get_template
from bridge.kafka.publisher import Publisher
from bridge.obs.metrics import Metrics
from bridge.settings import Settings, receiver_auth_problem

log = logging.getLogger(__name__)


def callback_url(settings: Settings) -> str:
    """The URL to register: the public URL, as a token template for the GET method."""
    url = settings.fonestorm.public_url
    if not url:
        raise ValueError("BRIDGE_FONESTORM__PUBLIC_URL is not set")
    return build_get_template(url) if settings.fonestorm.callback_method == "GET" else url


async def register_callbacks(settings: Settings) -> None:
    """Set send-notify (outbound) and receive-notify (inbound) of every configured FoneNumber."""
    if not settings.fonestorm.fonenumbers:
        raise ValueError("BRIDGE_FONESTORM__FONENUMBERS is empty")
    problem = receiver_auth_problem(settings)
    if problem is not None:
        # FoneStorm would send callbacks without credentials, and the receiver refuses those:
        # every call's events would be lost once FoneStorm gives up retrying.
        raise ValueError(f"not registering callbacks: {problem}")
    url = callback_url(settings)
    method = settings.fonestorm.callback_method
    auth = settings.callbacks
    async with new_session() as session:
        client = FoneStormClient(session, settings.fonestorm)
        for number in settings.fonestorm.fonenumbers:
            for register in (client.set_send_notify, client.set_receive_notify):
                await register(number, url, method, auth.username, auth.password)
            log.info("registered %s callbacks of %s at %s", method, number, url)


async def produce_command(settings: Settings, command: PlaceCallCommand) -> None:
    """Produce ``command`` to the place-call topic, keyed by its id."""
    publisher = Publisher(settings.kafka, Metrics())
    await publisher.start()
    try:
        await publisher.wait_ready(timeout=10.0)
        await publisher.publish_event(
            settings.topics.place_call, command, source="/fonestorm-bridge/cli"
        )
        log.info("produced command %s at %s", command.command_id, utcnow().isoformat())
    finally:
        await publisher.stop()
