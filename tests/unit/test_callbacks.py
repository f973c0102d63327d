"""Decoding and mapping of callback data (no I/O)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from urllib.parse import parse_qsl

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.contracts.calls import CallEvent, CallStatus, Direction, Disposition, call_event_id
from bridge.errors import InvalidCallback, MalformedCallback, UnsupportedMediaType
from bridge.ingest import parsing

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
END = {
    "uid": "ce20fe86-b5ce-11e7-9eec-cf0ab03fdb06",
    "account_code": "ACC1",
    "direction": "OUTBOUND",
    "status": "END",
    "from": "3215551081",
    "to": "3215551801",
    "type": "VOICE",
    "disposition": "ANSWERED",
    "billable_seconds": 42,
}


def test_end_callback_maps_every_field() -> None:
    event = parsing.to_event(parsing.validate(END), region="US", received_at=NOW)
    assert event.call_id == END["uid"]
    assert event.direction is Direction.OUTBOUND
    assert event.status is CallStatus.END
    assert event.disposition is Disposition.ANSWERED
    assert event.failure_code is None
    assert event.billable_seconds == 42
    assert event.from_e164 == "+13215551081"
    assert event.to_e164 == "+13215551801"
    assert event.fonenumber == "3215551081"
    assert event.ce_type == "com.fonestorm.call.end"


def test_inbound_fonenumber_is_the_called_number() -> None:
    data = parsing.validate({**END, "direction": "INBOUND"})
    event = parsing.to_event(data, region="US", received_at=NOW)
    assert event.fonenumber == "3215551801"


def test_failed_disposition_is_split() -> None:
    data = parsing.validate({**END, "disposition": "FAILED:503"})
    event = parsing.to_event(data, region="US", received_at=NOW)
    assert (event.disposition, event.failure_code) == (Disposition.FAILED, "503")


@pytest.mark.parametrize("bad", ["FAILED:", "ANSWERED:1", "HUNG_UP", "answered"])
def test_unknown_dispositions_are_invalid(bad: str) -> None:
    with pytest.raises(InvalidCallback, match="disposition"):
        parsing.validate({**END, "disposition": bad})


def test_event_id_is_stable_and_distinct_per_status() -> None:
    begin = call_event_id("u1", Direction.OUTBOUND, CallStatus.BEGIN)
    assert begin == call_event_id("u1", Direction.OUTBOUND, CallStatus.BEGIN)
    assert begin != call_event_id("u1", Direction.OUTBOUND, CallStatus.END)
    assert begin != call_event_id("u1", Direction.INBOUND, CallStatus.BEGIN)


@given(call_id=st.text(min_size=1, max_size=300))
def test_event_id_is_the_uuid5_of_the_callback(call_id: str) -> None:
    namespace = uuid.UUID("6f1d3c52-8d4e-4b7e-9a57-3f1f0e2d9c11")
    for direction in Direction:
        for status in CallStatus:
            name = f"{call_id}\x1f{direction.value}\x1f{status.value}"
            assert call_event_id(call_id, direction, status) == str(uuid.uuid5(namespace, name))


@pytest.mark.parametrize(
    "fields",
    [
        END,
        {**END, "disposition": "FAILED:503"},
        {**END, "status": "BEGIN", "disposition": None, "billable_seconds": None},
    ],
)
def test_events_built_without_validation_are_valid(fields: dict[str, object]) -> None:
    data = parsing.validate({k: v for k, v in fields.items() if v is not None})
    event = parsing.to_event(data, region="US", received_at=NOW, command_id="c1")
    assert CallEvent.model_validate_json(event.model_dump_json()) == event


def test_get_unreplaced_and_empty_tokens_are_absent() -> None:
    fields = parsing.parse_query(
        "uid=u1&account_code=A&direction=INBOUND&status=BEGIN&from=3215551081&to=3215551801"
        "&type=VOICE&disposition={{disposition}}&billable_seconds="
    )
    assert "disposition" not in fields
    assert "billable_seconds" not in fields
    data = parsing.validate(fields)
    assert data.disposition is None


def test_end_without_disposition_is_invalid() -> None:
    fields = {k: v for k, v in END.items() if k != "disposition"}
    with pytest.raises(InvalidCallback, match="END callback must carry a disposition"):
        parsing.validate(fields)


def test_errors_name_every_bad_field() -> None:
    with pytest.raises(InvalidCallback) as info:
        parsing.validate({**END, "direction": "SIDEWAYS", "billable_seconds": "lots"})
    assert "direction" in info.value.message
    assert "billable_seconds" in info.value.message


def test_missing_fields_are_named() -> None:
    with pytest.raises(InvalidCallback, match="from: Field required"):
        parsing.validate({k: v for k, v in END.items() if k != "from"})


def test_numbers_as_strings_and_json_numbers() -> None:
    assert parsing.validate({**END, "billable_seconds": "7"}).billable_seconds == 7
    assert parsing.validate({**END, "billable_seconds": 7}).billable_seconds == 7


@pytest.mark.parametrize(
    "numbers",
    [
        {"from": 3215551081, "to": 3215551801},
        {"uid": 184467440737, "account_code": 1001},
    ],
)
def test_json_numbers_in_text_fields_are_their_digits(numbers: dict[str, int]) -> None:
    # FoneStorm's JSON method may send a number where its table says string: the callback is
    # the call's, not a refusal (a 4xx is never retried, so the event would be lost).
    body = json.dumps(END | numbers).encode()
    data = parsing.validate_post(parsing.JSON_CONTENT_TYPE, None, body)
    event = parsing.to_event(data, region="US", received_at=NOW)
    fields = {"uid": event.call_id, "account_code": event.account_code}
    fields |= {"from": event.from_number, "to": event.to_number}
    assert {name: fields[name] for name in numbers} == {k: str(v) for k, v in numbers.items()}
    if "from" in numbers:
        assert (event.from_e164, event.to_e164) == ("+13215551081", "+13215551801")


@pytest.mark.parametrize(
    ("field", "value"),
    [("uid", 0.0), ("uid", 1e20), ("account_code", 1.5), ("from", 3215551081.0), ("to", -0.0),
     ("disposition", 1e-07)],
)  # fmt: skip
def test_a_decimal_number_in_a_text_field_is_refused(field: str, value: float) -> None:
    # It has no one text (pydantic-core writes 0.0 as "0", Python as "0.0"): the fast and the
    # exact path would make two different events of one body.
    body = json.dumps(END | {field: value}).encode()
    message = f"{field}: must be a string, not a decimal number"
    with pytest.raises(InvalidCallback, match=f"^{message}$"):
        parsing.validate_post(parsing.JSON_CONTENT_TYPE, None, body)
    with pytest.raises(InvalidCallback, match=f"^{message}$"):
        parsing.validate(parsing.parse_post(parsing.JSON_CONTENT_TYPE, None, body))


def test_non_utf8_query_is_malformed() -> None:
    with pytest.raises(MalformedCallback, match="UTF-8"):
        parsing.parse_query("uid=%ff%fe")


def test_non_utf8_body_is_malformed() -> None:
    with pytest.raises(MalformedCallback, match="UTF-8"):
        parsing.parse_post("application/json", None, b'{"uid": "\xff"}')


def test_malformed_json() -> None:
    with pytest.raises(MalformedCallback, match="not valid JSON"):
        parsing.parse_post("application/json", "utf-8", b"{nope")


def test_json_must_be_an_object() -> None:
    with pytest.raises(InvalidCallback, match="must be an object"):
        parsing.parse_post("application/json", None, b"[1, 2]")


@pytest.mark.parametrize("content_type", ["text/plain", "", "multipart/form-data"])
def test_unsupported_content_types(content_type: str) -> None:
    with pytest.raises(UnsupportedMediaType):
        parsing.parse_post(content_type, None, b"uid=1")


def test_non_utf8_charset_is_refused() -> None:
    with pytest.raises(UnsupportedMediaType, match="charset"):
        parsing.parse_post("application/json", "latin-1", b"{}")


def test_unparseable_numbers_keep_raw_and_null_e164() -> None:
    data = parsing.validate({**END, "from": "anonymous"})
    event = parsing.to_event(data, region="US", received_at=NOW)
    assert (event.from_number, event.from_e164) == ("anonymous", None)


def test_region_is_used_for_national_numbers() -> None:
    data = parsing.validate({**END, "to": "020 7946 0958"})
    assert parsing.to_event(data, region="GB", received_at=NOW).to_e164 == "+442079460958"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("billable_seconds", True, "not a boolean"),
        ("billable_seconds", "1" * 4000, "whole number of seconds from 0 to 2147483647"),
        ("billable_seconds", 2**31, "less than or equal to 2147483647"),
        ("billable_seconds", "12.5", "whole number of seconds"),
        ("billable_seconds", -1, "greater than or equal to 0"),
        ("uid", "call\nid", "must be printable: '\\n' at position 4"),
        ("uid", "x" * 129, "at most 128 characters"),
        ("to", "3215551801\x00", "must be printable"),
        ("from", "1" * 33, "at most 32 characters"),
    ],
)
def test_fields_are_bounded_with_a_precise_reason(field: str, value: object, message: str) -> None:
    with pytest.raises(InvalidCallback) as info:
        parsing.validate({**END, field: value})
    assert message in info.value.message


@pytest.mark.parametrize("seconds", ["125", 125, 125.0])
def test_billable_seconds_accepts_digits_and_whole_numbers(seconds: object) -> None:
    assert parsing.validate({**END, "billable_seconds": seconds}).billable_seconds == 125


def test_a_json_integer_beyond_the_conversion_limit_is_malformed_not_a_crash() -> None:
    body = b'{"uid": "c1", "billable_seconds": ' + b"9" * 4301 + b"}"
    with pytest.raises(MalformedCallback, match="not acceptable JSON"):
        parsing.parse_json(body)


def _outcome(call: object) -> object:
    """A callable's result, or the type and message of what it raised."""
    try:
        return call()  # type: ignore[operator]
    except (InvalidCallback, MalformedCallback, UnsupportedMediaType) as exc:
        return (type(exc).__name__, exc.message)


