"""Registering callbacks at start-up is the command worker's job: the internet-facing receiver
never calls FoneStorm, so it runs without the API token."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from bridge.app import create_app
from bridge.settings import Settings
from tests.support.kafka_broker import NewTopicFactory
from tests.support.sandbox import OURS, TOKEN, Sandbox
from tests.support.servers import serve

pytestmark = pytest.mark.integration

ROLES = {"receiver": (True, False), "worker": (False, True), "serve": (True, True)}


@pytest.fixture
async def runners() -> AsyncIterator[list[web.AppRunner]]:
    started: list[web.AppRunner] = []
    yield started
    for runner in started:
        await runner.cleanup()


async def _settings(
    kafka_bootstrap: str, new_topic: NewTopicFactory, sandbox: Sandbox, token: str | None
) -> Settings:
    fonestorm: dict[str, Any] = {
        "base_url": f"{sandbox.url}/v2",
        "fonenumbers": [OURS],
        "public_url": "https://bridge.example.com/callbacks/calls",
        "register_on_start": True,
    }
    if token is not None:
        fonestorm["token"] = token
    place_call = await new_topic("commands")
    return Settings.model_validate(
        {
            "kafka": {"bootstrap_servers": kafka_bootstrap, "produce_timeout": 5.0},
            "topics": {
                "call_events": await new_topic("events"),
                "dead_letters": await new_topic("dlq"),
                "place_call": place_call,
                "place_call_results": await new_topic("results"),
                "command_ledger": await new_topic("ledger"),
            },
            "http": {"host": "127.0.0.1", "port": 0},
            "callbacks": {"username": "fonestorm", "password": "cb-s3cret"},
            "fonestorm": fonestorm,
            "worker": {"group_id": f"g-{place_call}"},
        }
    )


@pytest.mark.parametrize(
    ("role", "token", "registers"),
    [
        ("receiver", None, False),  # as the chart deploys it: no token at all
        ("receiver", TOKEN, False),  # even given one, it leaves FoneStorm alone
        ("worker", TOKEN, True),
        ("serve", TOKEN, True),
    ],
    ids=["receiver-without-token", "receiver-with-token", "worker", "serve"],
)
async def test_only_the_worker_registers_callbacks_at_start(
    kafka_bootstrap: str,
    new_topic: NewTopicFactory,
    sandbox: Sandbox,
    runners: list[web.AppRunner],
    caplog: pytest.LogCaptureFixture,
    role: str,
    token: str | None,
    registers: bool,
) -> None:
    settings = await _settings(kafka_bootstrap, new_topic, sandbox, token)
    receiver, worker = ROLES[role]
    # serve() returns once the app's start-up handlers, registration included, have run.
    with caplog.at_level(logging.ERROR):
        runner, _ = await serve(create_app(settings, receiver=receiver, worker=worker))
    runners.append(runner)
    # Without a token a registration attempt fails before any request: only its log shows it.
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    paths = [(request.method, request.path) for request in sandbox.state.requests]
    if not registers:
        assert paths == []
        assert sandbox.state.registration("send_notify", "+1" + OURS) is None
        return
    assert sorted(paths) == [
        ("POST", "/v2/calls/receive_notify"),
        ("POST", "/v2/calls/send_notify"),
    ]
    for kind in ("send_notify", "receive_notify"):
        registration = sandbox.state.registration(kind, "+1" + OURS)  # type: ignore[arg-type]
        assert registration is not None
        assert registration.url == "https://bridge.example.com/callbacks/calls"
        assert (registration.username, registration.password) == ("fonestorm", "cb-s3cret")


async def test_callbacks_the_receiver_would_refuse_are_not_registered(
    kafka_bootstrap: str,
    new_topic: NewTopicFactory,
    sandbox: Sandbox,
    runners: list[web.AppRunner],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A worker without the callback credentials (and no explicit opt-out) would register
    callbacks without basic auth, which the receiver answers 401: every call's events lost."""
    with_auth = await _settings(kafka_bootstrap, new_topic, sandbox, TOKEN)
    settings = with_auth.model_copy(
        update={
            "callbacks": with_auth.callbacks.model_copy(update={"username": None, "password": None})
        }
    )
    with caplog.at_level(logging.ERROR):
        runner, _ = await serve(create_app(settings, receiver=False, worker=True))
    runners.append(runner)
    assert list(sandbox.state.requests) == []
    assert any(
        "not registering callbacks" in r.getMessage()
        and "BRIDGE_CALLBACKS__USERNAME" in r.getMessage()
        for r in caplog.records
    )
