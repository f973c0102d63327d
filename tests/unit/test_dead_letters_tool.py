"""The pure parts of `dead-letters`: times, re-validation, decisions, tables, summaries."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bridge.contracts.calls import CallStatus, Direction, call_event_id
from bridge.contracts.dead_letters import DeadLetter, HttpRequestRecord, KafkaRecordRef
from bridge.dead_letters.decision import Decision, ReplayContext, decide
from bridge.dead_letters.model import Entry, LedgerView, ProducedTo, ReplayRecord, Selection
from bridge.dead_letters.render import decoded, row, show, table
from bridge.dead_letters.revalidate import callback_data
from bridge.dead_letters.summary import (
    Progress,
    Tally,
    decision_line,
    metrics_text,
    parse_counts,
    summary,
)
from bridge.dead_letters.timespec import parse_duration, parse_when, to_millis
from bridge.errors import CallbackError
from tests.support.callbacks import callback
from tests.support.dead_letters import replay_context

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
RECEIVED = datetime(2026, 11, 29, 8, 30, 15, 250000, tzinfo=UTC)
CALL = callback("OUTBOUND", "END", uid="call-1", disposition="FAILED:503", billable_seconds=0)
GET_QUERY = (
    "uid=call-1&account_code=ACC1&direction=INBOUND&status=BEGIN&from=3215551081"
    "&to=3215551801&type=VOICE&disposition={{disposition}}&billable_seconds="
)
CONTEXT = replay_context(NOW, timedelta(days=6))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("30m", timedelta(minutes=30)),
        ("2h", timedelta(hours=2)),
        ("7d", timedelta(days=7)),
        ("2w", timedelta(days=14)),
        ("1h30m", timedelta(minutes=90)),
        (" 1.5H ", timedelta(minutes=90)),
    ],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected
    assert parse_when(text, NOW) == NOW - expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-26T16:00:00Z", datetime(2026, 11, 26, 16, tzinfo=UTC)),
        ("2026-11-26T17:00:00+01:00", datetime(2026, 11, 26, 16, tzinfo=UTC)),
        ("2026-11-26 16:00", datetime(2026, 11, 26, 16, tzinfo=UTC)),  # no offset: UTC
        ("2026-11-26", datetime(2026, 11, 26, tzinfo=UTC)),
    ],
)
def test_times(text: str, expected: datetime) -> None:
    assert parse_when(text, NOW) == expected


@pytest.mark.parametrize("text", ["", "2", "h", "2x", "-2h", "2h-", "yesterday", "2026-13-01"])
def test_neither_duration_nor_time(text: str) -> None:
    with pytest.raises(ValueError, match="neither a duration"):
        parse_when(text, NOW)


@pytest.mark.parametrize("text", ["99999999999d", "5000000w", "99999999999999999999s"])
def test_a_duration_past_the_calendar_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="further back than"):
        parse_when(text, NOW)


@pytest.mark.parametrize(
    ("moment", "millis"),
    [
        (datetime(2026, 11, 26, 16, tzinfo=UTC), 1_795_708_800_000),
        (datetime(1970, 1, 1, tzinfo=UTC), 0),
        # Kafka has no time before the epoch (and refuses to look one up): from the start.
        (datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC), 0),
        (datetime(1900, 1, 1, tzinfo=UTC), 0),
    ],
)
def test_kafka_times(moment: datetime, millis: int) -> None:
    assert to_millis(moment) == millis


def request(
    method: str = "POST",
    body: str | bytes = json.dumps(CALL),
    *,
    content_type: str | None = "application/json",
    query: str = "",
    truncated: bool = False,
    **headers: str,
) -> HttpRequestRecord:
    if isinstance(body, bytes):
        text, encoding = base64.b64encode(body).decode(), "base64"
    else:
        text, encoding = body, "utf-8"
    kept = dict(headers) | ({"Content-Type": content_type} if content_type else {})
    return HttpRequestRecord.model_validate(
        {
            "method": method, "path": "/callbacks/calls", "query": query, "headers": kept,
            "body": text, "body_encoding": encoding, "body_truncated": truncated,
        }
    )  # fmt: skip


def outcome(record: HttpRequestRecord, reason_code: str) -> str:
    """The call id of an accepted callback, else the code it is refused with."""
    try:
        return callback_data(record, reason_code=reason_code, max_body_bytes=1024).uid
    except CallbackError as exc:
        return exc.code


FORM = "&".join(f"{k}={v}" for k, v in CALL.items())
GET = {"method": "GET", "body": "", "content_type": None, "query": GET_QUERY}


@pytest.mark.parametrize(
    ("record", "reason_code", "expected"),
    [
        pytest.param(request(), "invalid_fields", "call-1", id="JSON valid now"),
        pytest.param(request(body="[1, 2]"), "x", "invalid_fields", id="JSON not an object"),
        pytest.param(
            request(body=FORM, content_type="application/x-www-form-urlencoded; charset=utf-8"),
            "invalid_fields",
            "call-1",
            id="form valid now",
        ),
        pytest.param(request(**GET), "invalid_fields", "call-1", id="GET, unreplaced tokens"),
        pytest.param(
            request(**GET | {"body": "x" * 2000, "truncated": True}),
            "invalid_fields",
            "call-1",
            id="GET ignores a cut body, as the receiver does",
        ),
        pytest.param(
            request(**GET, truncated=True),
            "request_timeout",
            "request_timeout",
            id="a stalled body stays refused",
        ),
        pytest.param(
            request(truncated=True),
            "malformed_chunked_body",
            "malformed_chunked_body",
            id="a body whose chunked framing broke stays refused as such",
        ),
        pytest.param(
            request(body="", truncated=True),
            "expectation_failed",
            "expectation_failed",
            id="a body not read for its Expect stays refused as such",
        ),
        pytest.param(
            request(), "expectation_failed", "call-1", id="a body read whole for all its Expect"
        ),
        pytest.param(
            request(**GET | {"query": "uid=call-1"}),
            "x",
            "invalid_fields",
            id="GET, fields missing",
        ),
        pytest.param(
            request(**GET | {"query": "uid=%ff"}), "x", "malformed_body", id="GET, not UTF-8"
        ),
        pytest.param(
            request(**GET | {"query": "a=" + "b" * 16400}),
            "invalid_fields",
            "malformed_body",
            id="a query cut when dead-lettered",
        ),
        pytest.param(request("PUT"), "x", "method_not_allowed", id="PUT"),
        pytest.param(
            request(**{"content-encoding": "gzip"}),
            "x",
            "unsupported_content_encoding",
            id="compressed (header name in any case)",
        ),
        pytest.param(
            request(**{"Transfer-Encoding": "gzip, chunked"}),
            "x",
            "unsupported_content_encoding",
            id="compressed in transfer",
        ),
        pytest.param(
            request(**{"Transfer-Encoding": "chunked"}), "x", "call-1", id="chunked, valid now"
        ),
        pytest.param(
            request(content_type="application/json; charset=latin-1"),
            "x",
            "unsupported_media_type",
            id="charset not UTF-8",
        ),
        pytest.param(request(content_type=None), "x", "unsupported_media_type", id="no type"),
        pytest.param(
            request(truncated=True), "x", "payload_too_large", id="a cut body stays refused"
        ),
        pytest.param(
            request(body=json.dumps(CALL | {"pad": "x" * 1024})),
            "invalid_fields",
            "payload_too_large",
            id="over today's limit",
        ),
        pytest.param(request(body=b"\xff\xfe"), "x", "malformed_body", id="binary body"),
    ],
)
def test_callback_data_as_the_receiver_decides(
    record: HttpRequestRecord, reason_code: str, expected: str
) -> None:
    assert outcome(record, reason_code) == expected


def callback_letter(record: HttpRequestRecord | None = None) -> DeadLetter:
    return DeadLetter(
        dead_letter_id="dl-1",
        source="callback",
        reason_code="invalid_fields",
        reason="disposition: unknown disposition 'FAILED:503'",
        received_at=RECEIVED,
        http_status=422,
        request=record or request(),
    )


def command_letter(value: str | None, **record: Any) -> DeadLetter:
    ref = {"topic": "commands", "partition": 2, "offset": 41, "key": "c-1", "value": value}
    return DeadLetter(
        dead_letter_id="dl-2",
        source="command",
        reason_code="invalid_command",
        reason="to: Field required",
        received_at=RECEIVED,
        record=KafkaRecordRef.model_validate(ref | record),
    )


COMMAND = json.dumps({"command_id": "c-1", "fonenumber": "3215551081", "to": "3215550100"})


def replayed(outcome: str = "replayed") -> ReplayRecord:
    return ReplayRecord.model_validate(
        {"dead_letter_id": "dl-1", "outcome": outcome, "replayed_at": NOW}
    )


@pytest.mark.parametrize(
    ("letter", "previous", "context", "outcome", "code"),
    [
        (callback_letter(), None, CONTEXT, "replayed", None),
        (callback_letter(), replayed("still_invalid"), CONTEXT, "replayed", None),
        (callback_letter(), replayed(), CONTEXT, "already_replayed", None),
        (callback_letter(request(truncated=True)), None, CONTEXT, "still_invalid",
         "payload_too_large"),
        (command_letter(COMMAND), None, CONTEXT, "replayed", None),
        (command_letter(COMMAND), replayed(), CONTEXT, "already_replayed", None),
        (command_letter('{"command_id": "c-1"}'), None, CONTEXT, "still_invalid",
         "invalid_command"),
        (command_letter(None), None, CONTEXT, "still_invalid", "no_value"),
        (command_letter(COMMAND[:20], value_truncated=True), None, CONTEXT, "still_invalid",
         "value_truncated"),
        (command_letter(base64.b64encode(COMMAND.encode()).decode(), value_encoding="base64"),
         None, CONTEXT, "replayed", None),
        (command_letter(COMMAND), None,
         ReplayContext(**{**CONTEXT.__dict__, "ledger": LedgerView(finished={"c-1": "rejected"})}),
         "still_invalid", "already_finished"),
    ],
)  # fmt: skip
def test_decisions(
    letter: DeadLetter,
    previous: ReplayRecord | None,
    context: ReplayContext,
    outcome: str,
    code: str | None,
) -> None:
    decision = decide(letter, previous, context, integrity="signed")
    assert (decision.outcome, decision.reason_code) == (outcome, code)
    assert (decision.outgoing is not None) == (outcome == "replayed")


def test_a_replayed_callback_is_the_event_the_receiver_would_have_produced() -> None:
    context = ReplayContext(
        **{**CONTEXT.__dict__, "ledger": LedgerView(correlations={"call-1": ("c-7", "appt")})}
    )
    decision = decide(callback_letter(), None, context, integrity="signed")
    out = decision.outgoing
    assert out is not None
    assert (out.topic, out.key) == ("events", b"call-1")
    event = json.loads(out.value)
    event_id = call_event_id("call-1", Direction.OUTBOUND, CallStatus.END)
    assert event["event_id"] == event_id
    assert event["received_at"] == "2026-11-29T08:30:15.250000Z"
    assert (event["disposition"], event["failure_code"]) == ("FAILED", "503")
    assert (event["command_id"], event["correlation_id"]) == ("c-7", "appt")
    headers = dict(out.headers)
    assert headers["ce_id"] == event_id.encode()
    assert headers["ce_time"] == b"2026-11-29T08:30:15.250000Z"
    assert headers["ce_type"] == b"com.fonestorm.call.end"
    assert headers["ce_source"] == b"/fonestorm-bridge/callbacks"
    assert headers["bridge_replayed_from"] == b"dl-1"
    assert decision.what == "OUTBOUND END of call call-1"


def entry(letter: DeadLetter | None, offset: int = 0, error: str | None = None) -> Entry:
    return Entry(0, offset, int(NOW.timestamp() * 1000), letter, error)


@pytest.mark.parametrize(
    ("selection", "letter", "wanted"),
    [
        (Selection(), callback_letter(), True),
        (Selection(), None, True),
        (Selection(reasons=frozenset({"invalid_fields"})), callback_letter(), True),
        (Selection(reasons=frozenset({"malformed_body"})), callback_letter(), False),
        (Selection(reasons=frozenset({"malformed_body"})), None, False),
        (Selection(source="command"), callback_letter(), False),
        (Selection(source="command"), command_letter(COMMAND), True),
        (Selection(source="callback"), None, False),
    ],
)
def test_selection(selection: Selection, letter: DeadLetter | None, wanted: bool) -> None:
    assert selection.wants(entry(letter, error="bad")) is wanted


def test_table_is_aligned_newest_last_with_a_count() -> None:
    newer = callback_letter().model_copy(
        update={"dead_letter_id": "dl-3", "received_at": NOW, "reason": "x " * 60}
    )
    rows = [
        row(entry(newer, 1), replayed()),
        row(entry(command_letter(COMMAND), 2), None),
        row(entry(None, 3, "value: Invalid JSON"), None),
    ]
    assert table(rows).splitlines() == [
        "ID                RECEIVED (UTC)       SOURCE    REASON CODE      HTTP/RECORD     REPLAY"
        "    REASON",
        "dl-2              2026-11-29 08:30:15  command   invalid_command  commands[2]@41  -     "
        "    to: Field required",
        "dl-3              2026-11-30 12:00:00  callback  invalid_fields   422             replay"
        "ed  " + "x " * 35 + "x…",
        "(unreadable 0@3)  2026-11-30 12:00:00  ?         unreadable       -               -     "
        "    value: Invalid JSON",
        "3 dead letters (1 unreadable)",
    ]
    assert table([]).splitlines()[1:] == ["0 dead letters"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'{"a":1}', '{\n  "a": 1\n}'),
        (b"uid=1&status=END", "uid=1&status=END"),
        (b"", ""),
        (b"\xff\x00ab", "(binary, shown in hex)\nff 00 61 62"),
        (b"a\x00b", "(binary, shown in hex)\n61 00 62"),
    ],
)
def test_decoded(raw: bytes, expected: str) -> None:
    assert decoded(raw) == expected


def test_show_decodes_the_value() -> None:
    encoded = base64.b64encode(COMMAND.encode()).decode()
    letter = command_letter(encoded, value_encoding="base64")
    record = replayed().model_copy(
        update={"produced_to": ProducedTo(topic="commands", partition=1, offset=9)}
    )
    text = show(entry(letter, 7), record, "dead-letters")
    assert text.startswith("dead letter dl-2 (dead-letters partition 0 offset 7)\n{\n")
    assert f'"value": "{encoded}"' in text
    assert "value (69 bytes, base64 in the record):\n{\n" in text
    assert '  "command_id": "c-1",' in text
    assert text.endswith("replay: replayed at 2026-11-30T12:00:00+00:00 to commands[1]@9")


def test_progress_every_thousand_or_two_seconds() -> None:
    progress = Progress(100.0)
    assert [
        progress.due(count, now)
        for count, now in [(10, 100.5), (999, 101.9), (1000, 101.9), (1500, 102.0), (1600, 104.0)]
    ] == [False, False, True, False, True]


def decision(outcome: str, code: str = "invalid_fields", **extra: Any) -> Decision:
    letter = callback_letter().model_copy(update={"reason_code": code})
    return Decision(letter, outcome, **extra)  # type: ignore[arg-type]


def test_summary_and_lines() -> None:
    tally = Tally()
    for d in [
        decision("replayed", what="INBOUND END of call call-1"),
        decision("still_invalid", reason_code="invalid_fields", reason="disposition: unknown"),
        decision("already_replayed", code="malformed_body"),
    ]:
        tally.add(d)
    tally.add_unreadable()
    assert summary(tally, dry_run=False).splitlines() == [
        "replay finished: 4 dead letters read",
        "  replayed              1  (callback 1)",
        "  still invalid         1  (callback 1)",
        "  already replayed      1  (callback 1)",
        "  unreadable            1",
        "by reason (as dead-lettered):",
        "  invalid_fields  replayed 1, still invalid 1",
        "  malformed_body  already replayed 1",
        "still invalid, by today's reason:",
        "  invalid_fields 1, e.g. dl-1: disposition: unknown",
    ]
    assert summary(tally, dry_run=True).splitlines()[:2] == [
        "dry run, nothing produced: 4 dead letters read",
        "  would replay          1  (callback 1)",
    ]
    line = decision_line(decision("replayed", what="INBOUND END of call call-1"), dry_run=True)
    assert line == "would replay     dl-1  callback invalid_fields  INBOUND END of call call-1"
    line = decision_line(decision("still_invalid", reason_code="x", reason="y"), dry_run=False)
    assert line == "still invalid    dl-1  callback invalid_fields  now x: y"


def test_metrics_file_counts_add_up_across_runs() -> None:
    tally = Tally()
    tally.add(decision("replayed"))
    tally.add(decision("replayed"))
    first = metrics_text({}, tally, finished_at=1700000000.0, ok=True)
    assert 'bridge_dead_letter_replays_total{source="callback",outcome="replayed"} 2\n' in first
    assert "# TYPE bridge_dead_letter_replays_total counter\n" in first
    assert "bridge_dead_letter_replay_last_run_success 1\n" in first
    previous = parse_counts(first)
    assert previous == {("callback", "replayed"): 2.0}
    second = metrics_text(previous, tally, finished_at=1700000100.0, ok=False)
    assert 'bridge_dead_letter_replays_total{source="callback",outcome="replayed"} 4\n' in second
    assert "bridge_dead_letter_replay_last_run_timestamp_seconds 1700000100.000\n" in second
    assert "bridge_dead_letter_replay_last_run_success 0\n" in second
    assert parse_counts("garbage {{{") == {}
