"""What `dead-letters` prints of a hostile dead letter: no control character but newline.

A caller ID, a query value, a header or a body is whatever the sender chose: escape sequences
(clear screen, OSC window titles, OSC 52 clipboard writes), C1 controls (U+009B is CSI to some
terminals) and bidi overrides must reach the terminal as visible escapes.
"""

from __future__ import annotations

import json
import unicodedata
from datetime import UTC, datetime
from urllib.parse import quote

import pytest

from bridge.contracts.dead_letters import DeadLetter, HttpRequestRecord, KafkaRecordRef
from bridge.dead_letters.decision import Decision
from bridge.dead_letters.escaping import escape
from bridge.dead_letters.model import Entry, ReplayRecord
from bridge.dead_letters.render import decoded, json_line, row, show, table
from bridge.dead_letters.summary import Tally, decision_line, summary

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
CLEAR = "\x1b[2J\x1b[H"
OSC52 = "\x1b]52;c;cm0gLXJmIH4=\x07"  # puts `rm -rf ~` on the clipboard
TITLE = "\x1b]0;owned\x1b\\"
CSI_C1 = "\x9b31m"
RLO = "\u202e"  # right-to-left override
ISOLATE = "\u2066"
HOSTILE = f"3215551081{CLEAR}{OSC52}{TITLE}{CSI_C1}{RLO}gpj.exe{ISOLATE}\u200b\r\n\x85\u2028end"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain text, ünïcödé, 日本語 and emoji 🙂", "plain text, ünïcödé, 日本語 and emoji 🙂"),
        ("", ""),
        ("\x1b[2J", "\\x1b[2J"),
        ("\x00\x07\x08\t\x0b\x0c\r\x7f", "\\x00\\x07\\x08\\x09\\x0b\\x0c\\x0d\\x7f"),
        ("a\nb", "a\\x0ab"),
        ("\x80\x85\x9b\x9d\x9f", "\\x80\\x85\\x9b\\x9d\\x9f"),  # C1 controls
        ("\u00ad", "\\xad"),  # soft hyphen (Cf)
        ("\u202a\u202b\u202c\u202d\u202e", "\\u202a\\u202b\\u202c\\u202d\\u202e"),
        ("\u2066\u2067\u2068\u2069", "\\u2066\\u2067\\u2068\\u2069"),  # isolates
        ("\u200b\u200e\u200f\u061c\ufeff", "\\u200b\\u200e\\u200f\\u061c\\ufeff"),
        ("\u2028\u2029", "\\u2028\\u2029"),  # line and paragraph separators
        ("\U000e0041", "\\U000e0041"),  # a tag character (Cf, astral)
        ("\ud800", "\\ud800"),  # a lone surrogate would not even encode
        ("a\u00a0b", "a\u00a0b"),  # a no-break space is a space
        ("back\\slash", "back\\slash"),
    ],
)
def test_escape(text: str, expected: str) -> None:
    assert escape(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("line 1\nline 2\n", "line 1\nline 2\n"),
        ("a\r\nb", "a\\x0d\nb"),
        ("x\x1b]52;c;YQ==\x07\ny", "x\\x1b]52;c;YQ==\\x07\ny"),
    ],
)
def test_escape_keeping_newlines(text: str, expected: str) -> None:
    assert escape(text, newlines=True) == expected


def unprintable(text: str) -> list[str]:
    """The characters a terminal must not get raw: all but newline of the escaped categories."""
    return [
        c for c in text if c != "\n" and unicodedata.category(c) in {"Cc", "Cf", "Cs", "Zl", "Zp"}
    ]


def hostile_callback() -> DeadLetter:
    query = f"uid=call-1&from={quote(HOSTILE)}&{quote(RLO)}name={quote(CLEAR)}"
    request = HttpRequestRecord(
        method=f"GET{CSI_C1}",
        path=f"/callbacks/calls{RLO}",
        query=query,
        headers={"User-Agent": f"curl{OSC52}", f"X-{CLEAR}": TITLE},
        body=f"from={HOSTILE}",
        body_encoding="utf-8",
        body_truncated=False,
        remote="203.0.113.9",
    )
    return DeadLetter(
        dead_letter_id=f"dl-{RLO}1",
        source="callback",
        reason_code=f"invalid_fields{CLEAR}",
        reason=f"from: {HOSTILE} is not a phone number\nreplay: replayed",
        received_at=NOW,
        http_status=422,
        request=request,
    )


