"""Every header line of what the bridge refused: kept in order with its exact value, read back
line by line by `dead-letters show` and `replay`, and covered by the dead letter's signature."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import make_mocked_request
from aiokafka.structs import ConsumerRecord
from multidict import CIMultiDict

from bridge.commands.records import DEAD_LETTER_CUTS, MAX_CUT_HEADERS, record_ref
from bridge.contracts.dead_letters import DeadLetter, HeaderLine, HttpRequestRecord, KafkaRecordRef
from bridge.contracts.signing import sign
from bridge.dead_letters.decision import decide
from bridge.dead_letters.integrity import check
from bridge.dead_letters.model import Entry
from bridge.dead_letters.reading import parse_entry
from bridge.dead_letters.render import show
from bridge.dead_letters.revalidate import callback_data
from bridge.errors import CallbackError, MalformedCallback
from bridge.ingest.dead_letters import callback_dead_letter, header_lines
from tests.support.callbacks import callback
from tests.support.dead_letters import replay_context

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
CONTEXT = replay_context(NOW, timedelta(days=6))
FIRST = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
SECOND = "00-11111111111111111111111111111111-2222222222222222-01"
KEY = b"k" * 32


def line(name: str, value: str | None, encoding: str = "utf-8") -> HeaderLine:
    return HeaderLine.model_validate({"name": name, "value": value, "value_encoding": encoding})


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


# ------------------------------------------------------------------ a callback's header lines


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(
            [(b"X-Forwarded-For", b"10.0.0.1, 10.0.0.2"), (b"x-forwarded-for", b"10.0.0.3")],
            [line("X-Forwarded-For", "10.0.0.1, 10.0.0.2"), line("x-forwarded-for", "10.0.0.3")],
            id="a list on two lines: each line, its name as sent",
        ),
        pytest.param(
            [(b"traceparent", FIRST.encode()), (b"Accept", b"a"), (b"traceparent", b"x")],
            [line("traceparent", FIRST), line("Accept", "a"), line("traceparent", "x")],
            id="in the order they came",
        ),
        pytest.param(
            [
                (b"Authorization", b"Basic Zm9uZTpzdDBybQ=="),
                (b"Authorization", b"Bearer t"),
                (b"Cookie", b"a=1"),
                (b"Cookie", b"b=2"),
                (b"token", b"t0k3n"),
                (b"X-Foo", b"1"),
                (b"Accept", b"*/*"),
            ],
            [line("Accept", "*/*")],
            id="credentials and unlisted headers never, repeated or not",
        ),
        pytest.param(
            [(b"X-Request-Id", b"caf\xe9"), (b"X-Request-Id", b"")],
            [line("X-Request-Id", b64(b"caf\xe9"), "base64"), line("X-Request-Id", "")],
            id="bytes that are not UTF-8 in base64, an empty value kept",
        ),
        pytest.param(
            [(b"User-Agent", b"u" * 1025)],
            [line("User-Agent", "u" * 1024 + "…")],
            id="a value cut at 1,024 characters",
        ),
    ],
)
def test_the_lines_a_callbacks_dead_letter_keeps(
    raw: list[tuple[bytes, bytes]], expected: list[HeaderLine]
) -> None:
    assert header_lines(raw) == expected


def test_the_lines_are_bounded_however_many_came() -> None:
    raw = [(b"Accept", b"a" * 8000)] * 200
    kept = header_lines(raw)
    assert len(kept) == 128  # aiohttp's own limit on a request's header lines
    values = [entry.value or "" for entry in kept]
    assert values[:12] == ["a" * 1024 + "…"] * 12
    assert set(values[12:]) == {"…"}  # what all the lines keep is spent: the rest says "cut"
    assert sum(len(value) for value in values) < 16_000


def test_the_mapping_joins_a_headers_lines_whatever_case_names_them() -> None:
    # aiohttp's pure-Python parser keeps each line's spelling (its C parser does not).
    headers = CIMultiDict(
        [("Content-Encoding", "identity"), ("Accept", "a"), ("content-encoding", "gzip")]
    )
    request = make_mocked_request("POST", "/callbacks/calls", headers=headers)
    letter = callback_dead_letter(request, b"{}", False, MalformedCallback("x"))
    assert letter.request is not None
    assert letter.request.headers == {"Content-Encoding": "identity, gzip", "Accept": "a"}
    assert letter.request.header_lines == [
        line("Content-Encoding", "identity"),
        line("Accept", "a"),
        line("content-encoding", "gzip"),
    ]


# ------------------------------------------------------------------ a command's header lines


def kafka_record(headers: list[tuple[str, bytes | None]]) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic="t", partition=0, offset=0, timestamp=0, timestamp_type=0, key=b"k", value=b"{",
        checksum=None, serialized_key_size=1, serialized_value_size=1,
        headers=headers,  # type: ignore[arg-type]
    )  # fmt: skip


def test_a_command_dead_letter_keeps_every_header_exactly() -> None:
    headers: list[tuple[str, bytes | None]] = [
        ("traceparent", FIRST.encode()),
        ("X-Foo", b"1"),
        ("traceparent", SECOND.encode()),
        ("X-Foo", b"1, 2"),
        ("bin", b"\xff\x00"),
        ("none", None),
        ("X-Foo", b""),
    ]
    ref = record_ref(kafka_record(headers))
    assert ref.header_lines == [
        line("traceparent", FIRST),
        line("X-Foo", "1"),
        line("traceparent", SECOND),
        line("X-Foo", "1, 2"),
        line("bin", b64(b"\xff\x00"), "base64"),
        line("none", None),
        line("X-Foo", ""),
    ]
    # The mapping is what it always was: one value per name, the last.
    assert ref.headers == {"traceparent": SECOND, "X-Foo": "", "bin": "/wA=", "none": ""}


def test_a_cut_command_dead_letter_counts_lines_not_names() -> None:
    record = kafka_record([("h", b"v" * 2000)] * 100)
    cut = record_ref(record, max_value=0, max_text=DEAD_LETTER_CUTS[0])
    assert cut.header_lines == [line("h", "v" * 1024 + "…")] * MAX_CUT_HEADERS
    assert record_ref(record, max_value=0, max_text=0).header_lines is None


# ------------------------------------------------------------------ replay: as the receiver


def request(lines: list[HeaderLine] | None, **headers: str) -> HttpRequestRecord:
    body = json.dumps(callback("OUTBOUND", "END", uid="call-1", billable_seconds=3))
    return HttpRequestRecord(
        method="POST",
        path="/callbacks/calls",
        query="",
        headers={"Content-Type": "application/json"} | headers,
        header_lines=lines,
        body=body,
        body_encoding="utf-8",
        body_truncated=False,
    )


def outcome(record: HttpRequestRecord) -> str:
    try:
        return callback_data(record, reason_code="x", max_body_bytes=4096).uid
    except CallbackError as exc:
        return exc.code


JSON = line("Content-Type", "application/json")


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        pytest.param(
            request([JSON, line("Content-Encoding", "identity")]), "call-1", id="identity"
        ),
        pytest.param(
            request(
                [JSON, line("Content-Encoding", "identity"), line("content-encoding", "gzip")],
                **{"Content-Encoding": "identity"},
            ),
            "unsupported_content_encoding",
            id="two lines, one list: the lines decide, not the mapping",
        ),
        pytest.param(
            request([JSON, line("Content-Encoding", "identity"), line("Content-Encoding", "")]),
            "unsupported_content_encoding",
            id="an empty second line: the receiver joins it too",
        ),
        pytest.param(
            request([JSON, line("Content-Encoding", b64(b"identity\xff"), "base64")]),
            "unsupported_content_encoding",
            id="not UTF-8",
        ),
        pytest.param(
            request([JSON, line("Content-Encoding", "x" * 1024 + "…")]),
            "unsupported_content_encoding",
            id="cut when dead-lettered",
        ),
        pytest.param(
            request([line("Content-Type", "text/plain")]),
            "unsupported_media_type",
            id="the type the lines name, not the mapping's",
        ),
        pytest.param(
            request(None, **{"Content-Encoding": "identity", "content-encoding": "gzip"}),
            "unsupported_content_encoding",
            id="an older dead letter, one entry per spelling: every entry counts",
        ),
        pytest.param(request(None), "call-1", id="an older dead letter without lines"),
    ],
)
def test_a_replay_reads_every_line_as_the_receiver_did(
    record: HttpRequestRecord, expected: str
) -> None:
    assert outcome(record) == expected


def command_letter(lines: list[HeaderLine] | None, headers: dict[str, str]) -> DeadLetter:
    command = {"command_id": "c-1", "fonenumber": "3215551081", "to": "3215550100"}
    record = KafkaRecordRef(
        topic="commands",
        partition=0,
        offset=4,
        key="c-1",
        value=json.dumps(command),
        headers=headers,
        header_lines=lines,
        timestamp=NOW - timedelta(hours=1),
    )
    return DeadLetter(
        dead_letter_id="dl-1",
        source="command",
        reason_code="fonenumber_not_allowed",
        reason="older allow-list",
        received_at=NOW - timedelta(hours=1),
        record=record,
    )


@pytest.mark.parametrize(
    ("lines", "headers", "expected"),
    [
        pytest.param(
            [line("traceparent", FIRST), line("traceparent", SECOND)],
            {"traceparent": SECOND},
            [("traceparent", FIRST)],
            id="the first of two, as the worker reads it",
        ),
        pytest.param(
            [line("traceparent", ""), line("traceparent", None), line("traceparent", SECOND)],
            {"traceparent": SECOND},
            [("traceparent", SECOND)],
            id="the first with a value",
        ),
        pytest.param(
            [line("traceparent", "00-bad"), line("traceparent", SECOND)],
            {"traceparent": SECOND},
            [],
            id="the worker's is malformed: none",
        ),
        pytest.param(
            [line("tracestate", "a=1"), line("ce_traceparent", FIRST), line("x", "1")],
            {},
            [("ce_traceparent", FIRST), ("tracestate", "a=1")],
            id="trace headers only",
        ),
        pytest.param(
            None, {"traceparent": SECOND}, [("traceparent", SECOND)], id="an older dead letter"
        ),
    ],
)
def test_a_replayed_command_continues_the_trace_the_worker_would_have(
    lines: list[HeaderLine] | None, headers: dict[str, str], expected: list[tuple[str, str]]
) -> None:
    out = decide(command_letter(lines, headers), None, CONTEXT, integrity="signed").outgoing
    assert out is not None
    assert [(name, value.decode()) for name, value in out.headers[:-1]] == expected


# ------------------------------------------------------------------ show, and the signature


def test_show_prints_each_header_of_a_command_in_order() -> None:
    lines = [
        line("traceparent", FIRST),
        line("X-Foo", "2"),
        line("X-Foo", "1"),
        line("bin", b64(b"\xff\x00"), "base64"),
        line("none", None),
    ]
    letter = command_letter(lines, {"traceparent": FIRST, "X-Foo": "1", "bin": "/wA=", "none": ""})
    text = show(Entry(0, 1, 0, letter), None, "dead-letters")
    assert [row for row in text.splitlines() if row.startswith("  header ")] == [
        f"  header traceparent = {FIRST}",
        "  header X-Foo = 2",
        "  header X-Foo = 1",
        "  header bin = (binary, hex) ff 00",
        "  header none = (no value)",
    ]


def signed_record(value: bytes, signature: bytes) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic="dlq", partition=0, offset=9, timestamp=0, timestamp_type=0, key=None, value=value,
        checksum=None, serialized_key_size=0, serialized_value_size=len(value),
        headers=[("bridge_signature", signature)],
    )  # fmt: skip


@pytest.mark.parametrize(
    "forged",
    [
        [line("traceparent", SECOND), line("traceparent", FIRST)],  # reordered
        [line("traceparent", FIRST)],  # one left out
        [line("traceparent", FIRST), line("traceparent", SECOND), line("traceparent", FIRST)],
    ],
)
def test_the_signature_covers_every_line(forged: list[HeaderLine]) -> None:
    letter = command_letter(
        [line("traceparent", FIRST), line("traceparent", SECOND)], {"traceparent": SECOND}
    )
    value = letter.model_dump_json().encode()
    signature = sign(KEY, value)
    entry = parse_entry(signed_record(value, signature))
    assert check(entry.value, entry.signatures, KEY) == "signed"
    record: Any = letter.record
    altered = letter.model_copy(
        update={"record": record.model_copy(update={"header_lines": forged})}
    )
    entry = parse_entry(signed_record(altered.model_dump_json().encode(), signature))
    assert entry.letter is not None
    assert entry.letter.record is not None
    assert entry.letter.record.header_lines == forged
    assert check(entry.value, entry.signatures, KEY) == "bad_signature"