_json_field_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(
        ["OUTBOUND", "INBOUND", "BEGIN", "END", "VOICE", "ANSWERED", "FAILED:503", "FAILED:",
         "{{disposition}}", "{{ uid }}", "", " ", " 42 ", "42", "3215551081", "\x00", "ü"]
    ),
    st.text(max_size=12),
)  # fmt: skip


@given(
    fields=st.dictionaries(
        st.sampled_from([*END, "extra", "from_"]), _json_field_values, max_size=12
    ),
    base=st.booleans(),
)
def test_json_fast_path_answers_exactly_as_the_exact_path(
    fields: dict[str, object], base: bool
) -> None:
    data = (END | fields) if base else fields
    body = json.dumps(data).encode()
    fast = _outcome(lambda: parsing.validate_post(parsing.JSON_CONTENT_TYPE, None, body))
    exact = _outcome(
        lambda: parsing.validate(parsing.parse_post(parsing.JSON_CONTENT_TYPE, None, body))
    )
    assert fast == exact


@pytest.mark.parametrize(
    "body",
    [
        b'{"uid": "a", "uid": "b"}',  # duplicate keys: the last wins in both
        json.dumps(END | {"uid": "{{uid}}"}).encode(),  # an unreplaced token is absent
        json.dumps(END | {"billable_seconds": True}).encode(),
        json.dumps(END | {"billable_seconds": 1e3}).encode(),
        json.dumps(END | {"billable_seconds": "7"}).encode(),
        json.dumps(END).encode() + b" ",
        b"\xef\xbb\xbf" + json.dumps(END).encode(),  # a UTF-8 byte order mark
        json.dumps(END | {"billable_seconds": 0}).encode().replace(b": 0", b": " + b"9" * 5000),
    ],
)
def test_json_fast_path_edge_cases(body: bytes) -> None:
    fast = _outcome(lambda: parsing.validate_post(parsing.JSON_CONTENT_TYPE, "utf-8", body))
    exact = _outcome(
        lambda: parsing.validate(parsing.parse_post(parsing.JSON_CONTENT_TYPE, "utf-8", body))
    )
    assert fast == exact


