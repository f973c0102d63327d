"""Log records: malformed HTTP is one WARNING line, not an ERROR with a traceback."""

from __future__ import annotations

import logging

from aiohttp.http_exceptions import BadHttpMessage

from bridge.obs.logs import JsonFormatter, MalformedHttpFilter, Throttle


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
