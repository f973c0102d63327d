"""The receiver writes a call event without building ``CallEvent``: the same bytes, always."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from pydantic import ValidationError

from bridge.contracts.calls import CallEvent, call_event_json, call_event_type
from bridge.ingest import parsing
from bridge.kafka.cloudevents import cloudevent_headers, format_time

# Mostly texts a callback can carry (printable, within the numbers' 32 characters): the test
# assumes valid data, and a draw of mostly invalid fields fails Hypothesis' filter health check.
_texts = st.one_of(
    st.text(st.characters(categories=("L", "M", "N", "P", "S", "Zs")), min_size=1, max_size=32),
    st.text(min_size=1, max_size=40),
    st.from_regex(r"\A[+]?[0-9 ()-]{1,20}\Z"),
    st.sampled_from(["3215551081", "+44 20 7946 0958", "ü", 'a"b\\c', "x/y", "\u2028"]),
)
_dispositions = st.sampled_from(
    ["ANSWERED", "NO_ANSWER", "BUSY", "FAILED:503", "FAILED:x", "CANCEL", "FAILED"]
)
_times = st.datetimes(
    min_value=datetime(1970, 1, 2),  # noqa: DTZ001 - made aware below
    max_value=datetime(9999, 12, 30),  # noqa: DTZ001
).map(lambda moment: moment.replace(tzinfo=UTC))


def _data(fields: dict[str, Any]) -> parsing.CallbackData:
    try:
        return parsing.CallbackData.model_validate(fields)
    except ValidationError:
        assume(False)
        raise


@given(
    uid=_texts,
    account_code=_texts,
    direction=st.sampled_from(["INBOUND", "OUTBOUND"]),
    status=st.sampled_from(["BEGIN", "END"]),
    numbers=st.tuples(_texts, _texts),
    disposition=st.none() | _dispositions,
    billable_seconds=st.none() | st.integers(min_value=0, max_value=2**31 - 1),
    received_at=_times,
    command_id=st.none() | st.text(max_size=20),
    correlation_id=st.none() | st.text(max_size=20),
    region=st.sampled_from(["US", "GB", "DE"]),
)
def test_the_fast_encoding_is_the_models_json_byte_for_byte(
    uid: str,
    account_code: str,
    direction: str,
    status: str,
    numbers: tuple[str, str],
    disposition: str | None,
    billable_seconds: int | None,
    received_at: datetime,
    command_id: str | None,
    correlation_id: str | None,
    region: str,
) -> None:
    data = _data(
        {
            "uid": uid, "account_code": account_code, "direction": direction, "status": status,
            "from": numbers[0], "to": numbers[1], "type": "VOICE", "disposition": disposition,
            "billable_seconds": billable_seconds,
        }
    )  # fmt: skip
    options: dict[str, Any] = {
        "region": region,
        "received_at": received_at,
        "command_id": command_id,
        "correlation_id": correlation_id,
    }
    expected = parsing.to_event(data, **options).model_dump_json().encode()
    assert call_event_json(parsing.event_fields(data, **options)) == expected


def test_whole_seconds_are_written_as_the_model_writes_them() -> None:
    data = parsing.validate(
        {"uid": "u", "account_code": "a", "direction": "INBOUND", "status": "BEGIN",
         "from": "3215551081", "to": "3215551801", "type": "VOICE"}
    )  # fmt: skip
    moment = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)  # no microseconds: no fraction either
    fields = parsing.event_fields(data, region="US", received_at=moment)
    assert b'"received_at":"2026-11-30T09:00:00Z"' in call_event_json(fields)
    assert call_event_json(fields) == (
        parsing.to_event(data, region="US", received_at=moment).model_dump_json().encode()
    )


@pytest.mark.parametrize("status", ["BEGIN", "END"])
def test_the_receivers_headers_are_the_ones_publish_event_writes(status: str) -> None:
    data = parsing.validate(
        {"uid": "u-1", "account_code": "a", "direction": "OUTBOUND", "status": status,
         "from": "3215551081", "to": "3215551801", "type": "VOICE",
         "disposition": "ANSWERED" if status == "END" else None}
    )  # fmt: skip
    moment = datetime(2026, 11, 30, 9, 0, 0, 123456, tzinfo=UTC)
    event = parsing.to_event(data, region="US", received_at=moment)
    fields = parsing.event_fields(data, region="US", received_at=moment)
    # What Publisher.publish_event derives from the model's own attributes...
    from_model = cloudevent_headers(
        event_id=event.ce_id, source="s", ce_type=event.ce_type, time=event.ce_time,
        subject=event.ce_subject, dataschema=event.schema_id(),
    )  # fmt: skip
    # ...and what the receiver passes for the same callback (receiver._accept).
    from_fields = cloudevent_headers(
        event_id=fields["event_id"], source="s", ce_type=call_event_type(data.status),
        time=moment, subject=data.uid, dataschema=CallEvent.schema_id(),
    )  # fmt: skip
    assert from_fields == from_model
    assert event.kafka_key == data.uid


@given(
    moment=st.datetimes(
        min_value=datetime(1970, 1, 2),  # noqa: DTZ001 - made aware by timezones
        max_value=datetime(9999, 12, 30),  # noqa: DTZ001
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)), timezone.min]),
    )
)
def test_ce_time_is_isoformat_in_utc(moment: datetime) -> None:
    expected = moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
    assert format_time(moment) == expected
    headers = dict(
        cloudevent_headers(
            event_id="e", source="s", ce_type="t", time=moment, subject=None, dataschema="d"
        )
    )
    assert headers["ce_time"] == expected.encode()