@given(
    st.lists(
        st.tuples(st.text(alphabet="ab=&;+% {}x\u00fc", max_size=6), st.sampled_from(["&", ""])),
        max_size=8,
    ).map(lambda parts: "".join(text + sep for text, sep in parts))
)
def test_a_query_parses_as_parse_qsl_does_with_escapes_or_without(query: str) -> None:
    try:
        expected = parsing.clean_fields(parse_qsl(query, keep_blank_values=True, errors="strict"))
    except UnicodeDecodeError:
        with pytest.raises(MalformedCallback):
            parsing.parse_query(query)
        return
    assert parsing.parse_query(query) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # A '+' FoneStorm did not percent-encode arrives as a space: it is the number's plus.
        ("from=+442079460958&to=+33142685300", ("+442079460958", "+33142685300")),
        ("from=%2B442079460958&to=%2B33142685300", ("+442079460958", "+33142685300")),
        ("from=3215551081&to=3215551801", ("+13215551081", "+13215551801")),
        # A plus anywhere but in front stays what the form encoding says: a space.
        ("from=321+555+1081&to=3215551801", ("+13215551081", "+13215551801")),
    ],
)
def test_an_unencoded_plus_in_front_of_a_number_is_its_plus(
    query: str, expected: tuple[str, str]
) -> None:
    fields = parsing.parse_query(
        "uid=u1&account_code=a&direction=INBOUND&status=BEGIN&type=VOICE&" + query
    )
    event = parsing.to_event(parsing.validate(fields), region="US", received_at=NOW)
    assert (event.from_e164, event.to_e164) == expected
