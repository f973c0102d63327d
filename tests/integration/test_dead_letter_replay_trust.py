"""`dead-letters replay` trusts nothing on the dead-letter topic but what the bridge signed.

The receiver signs the dead letters of refused callbacks with the callback key, the worker
those of refused commands with the command key.
"""

from __future__ import annotations

import json

import aiohttp
import pytest

from bridge.contracts.signing import SIGNATURE_HEADER, verify
from tests.support.bridge_app import CALLBACK_SIGNING_KEY, COMMAND_SIGNING_KEY, BridgeFactory
from tests.support.callbacks import callback, post_json
from tests.support.commands import closed_loop
from tests.support.kafka_records import consume_all

pytestmark = pytest.mark.integration


async def test_the_bridge_signs_the_dead_letters_it_writes(
    start_bridge: BridgeFactory, http: aiohttp.ClientSession
) -> None:
    async with closed_loop(start_bridge) as loop:
        kafka, topics = loop.settings.kafka.bootstrap_servers, loop.settings.topics
        refused = callback(status="END", disposition="VOICEMAIL")
        assert (await post_json(http, loop.bridge.url, refused))[0] == 422
        await loop.send(b'{"command_id": "c-broken"', key=b"c-broken")
        records = await consume_all(kafka, topics.dead_letters, expected=2)
        assert len(records) == 2
        by_source = {json.loads(r.value)["source"]: r for r in records}
        for source, key, other in [
            ("callback", CALLBACK_SIGNING_KEY, COMMAND_SIGNING_KEY),
            ("command", COMMAND_SIGNING_KEY, CALLBACK_SIGNING_KEY),
        ]:
            dead = by_source[source]
            (signature,) = (v for name, v in dead.headers if name == SIGNATURE_HEADER)
            assert verify(key, dead.value, signature), source
            assert not verify(other, dead.value, signature), source
