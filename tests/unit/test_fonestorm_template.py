"""GET callback templates (ours and the sandbox's token replacement) and Retry-After parsing."""

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from urllib.parse import parse_qsl, urlsplit

import pytest

from bridge.fonestorm.templates import CALLBACK_FIELDS, build_get_template, parse_retry_after
from bridge.sandbox.delivery import render_get_url

FULL_QUERY = (
    "uid={{uid}}&account_code={{account_code}}&direction={{direction}}&status={{status}}"
    "&from={{from}}&to={{to}}&type={{type}}&disposition={{disposition}}"
    "&billable_seconds={{billable_seconds}}"
)


def test_callback_fields_are_the_documented_nine():
    documented = "uid account_code direction status from to type disposition billable_seconds"
    assert tuple(documented.split()) == CALLBACK_FIELDS


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://bridge.example/callbacks", f"https://bridge.example/callbacks?{FULL_QUERY}"),
        ("https://bridge.example/callbacks?", f"https://bridge.example/callbacks?{FULL_QUERY}"),
        (
            "https://bridge.example/callbacks?src=fonestorm&v=1",
            f"https://bridge.example/callbacks?src=fonestorm&v=1&{FULL_QUERY}",
        ),
        (
            "http://127.0.0.1:8080/cb?a=1&#frag",
            f"http://127.0.0.1:8080/cb?a=1&{FULL_QUERY}#frag",
        ),
    ],
)
def test_build_get_template(url, expected):
    assert build_get_template(url) == expected


def test_build_get_template_keeps_braces_literal():
    template = build_get_template("https://bridge.example/cb")
    assert "%7B" not in template
    assert "%7D" not in template
    for name in CALLBACK_FIELDS:
        assert f"{name}={{{{{name}}}}}" in template


def test_build_get_template_replaces_colliding_params_and_is_idempotent():
    once = build_get_template("https://bridge.example/cb?uid=42&keep=yes&st%61tus=x")
    assert once == f"https://bridge.example/cb?keep=yes&{FULL_QUERY}"
    assert build_get_template(once) == once


def test_sandbox_fills_our_template_and_leaves_missing_tokens():
    template = build_get_template("https://bridge.example/cb?src=fs")
    begin = {
        "uid": "ce20fe86-b5ce-11e7-9eec-cf0ab03fdb06",
        "account_code": "ACME & Co",
        "direction": "OUTBOUND",
        "status": "BEGIN",
        "from": "+13215551081",
        "to": "3215551801",
        "type": "VOICE",
    }
    url = render_get_url(template, begin)
    query = dict(parse_qsl(urlsplit(url).query))
    assert query == {
        "src": "fs",
        **begin,
        "disposition": "{{disposition}}",
        "billable_seconds": "{{billable_seconds}}",
    }
    end = render_get_url(template, {**begin, "disposition": "FAILED:503", "billable_seconds": 0})
    query = dict(parse_qsl(urlsplit(end).query))
    assert query["disposition"] == "FAILED:503"
    assert query["billable_seconds"] == "0"


def test_sandbox_leaves_unknown_tokens():
    assert render_get_url("http://h/cb?x={{nope}}&id={{uid}}", {"uid": "a/b"}) == (
        "http://h/cb?x={{nope}}&id=a%2Fb"
    )


NOW = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("   ", None),
        ("0", 0.0),
        ("120", 120.0),
        (" 7 ", 7.0),
        ("1.5", 1.5),
        ("-1", None),
        ("nan", None),
        ("inf", None),
        ("soon", None),
        ("Thu, 26 Nov 2026 12:00:30 GMT", 30.0),
        ("Thursday, 26-Nov-26 12:01:00 GMT", 60.0),
        ("Thu Nov 26 12:00:05 2026", 5.0),
        ("Thu, 26 Nov 2026 11:59:00 GMT", 0.0),
        ("Thu, 99 Nov 2026 11:59:00 GMT", None),
    ],
)
def test_parse_retry_after(header, expected):
    assert parse_retry_after(header, now=NOW) == expected


def test_parse_retry_after_http_date_defaults_to_current_time():
    header = format_datetime(datetime.now(UTC) + timedelta(seconds=90), usegmt=True)
    seconds = parse_retry_after(header)
    assert seconds is not None
    assert 85 <= seconds <= 90
