"""Phone numbers in logs: masked to their last four digits, and nothing else is touched."""

from __future__ import annotations

import pytest

from bridge.phone import mask, mask_numbers


@pytest.mark.parametrize(
    ("number", "masked"),
    [
        ("+13215550100", "+*******0100"),
        ("3215551081", "******1081"),
        ("+1 (321) 555-0100", "+* (***) ***-0100"),
        ("0100", "0100"),
        ("100", "100"),
        ("", ""),
    ],
)
def test_mask_keeps_the_last_four_digits(number: str, masked: str) -> None:
    assert mask(number) == masked


@pytest.mark.parametrize(
    ("line", "logged"),
    [
        # What the bridge logs about numbers.
        (
            "callback of call c1 produced without command_id, no guess: two commands (commands "
            "in doubt from +13215551081 to +13215551801 within X: a, b)",
            "callback of call c1 produced without command_id, no guess: two commands (commands "
            "in doubt from +*******1081 to +*******1801 within X: a, b)",
        ),
        ("registered JSON callbacks of 3215551081 at http://h:8080/cb",
         "registered JSON callbacks of ******1081 at http://h:8080/cb"),
        (
            "command rejected: to '+1 (900) 555-0100' (+19005550100) starts with the denied "
            "prefix +1900 in BRIDGE_WORKER__DENIED_DESTINATIONS",
            "command rejected: to '+* (***) ***-0100' (+*******0100) starts with the denied "
            "prefix +1900 in BRIDGE_WORKER__DENIED_DESTINATIONS",
        ),
        ('settings {"fonenumbers":["3215551081","+442079460958"]}',
         'settings {"fonenumbers":["******1081","+********0958"]}'),
        ("sandbox created call from 321-555-1081 to 3215551801.",
         "sandbox created call from ***-***-1081 to ******1801."),
    ],
)  # fmt: skip
def test_mask_numbers_masks_the_numbers_of_a_line(line: str, logged: str) -> None:
    assert mask_numbers(line) == logged


@pytest.mark.parametrize(
    "line",
    [
        "numbers 32155510811234567 is too long",
        "call ce20fe86-b5ce-11e7-9eec-cf0ab03fdb06",
        "call 12345678-1234-1234-1234-123456789012",
        "at 2026-12-06T05:48:50.608+00:00",
        "from 203.0.113.100 through 192.168.100.200",
        "Kafka at 127.0.0.1:19092, [0, 1, 2]",
        "body is larger than the limit of 4194304 bytes",
        "revoked 3 partitions; 64 commands in flight, 12 with a request out",
        "produced to topic[2]@123456789",
        "memory at 0x7f3a12345678",
        "command ord-12345678901",
        "no digits here",
    ],
)
def test_mask_numbers_leaves_everything_else(line: str) -> None:
    assert mask_numbers(line) == line
