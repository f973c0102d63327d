"""Registry mode's pure parts: subjects, the schema text, id headers, the wire format, and
which framed commands are refused."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka.structs import ConsumerRecord

from bridge.commands.records import readable_command_id
from bridge.contracts.calls import CallEvent, CallPlaced
from bridge.contracts.commands import PlaceCallCommand, PlaceCallResult
from bridge.contracts.dead_letters import DeadLetter, KafkaRecordRef
from bridge.contracts.registry import PUBLISHED_MODELS
from bridge.dead_letters.decision import ReplayContext, decide
from bridge.errors import InvalidCommand
from bridge.schema_registry import naming
from bridge.schema_registry.client import apicurio_v2_url
from bridge.schema_registry.commands import frame_problem
from bridge.schema_registry.ids import SchemaIds
from bridge.schema_registry.wire import (
    CONTENT_ID_HEADER,
    GLOBAL_ID_HEADER,
    Frame,
    frame,
    id_headers,
    parse_frame,
    read_id_header,
)
from bridge.settings import SchemaSettings, Settings, SettingsError, TopicSettings, load_settings

COMMAND = b'{"command_id":"c-1","fonenumber":"3215551081","to":"3215551801"}'
SUBJECT = "fonestorm.place-call.v1-PlaceCallCommand"


@pytest.mark.parametrize(
    ("topic", "model", "subject"),
    [
        ("fonestorm.call-events.v1", CallEvent, "fonestorm.call-events.v1-CallEvent"),
        ("fonestorm.call-events.v1", CallPlaced, "fonestorm.call-events.v1-CallPlaced"),
        ("fonestorm.dead-letters.v1", DeadLetter, "fonestorm.dead-letters.v1-DeadLetter"),
        ("fonestorm.place-call.v1", PlaceCallCommand, SUBJECT),
        ("results", PlaceCallResult, "results-PlaceCallResult"),
    ],
)
def test_subject_is_topic_and_record_name(topic: str, model: type, subject: str) -> None:
    assert naming.subject(topic, model) == subject
    # The record name is the schema's title, as Confluent's TopicRecordNameStrategy takes it.
    assert naming.record_name(model) == model.json_schema()["title"]


def test_every_published_model_has_a_subject_of_its_own() -> None:
    pairs = naming.published(TopicSettings())
    assert {model for _, model in pairs} == set(PUBLISHED_MODELS)
    subjects = [naming.subject(topic, model) for topic, model in pairs]
    assert len(set(subjects)) == len(subjects)
    # Two event types on one topic: why the subject names the record too.
    assert [m for t, m in pairs if t == TopicSettings().call_events] == [CallEvent, CallPlaced]


@pytest.mark.parametrize("model", PUBLISHED_MODELS)
def test_registry_schema_is_the_model_schema_as_draft_07(model: type) -> None:
    text = naming.registry_schema(model)
    assert text == naming.registry_schema(model)  # same text: re-registering finds the version
    registered = json.loads(text)
    assert registered.pop("$schema") == "http://json-schema.org/draft-07/schema#"
    expected = model.json_schema()
    assert expected.pop("$schema") == "https://json-schema.org/draft/2020-12/schema"
    assert registered == expected


@pytest.mark.parametrize(
    ("content_id", "global_id", "headers"),
    [
        (1, None, [(CONTENT_ID_HEADER, b"\0\0\0\0\0\0\0\x01")]),
        (
            258,
            7,
            [
                (CONTENT_ID_HEADER, b"\0\0\0\0\0\0\x01\x02"),
                (GLOBAL_ID_HEADER, b"\0\0\0\0\0\0\0\x07"),
            ],
        ),
        (2**40, None, [(CONTENT_ID_HEADER, b"\0\0\x01\0\0\0\0\0")]),
    ],
)
def test_id_headers_are_big_endian_longs(
    content_id: int, global_id: int | None, headers: list[tuple[str, bytes]]
) -> None:
    # What Java's ByteBuffer.allocate(8).putLong(id) writes, and Apicurio's serdes read.
    assert id_headers(content_id, global_id) == headers
    assert read_id_header(headers, CONTENT_ID_HEADER) == content_id
    assert read_id_header(headers, GLOBAL_ID_HEADER) == global_id


def test_the_last_id_header_wins_and_a_short_one_is_an_error() -> None:
    headers = [*id_headers(1, None), *id_headers(2, None)]
    assert read_id_header(headers, CONTENT_ID_HEADER) == 2
    with pytest.raises(ValueError, match="4 bytes"):
        read_id_header([(CONTENT_ID_HEADER, b"\0\0\0\x01")], CONTENT_ID_HEADER)


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        (None, Frame(None, None)),
        (b"", Frame(None, b"")),
        (COMMAND, Frame(None, COMMAND)),
        (b" \n" + COMMAND, Frame(None, b" \n" + COMMAND)),
        (b"\xef\xbb\xbf{}", Frame(None, b"\xef\xbb\xbf{}")),  # a BOM is not a frame
        (b"\0\0\0\0\x07" + COMMAND, Frame(7, COMMAND)),
        (b"\0\x01\x02\x03\x04{}", Frame(0x01020304, b"{}")),
        (b"\0\xff\xff\xff\xff{}", Frame(2**32 - 1, b"{}")),  # unsigned, as registries count
        (b"\0\0\0\0\x07", Frame(7, b"")),
    ],
)
def test_parse_frame(value: bytes | None, parsed: Frame) -> None:
    assert parse_frame(value) == parsed
    if parsed.schema_id is not None and parsed.payload is not None:
        assert frame(parsed.schema_id, parsed.payload) == value


@pytest.mark.parametrize("value", [b"\0", b"\0\0\0\x07"])
def test_a_frame_too_short_for_its_id_is_invalid(value: bytes) -> None:
    with pytest.raises(InvalidCommand) as caught:
        parse_frame(value)
    assert caught.value.code == "malformed_frame"


@pytest.mark.parametrize(
    ("schema_id", "subject", "known", "found", "code", "words"),
    [
        (5, None, (), None, "framed_without_registry", "schema id 5"),
        (5, None, (5,), None, "framed_without_registry", "REGISTRY_URL unset"),
        (5, SUBJECT, (5,), None, None, ""),
        (6, SUBJECT, (5,), [(SUBJECT, 2)], None, ""),
        (6, SUBJECT, (5,), [("x-Other", 1), (SUBJECT, 3)], None, ""),
        (6, SUBJECT, (5,), [], "schema_id_unknown", "schema id 6 is unknown"),
        (6, SUBJECT, (5,), None, "schema_id_unknown", "schema id 6 is unknown"),
        (
            7,
            SUBJECT,
            (5,),
            [("events-CallEvent", 1), ("events-CallPlaced", 2)],
            "schema_id_mismatch",
            "registered under events-CallEvent v1, events-CallPlaced v2, not under the "
            f"command subject {SUBJECT}",
        ),
        (8, SUBJECT, (5,), "connection refused", "schema_id_unverified", "connection refused"),
        (
            9,
            SUBJECT,
            (),
            [("a-X", 1), ("b-X", 1), ("c-X", 2), ("d-X", 1), ("e-X", 1)],
            "schema_id_mismatch",
            "registered under a-X v1, b-X v1, c-X v2 and 2 more, not under",
        ),
    ],
)
def test_which_framed_commands_are_refused(
    schema_id: int,
    subject: str | None,
    known: tuple[int, ...],
    found: list[tuple[str, int]] | str | None,
    code: str | None,
    words: str,
) -> None:
    problem = frame_problem(schema_id, subject=subject, known=known, found=found)
    if code is None:
        assert problem is None
    else:
        assert problem is not None
        assert problem.code == code
        assert words in problem.message


@pytest.mark.parametrize(
    ("url", "v2"),
    [
        ("http://r:8080/apis/ccompat/v7", "http://r:8080/apis/registry/v2"),
        ("http://r:8080/apis/ccompat/v7/", "http://r:8080/apis/registry/v2"),
        ("https://r/prefix/apis/ccompat/v7", "https://r/prefix/apis/registry/v2"),
        ("http://confluent:8081", None),
        ("http://karapace:8081/", None),
    ],
)
def test_apicurio_v2_api_only_beside_apicurio_ccompat(url: str, v2: str | None) -> None:
    assert apicurio_v2_url(url) == v2


def test_schema_ids_per_topic_and_schema() -> None:
    headers = tuple(id_headers(3, 4))
    ids = SchemaIds({("events", CallEvent.schema_id()): headers})
    assert ids.headers("events", CallEvent.schema_id()) == headers
    assert ids.headers("events", CallPlaced.schema_id()) == ()
    assert ids.headers("other", CallEvent.schema_id()) == ()


def _record(value: bytes, key: bytes | None = None) -> ConsumerRecord[bytes, bytes]:
    stamp = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp() * 1000)
    return ConsumerRecord(
        topic="t", partition=0, offset=0, timestamp=stamp, timestamp_type=0, key=key,
        value=value, checksum=None, serialized_key_size=len(key or b""),
        serialized_value_size=len(value), headers=[],
    )  # fmt: skip


@pytest.mark.parametrize(
    ("value", "key", "command_id"),
    [
        (COMMAND, None, "c-1"),
        (frame(9, COMMAND), None, "c-1"),
        (frame(9, b"not json"), b"k-1", "k-1"),
        (b"\0\0", b"k-2", "k-2"),
    ],
)
def test_a_refused_framed_command_keeps_its_command_id(
    value: bytes, key: bytes | None, command_id: str
) -> None:
    assert readable_command_id(_record(value, key)) == command_id


def test_plain_mode_is_the_default() -> None:
    assert Settings().schemas.registry_url is None
    assert SchemaSettings().compatibility == "BACKWARD"


def test_registry_credentials_go_together(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRIDGE_SCHEMAS__REGISTRY_URL", "http://r:8080/apis/ccompat/v7")
    monkeypatch.setenv("BRIDGE_SCHEMAS__REGISTRY_PASSWORD", "hunter2-secret")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert "BRIDGE_SCHEMAS__REGISTRY_USERNAME" in str(caught.value)
    assert "hunter2" not in str(caught.value)
    monkeypatch.setenv("BRIDGE_SCHEMAS__REGISTRY_USERNAME", "bridge")
    settings = load_settings()
    assert "hunter2" not in settings.model_dump_json()


REPLAY = ReplayContext(
    call_events="events",
    place_call="commands",
    region="US",
    max_body_bytes=1024,
    ce_source="/fonestorm-bridge/callbacks",
    now=datetime(2026, 11, 29, 9, 0, tzinfo=UTC),
    max_age=timedelta(days=6),
    event_id_headers=tuple(id_headers(11, 21)),
    command_id_headers=tuple(id_headers(15, 25)),
)


def _command_letter(value: bytes) -> DeadLetter:
    encoded = base64.b64encode(value).decode()
    return DeadLetter(
        dead_letter_id="dl-9",
        source="command",
        reason_code="schema_id_unknown",
        reason="schema id 9 is unknown to the schema registry",
        received_at=datetime(2026, 11, 29, 8, 0, tzinfo=UTC),
        record=KafkaRecordRef(
            topic="commands", partition=0, offset=3, key="c-1", value=encoded,
            value_encoding="base64",
        ),
    )  # fmt: skip


@pytest.mark.parametrize("value", [COMMAND, frame(9, COMMAND), frame(2**31 + 5, COMMAND)])
def test_a_replayed_command_is_plain_json_with_the_command_schema_ids(value: bytes) -> None:
    decision = decide(_command_letter(value), None, REPLAY, integrity="signed")
    assert decision.outcome == "replayed", decision.reason
    out = decision.outgoing
    assert out is not None
    assert json.loads(out.value)["command_id"] == "c-1"  # no frame in front
    assert read_id_header(out.headers, CONTENT_ID_HEADER) == 15
    assert read_id_header(out.headers, GLOBAL_ID_HEADER) == 25