def hostile_command() -> DeadLetter:
    value = json.dumps({"command_id": "c-1", "to": HOSTILE}, ensure_ascii=False)
    return DeadLetter(
        dead_letter_id="dl-2",
        source="command",
        reason_code="invalid_command",
        reason=f"to: {HOSTILE}",
        received_at=NOW,
        record=KafkaRecordRef(
            topic=f"commands{CLEAR}",
            partition=0,
            offset=3,
            key=f"c-1{OSC52}",
            value=value,
            headers={f"h{RLO}": f"v{CSI_C1}", "traceparent": TITLE},
        ),
    )


def entry(letter: DeadLetter | None, error: str | None = None) -> Entry:
    return Entry(0, 7, int(NOW.timestamp() * 1000), letter, error)


STILL_INVALID = ReplayRecord(
    dead_letter_id="dl-1",
    outcome="still_invalid",
    reason_code=f"invalid_fields{CLEAR}",
    reason=HOSTILE,
    replayed_at=NOW,
)


@pytest.mark.parametrize("letter", [hostile_callback(), hostile_command()], ids=["cb", "cmd"])
def test_show_prints_no_control_character(letter: DeadLetter) -> None:
    text = show(entry(letter), STILL_INVALID, "dead-letters", "bad_signature")
    assert unprintable(text) == []
    assert "\\x1b[2J" in text
    assert "\\u202e" in text
    assert "\\x9b31m" in text
    # A newline inside a field is no new line: nothing can pass for the tool's own lines.
    assert [line for line in text.splitlines() if line.startswith("replay:")] == [
        text.splitlines()[-1]
    ]
    assert "signature: DOES NOT VERIFY" in text


def test_show_of_the_query_and_headers_escapes_decoded_values() -> None:
    text = show(entry(hostile_callback()), None, "dead-letters")
    assert "  from = 3215551081\\x1b[2J\\x1b[H\\x1b]52;c;cm0gLXJmIH4=\\x07" in text
    assert "  \\u202ename = \\x1b[2J\\x1b[H" in text
    assert "  header" not in text  # a callback's headers are in the JSON only
    text = show(entry(hostile_command()), None, "dead-letters")
    assert "  header h\\u202e = v\\x9b31m" in text
    assert "key 'c-1\\x1b]52;c;cm0gLXJmIH4=\\x07'" in text


def test_list_rows_and_json_lines_print_no_control_character() -> None:
    rows = [row(entry(hostile_callback()), STILL_INVALID), row(entry(hostile_command()), None)]
    rows.append(row(entry(None, f"value: {CLEAR}bad"), None))
    text = table(rows)
    assert unprintable(text) == []
    assert len(text.splitlines()) == 5  # header, three rows, count
    assert "dl-\\u202e1" in text
    for letter in (hostile_callback(), hostile_command()):
        line = json_line(entry(letter), STILL_INVALID)
        assert unprintable(line) == []
        assert line.isascii()
        assert json.loads(line)["dead_letter"] == letter.model_dump(mode="json")


@pytest.mark.parametrize(
    "raw",
    [
        HOSTILE.encode(),
        json.dumps({"to": HOSTILE}, ensure_ascii=False).encode(),
        b"\x1b[2J binary \xff",
    ],
)
def test_decoded_bodies_keep_only_newlines(raw: bytes) -> None:
    assert unprintable(decoded(raw)) == []


def test_replay_lines_and_summary_print_no_control_character() -> None:
    letter = hostile_callback()
    refused = Decision(
        letter, "still_invalid", reason_code=f"bad{CLEAR}", reason=f"{HOSTILE}\nforged line"
    )
    replayed = Decision(letter, "replayed", what=f"INBOUND BEGIN of call {HOSTILE}")
    tally = Tally()
    for decision in (refused, replayed):
        line = decision_line(decision, dry_run=False)
        assert unprintable(line) == []
        assert "\n" not in line
        tally.add(decision)
    text = summary(tally, dry_run=True)
    assert unprintable(text) == []
    assert "forged line" in text.splitlines()[-1]
