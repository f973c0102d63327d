"""Log records: malformed HTTP is one WARNING line, not an ERROR with a traceback; phone
numbers are masked."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable

from aiohttp.http_exceptions import BadHttpMessage

from bridge.obs.logs import JsonFormatter, MalformedHttpFilter, MaskFilter, Throttle
from bridge.phone import mask_numbers


def _record(exc: BaseException) -> logging.LogRecord:
    return logging.LogRecord(
        "aiohttp.server", logging.ERROR, __file__, 1, "Error handling request from %s",
        ("10.0.0.7",), (type(exc), exc, None),
    )  # fmt: skip


def test_malformed_http_becomes_one_warning_line() -> None:
    record = _record(BadHttpMessage("Invalid header token:\n\n  b'Bad Header'"))
    assert MalformedHttpFilter().filter(record)
    assert record.levelno == logging.WARNING
    assert record.exc_info is None
    line = JsonFormatter().format(record)
    assert "exception" not in line
    assert "malformed HTTP request refused with 400 (10.0.0.7): Invalid header token:" in line


def test_other_errors_keep_their_traceback() -> None:
    record = _record(RuntimeError("boom"))
    assert MalformedHttpFilter().filter(record)
    assert record.levelno == logging.ERROR
    assert "RuntimeError: boom" in JsonFormatter().format(record)


def test_throttle_lets_one_line_through_per_interval_with_the_count() -> None:
    throttle = Throttle(60.0)
    assert throttle.hit(0.0) == 1
    assert [throttle.hit(t) for t in (1.0, 2.0, 59.9)] == [None, None, None]
    assert throttle.hit(60.0) == 4  # three quiet ones and this one
    assert throttle.hit(61.0) is None
    assert throttle.hit(500.0) == 2


def _logged(record: logging.LogRecord, mask: Callable[[str], str] | None) -> dict[str, str]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    if mask is not None:
        handler.addFilter(MaskFilter(mask))
    handler.handle(record)
    return dict(json.loads(stream.getvalue()))


def _number_record() -> logging.LogRecord:
    exc = ValueError("FoneStorm refused to 3215551801")
    record = logging.LogRecord(
        "bridge.commands.outcomes", logging.WARNING, __file__, 1, "doubt from %s to %s",
        ("+13215551081", "3215551801"), (ValueError, exc, None),
    )  # fmt: skip
    record.command_id = "32155518010"
    return record


def test_phone_numbers_are_masked_in_messages_and_tracebacks_not_ids() -> None:
    entry = _logged(_number_record(), mask_numbers)
    assert entry["message"] == "doubt from +*******1081 to ******1801"
    assert "refused to ******1801" in entry["exception"]
    assert "3215551801" not in entry["exception"]
    assert entry["command_id"] == "32155518010"


def test_phone_numbers_in_full_when_asked() -> None:
    entry = _logged(_number_record(), None)
    assert entry["message"] == "doubt from +13215551081 to 3215551801"
    assert "refused to 3215551801" in entry["exception"]
