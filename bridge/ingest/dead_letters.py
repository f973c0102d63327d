"""The dead letter of a refused callback: the request as it came, bounded whatever it was.

A dead letter keeps what explains a request (method, path, query, an allow-list of headers,
the body) so that it can be read and replayed later, and never a credential. Every part is cut
to a size, so a hostile request cannot make a dead letter larger than :func:`dead_letter_bound`.
"""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Iterable
from typing import Literal

from aiohttp import web

from bridge.contracts.base import utcnow
from bridge.contracts.dead_letters import DeadLetter, HeaderLine, HttpRequestRecord
from bridge.errors import CallbackError

# Request headers a dead letter keeps (lower case).
_KEPT_HEADERS = frozenset(
    {
        "content-type", "content-length", "content-encoding", "transfer-encoding",
        "user-agent", "host", "x-forwarded-for", "x-forwarded-proto", "x-real-ip",
        "x-request-id", "traceparent", "accept",
    }
)  # fmt: skip
_MAX_HEADER_CHARS = 1024
#: Characters of header values that ``header_lines`` keeps in all: what ``headers`` can take.
_MAX_HEADER_LINE_CHARS = len(_KEPT_HEADERS) * _MAX_HEADER_CHARS
#: Header lines a dead letter lists at most: as many as aiohttp's parser takes in one request
#: (its ``max_headers``), so every line of a request that reached the receiver is listed.
_MAX_HEADER_LINES = 128
#: Longest kept header name, and what JSON spends on one line besides its name and value.
_MAX_NAME_CHARS = max(len(name) for name in _KEPT_HEADERS)
_LINE_OVERHEAD = len('{"name":"","value":"","value_encoding":"base64"},')
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_MAX_QUERY_CHARS = 16 * 1024
_MAX_REASON_CHARS = 2048
_BODY_NOT_KEPT = "the body is not kept: with it the dead letter was too large for Kafka"


def dead_letter_bound(max_body_bytes: int) -> int:
    """Most bytes a callback's dead letter can take, whatever the request was.

    The body is cut at ``max_body_bytes`` (base64 adds a third); query, kept headers and
    reason are cut in characters, and JSON may spend up to six bytes on one (``\\u0001``).
    """
    texts = _MAX_QUERY_CHARS + len(_KEPT_HEADERS) * _MAX_HEADER_CHARS + _MAX_REASON_CHARS
    # Each line's value may be cut to "…" once the lines' budget is spent.
    lines = _MAX_HEADER_LINE_CHARS + _MAX_HEADER_LINES * (_MAX_NAME_CHARS + 1)
    return (
        4 * -(-max_body_bytes // 3)
        + 6 * (texts + lines)
        + _MAX_HEADER_LINES * _LINE_OVERHEAD
        + 4096
    )


def callback_dead_letter(
    request: web.Request,
    body: bytes,
    truncated: bool,
    error: CallbackError,
    *,
    keep_body: bool = True,
) -> DeadLetter:
    """The dead letter of ``request`` refused for ``error``; ``body`` as read (``truncated``:
    cut at the size limit, or all that arrived before the body timed out).

    ``keep_body=False`` when Kafka refused the dead letter with its body as too large: all but
    the body, and the reason says so.
    """
    reason = _bounded_text(error.message, limit=_MAX_REASON_CHARS)
    if not keep_body:
        body, truncated = b"", True
        reason += f" ({_BODY_NOT_KEPT})"
    return DeadLetter(
        dead_letter_id=str(uuid.uuid4()),
        source="callback",
        reason_code=error.code,
        reason=reason,
        received_at=utcnow(),
        http_status=error.http_status,
        request=_request_record(request, body, truncated),
    )


def _request_record(request: web.Request, body: bytes, truncated: bool) -> HttpRequestRecord:
    # Text only when it is plain text: JSON escapes a control character in six bytes, so a body
    # of them would make a dead letter six times its size; base64 costs a third, whatever it is.
    try:
        text, encoding = body.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        text, encoding = "", "base64"
    if encoding == "base64" or _CONTROL.search(text):
        text, encoding = base64.b64encode(body).decode("ascii"), "base64"
    # An allow-list, not a deny-list: a dead letter keeps what explains a request, never a
    # credential nor a flood of headers, and each value is cut and made valid UTF-8 (aiohttp
    # hands non-UTF-8 bytes over as surrogates, which JSON cannot carry).
    # A header sent on several lines is one value, its lines joined as HTTP defines (the
    # receiver judges Content-Encoding so), whatever case each line spells its name in.
    lines: dict[str, list[str]] = {}
    spelling: dict[str, str] = {}
    for name, value in request.headers.items():
        folded = name.lower()
        if folded in _KEPT_HEADERS:
            lines.setdefault(spelling.setdefault(folded, name), []).append(value)
    headers = {name: _bounded_text(", ".join(values)) for name, values in lines.items()}
    return HttpRequestRecord(
        method=request.method,
        path=request.path,
        query=_bounded_text(request.rel_url.raw_query_string, limit=_MAX_QUERY_CHARS),
        headers=headers,
        header_lines=header_lines(request.raw_headers),
        body=text,
        body_encoding=encoding,  # type: ignore[arg-type]
        body_truncated=truncated,
        remote=request.remote,
    )


def header_lines(raw_headers: Iterable[tuple[bytes, bytes]]) -> list[HeaderLine]:
    """Every allow-listed line of ``raw_headers`` (as the parser read them: the name as sent,
    the value without surrounding whitespace), in order, each value exact within the bounds.

    Joined, lines lose what a line is: two ``traceparent`` lines, or ``X-Forwarded-For: a, b``
    against two lines; and joining is HTTP's only for list headers.
    """
    kept: list[HeaderLine] = []
    budget = _MAX_HEADER_LINE_CHARS
    for raw_name, raw_value in raw_headers:
        name = raw_name.decode("utf-8", "replace")
        if name.lower() not in _KEPT_HEADERS:
            continue
        if len(kept) == _MAX_HEADER_LINES:
            break
        encoding: Literal["utf-8", "base64"] = "utf-8"
        try:
            value = raw_value.decode("utf-8")
        except UnicodeDecodeError:
            value, encoding = base64.b64encode(raw_value).decode("ascii"), "base64"
        limit = min(_MAX_HEADER_CHARS, budget)
        if len(value) > limit:
            value = value[:limit] + "…"
        budget -= min(len(value), limit)
        kept.append(HeaderLine(name=name, value=value, value_encoding=encoding))
    return kept


def _bounded_text(value: str, *, limit: int = _MAX_HEADER_CHARS) -> str:
    clean = value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return clean if len(clean) <= limit else clean[:limit] + "…"
