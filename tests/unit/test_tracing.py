"""When tracing is on (the OTEL_* variables only) and where a record's trace context is read."""

from __future__ import annotations

import pytest
from aiokafka.structs import ConsumerRecord

from bridge.obs import tracing

PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.mark.parametrize(
    ("environ", "on"),
    [
        ({}, False),
        ({"OTEL_SERVICE_NAME": "x"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, False),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, False),
        ({"OTEL_SDK_DISABLED": "false", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, True),
    ],
)
def test_tracing_is_on_only_when_otel_variables_ask(environ: dict[str, str], on: bool) -> None:
    assert tracing.configured(environ) is on


def _record(headers: list[tuple[str, bytes]]) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic="t", partition=0, offset=0, timestamp=0, timestamp_type=0, key=b"k", value=b"v",
        checksum=None, serialized_key_size=1, serialized_value_size=1, headers=headers,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([], None),
        ([("traceparent", PARENT.encode())], PARENT),
        ([("ce_traceparent", PARENT.encode())], PARENT),  # CloudEvents binary mode
        ([("ce_traceparent", b"00-other"), ("traceparent", PARENT.encode())], PARENT),
        ([("traceparent", b"")], None),
    ],
)
def test_a_command_record_names_its_trace_by_either_header(
    headers: list[tuple[str, bytes]], expected: str | None
) -> None:
    assert tracing.record_traceparent(_record(headers)) == expected


def test_nothing_is_traced_while_off() -> None:
    assert not tracing.enabled()
    assert tracing.server_middlewares() == []
    tracing.annotate(**{"fonestorm_bridge.call_id": "c"})  # no span, no error
    tracing.link_current_span(PARENT)
