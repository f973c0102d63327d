"""Bad input at volume: a corpus of every kind of malformed callback, and a hypothesis fuzz.

Whatever arrives, the bridge answers 4xx (never 5xx), keeps running, and every refused request
is on the dead-letter topic: refused responses == dead letters, status by status.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import subprocess
import sys
import time
import urllib.parse
from collections import Counter
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yarl import URL

from bridge.fonestorm.templates import CALLBACK_FIELDS
from bridge.ingest.dead_letters import dead_letter_bound
from tests.support.bridge_app import BridgeFactory, RunningBridge
from tests.support.callbacks import CALLBACK_PATH, callback
from tests.support.kafka_records import consume_all, read_to_end
from tests.support.ports import free_port
from tests.support.processes import stop_sync

pytestmark = [pytest.mark.integration, pytest.mark.fault]

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
LIMIT = 64 * 1024  # BRIDGE_HTTP__MAX_BODY_BYTES default


@dataclass(frozen=True)
class Bad:
    """One malformed request and the status the README promises for it."""

    kind: str
    method: str
    expected: int
    body: bytes | None = None
    content_type: str | None = None
    query: str = ""
    chunked: bool = False


def _json(data: Any) -> bytes:
    return json.dumps(data).encode()


def _corpus() -> list[Bad]:
    good = callback()
    end = callback(status="END")
    return [
        # malformed JSON (400)
        Bad("json-truncated", "POST", 400, b'{"uid": "c1", "direction": ', JSON),
        Bad("json-garbage", "POST", 400, b"{not json at all}", JSON),
        Bad("json-empty-body", "POST", 400, b"", JSON),
        Bad("json-trailing-garbage", "POST", 400, _json(good) + b" trailing", JSON),
        Bad("json-deeply-nested", "POST", 400, b"[" * 50_000, JSON),
        Bad("json-deeply-nested-object", "POST", 400, b'{"a":' * 10_000, JSON),
        # JSON that parses but is not an object (422)
        Bad("json-array", "POST", 422, _json([good]), JSON),
        Bad("json-string", "POST", 422, b'"uid"', JSON),
        Bad("json-null", "POST", 422, b"null", JSON),
        # wrong content type (415)
        Bad("ctype-text", "POST", 415, _json(good), "text/plain"),
        Bad("ctype-xml", "POST", 415, b"<call/>", "application/xml"),
        Bad("ctype-multipart", "POST", 415, b"--x\r\n\r\n--x--", "multipart/form-data; boundary=x"),
        Bad("ctype-none", "POST", 415, _json(good), None),
        Bad("ctype-json-latin1", "POST", 415, _json(good), "application/json; charset=latin-1"),
        Bad(
            "ctype-form-utf16",
            "POST",
            415,
            b"uid=c1",
            "application/x-www-form-urlencoded; charset=utf-16",
        ),
        # missing fields (422)
        Bad("missing-all-json", "POST", 422, b"{}", JSON),
        Bad("missing-uid", "POST", 422, _json({k: v for k, v in good.items() if k != "uid"}), JSON),
        Bad(
            "missing-direction-form",
            "POST",
            422,
            urllib.parse.urlencode({k: v for k, v in good.items() if k != "direction"}).encode(),
            FORM,
        ),
        Bad("missing-all-get", "GET", 422),
        Bad(
            "end-without-disposition",
            "POST",
            422,
            _json({k: v for k, v in end.items() if k != "disposition"}),
            JSON,
        ),
        Bad("get-only-tokens", "GET", 422, query="uid={{uid}}&direction={{direction}}"),
        # invalid fields (422)
        Bad("billable-not-int", "POST", 422, _json(end | {"billable_seconds": "abc"}), JSON),
        Bad("billable-negative", "POST", 422, _json(end | {"billable_seconds": -5}), JSON),
        Bad("uid-too-long", "POST", 422, _json(good | {"uid": "u" * 300}), JSON),
        Bad("uid-object", "POST", 422, _json(good | {"uid": {"nested": 1}}), JSON),
        Bad("uid-list", "POST", 422, _json(good | {"uid": [1, 2]}), JSON),
        Bad("from-too-long", "POST", 422, _json(good | {"from": "1" * 100}), JSON),
        Bad("uid-lone-surrogate", "POST", 422, b'{"uid": "\\ud800"}', JSON),
        # unknown enum values (422)
        Bad("direction-unknown", "POST", 422, _json(good | {"direction": "SIDEWAYS"}), JSON),
        Bad(
            "status-unknown", "GET", 422, query=urllib.parse.urlencode(good | {"status": "MIDDLE"})
        ),
        Bad(
            "type-unknown",
            "POST",
            422,
            urllib.parse.urlencode(good | {"type": "VIDEO"}).encode(),
            FORM,
        ),
        Bad("disposition-unknown", "POST", 422, _json(end | {"disposition": "MAYBE"}), JSON),
        Bad(
            "disposition-code-on-answered",
            "POST",
            422,
            _json(end | {"disposition": "ANSWERED:200"}),
            JSON,
        ),
        Bad(
            "disposition-failed-no-code", "POST", 422, _json(end | {"disposition": "FAILED:"}), JSON
        ),
        # non-UTF-8 body and query (400)
        Bad("json-latin1-bytes", "POST", 400, b'{"uid": "caf\xe9"}', JSON),
        Bad("form-non-utf8", "POST", 400, b"uid=\xff\xfe&direction=INBOUND", FORM),
        Bad("form-percent-non-utf8", "POST", 400, b"uid=%FF%FE&direction=INBOUND", FORM),
        Bad("query-percent-non-utf8", "GET", 400, query="uid=%FF%FE&direction=INBOUND"),
        Bad("binary-body", "POST", 400, bytes(range(256)) * 4, JSON),
        # oversized bodies (413)
        Bad("oversized-json", "POST", 413, b'{"uid": "' + b"x" * (LIMIT + 100) + b'"}', JSON),
        Bad("oversized-by-one", "POST", 413, b"u" * (LIMIT + 1), FORM),
        Bad("oversized-chunked", "POST", 413, b"y" * (3 * LIMIT), JSON, chunked=True),
        Bad("oversized-binary", "POST", 413, b"\xff" * (2 * LIMIT), "application/octet-stream"),
        # bad method (400 method_not_allowed)
        Bad("method-put", "PUT", 400, _json(good), JSON),
        Bad("method-delete", "DELETE", 400),
        Bad("method-patch", "PATCH", 400, _json(good), JSON),
        Bad("method-options", "OPTIONS", 400),
        Bad("method-head", "HEAD", 400),
    ]


async def _body_stream(data: bytes) -> Any:
    """Yield ``data`` in pieces so aiohttp sends it chunked (no Content-Length)."""
    for start in range(0, len(data), 16 * 1024):
        yield data[start : start + 16 * 1024]


async def _send_bad(session: aiohttp.ClientSession, bridge: RunningBridge, bad: Bad) -> int:
    url = URL(bridge.callback_url + (f"?{bad.query}" if bad.query else ""), encoded=True)
    headers = {"Content-Type": bad.content_type} if bad.content_type else {}
    data: Any = _body_stream(bad.body or b"") if bad.chunked else bad.body
    if bad.content_type is None and bad.body is not None:
        # aiohttp would add application/octet-stream; FoneStorm-like clients may send none.
        headers["Content-Type"] = ""
    async with session.request(bad.method, url, data=data, headers=headers) as response:
        await response.read()
        return response.status


@pytest.mark.timeout(120)
async def test_malformed_corpus_at_volume_is_refused_and_dead_lettered(
    start_bridge: BridgeFactory,
) -> None:
    bridge = await start_bridge()
    corpus = _corpus()
    rounds = 40
    jobs: list[Bad | dict[str, Any]] = []
    for _ in range(rounds):
        jobs.extend(corpus)
        jobs.extend(callback(direction="INBOUND") for _ in range(5))  # good ones in between
    statuses: dict[str, Counter[int]] = {}
    accepted: list[str] = []
    failures: list[str] = []
    queue: asyncio.Queue[Bad | dict[str, Any]] = asyncio.Queue()
    for job in jobs:
        queue.put_nowait(job)

    async def worker(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            job = queue.get_nowait()
            if isinstance(job, dict):
                async with session.post(bridge.callback_url, json=job) as response:
                    if response.status == 200:
                        accepted.append((await response.json())["event_id"])
                    else:
                        failures.append(f"good callback got {response.status}")
                continue
            try:
                status = await _send_bad(session, bridge, job)
            except aiohttp.ClientError as exc:
                failures.append(f"{job.kind}: {exc!r}")
                continue
            statuses.setdefault(job.kind, Counter())[status] += 1

    started = time.perf_counter()
    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(worker(session) for _ in range(16)))
        async with session.get(f"{bridge.url}/healthz") as health:
            assert health.status == 200
    elapsed = time.perf_counter() - started

    assert not failures, failures[:10]
    wrong = {
        bad.kind: dict(statuses[bad.kind])
        for bad in corpus
        if set(statuses.get(bad.kind, {})) != {bad.expected}
    }
    assert not wrong, f"unexpected statuses (expected per README): {wrong}"
    refused = Counter[int]()
    for counter in statuses.values():
        refused.update(counter)
    total_refused = sum(refused.values())
    assert total_refused == rounds * len(corpus)
    assert all(400 <= s < 500 for s in refused)

    topics = bridge.settings.topics
    kafka = bridge.settings.kafka.bootstrap_servers
    # Everything there is, so an extra dead letter would show too.
    letters = await read_to_end(kafka, topics.dead_letters)
    values = [json.loads(r.value) for r in letters]
    by_status = Counter(v["http_status"] for v in values)
    events = await consume_all(kafka, topics.call_events, expected=len(accepted), timeout=30)
    in_kafka = {json.loads(r.value)["event_id"] for r in events}
    print(
        f"\nbad input: {len(jobs)} requests in {elapsed:.1f}s; refused {total_refused} "
        f"({dict(sorted(refused.items()))}), dead letters {len(letters)} "
        f"({dict(sorted(by_status.items()))}); good callbacks {len(accepted)}, in Kafka "
        f"{len(in_kafka & set(accepted))}"
    )
    assert len(letters) == total_refused
    assert by_status == refused
    assert set(accepted) <= in_kafka
    truncated = [v for v in values if v["request"]["body_truncated"]]
    assert len(truncated) == 4 * rounds  # the four oversized kinds, first LIMIT bytes kept
    assert all(
        len(v["request"]["body"]) <= LIMIT or v["request"]["body_encoding"] == "base64"
        for v in truncated
    )


# --------------------------------------------------------------------------------------------
# Property-based fuzz against a real receiver process (sync HTTP, so hypothesis needs no loop)
# --------------------------------------------------------------------------------------------

_HEADER_SAFE = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40).filter(
    lambda s: s == s.strip()
)
_values = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        [
            "INBOUND",
            "OUTBOUND",
            "BEGIN",
            "END",
            "VOICE",
            "ANSWERED",
            "FAILED:503",
            "3215551081",
            "{{disposition}}",
            "",
            " ",
        ]
    ),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
)
_fields = st.dictionaries(
    st.one_of(st.sampled_from(CALLBACK_FIELDS), st.text(max_size=10)), _values, max_size=12
)
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


# Header values as a sender may write them: any byte a header may carry (obs-text included, so
# not UTF-8), never CR, LF or NUL (the HTTP parser refuses those before the bridge sees them).
_header_values = st.binary(max_size=2000).map(
    lambda raw: bytes(b for b in raw if b == 0x09 or 0x20 <= b != 0x7F)
)
_header_names = st.one_of(
    st.sampled_from(
        ["Content-Encoding", "User-Agent", "X-Forwarded-For", "Accept", "traceparent",
         "X-Request-Id", "Cookie", "Referer"]
    ),
    st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=20).map(
        lambda name: f"X-Fuzz-{name}"
    ),
)  # fmt: skip
_headers = st.one_of(
    st.just([]),
    st.sampled_from([[("Content-Encoding", b"gzip")], [("Content-Encoding", b"br, gzip")]]),
    # Unique names: aiohttp's parser refuses a repeated singleton header (User-Agent, ...) with a
    # plain 400 before any handler runs; such a request never exists to be dead-lettered.
    st.lists(
        st.tuples(_header_names, _header_values), max_size=30, unique_by=lambda h: h[0].lower()
    ),
)

Request = tuple[str, str, str | None, bytes, list[tuple[str, bytes]]]


@st.composite
def _requests(draw: st.DrawFn) -> Request:
    method = draw(st.sampled_from(["GET", "GET", "POST", "POST", "POST", "PUT", "DELETE", "PATCH"]))
    query_kind = draw(st.sampled_from(["none", "fields", "bytes"]))
    if query_kind == "fields":
        query = urllib.parse.urlencode(draw(_fields))
    elif query_kind == "bytes":
        query = urllib.parse.quote_from_bytes(draw(st.binary(max_size=200)), safe="=&")
    else:
        query = ""
    content_type = draw(
        st.one_of(
            st.sampled_from(
                [
                    JSON,
                    FORM,
                    f"{JSON}; charset=utf-8",
                    f"{FORM}; charset=UTF-8",
                    "text/plain",
                    f"{JSON}; charset=latin-1",
                    None,
                ]
            ),
            _HEADER_SAFE,
        )
    )
    body_kind = draw(st.sampled_from(["json-fields", "json-any", "form", "bytes", "empty"]))
    if body_kind == "json-fields":
        body = json.dumps(draw(_fields), ensure_ascii=draw(st.booleans())).encode(
            "utf-8", "surrogatepass"
        )
    elif body_kind == "json-any":
        body = json.dumps(draw(_json_values)).encode()
    elif body_kind == "form":
        body = urllib.parse.urlencode(draw(_fields)).encode("utf-8", "surrogatepass")
    elif body_kind == "bytes":
        body = draw(st.binary(max_size=300))
    else:
        body = b""
    return method, query, content_type, body, draw(_headers)


@dataclass
class _FuzzLog:
    statuses: Counter[int] = field(default_factory=Counter)
    five_xx: list[tuple[Any, ...]] = field(default_factory=list)


def _request_sync(
    port: int,
    method: str,
    path: str,
    ctype: str | None,
    body: bytes,
    extra: list[tuple[str, bytes]] = [],  # noqa: B006 - never mutated
) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        if ctype is not None:
            conn.putheader("Content-Type", ctype)
        for name, value in extra:
            conn.putheader(name, value)
        payload = body if method != "GET" or body else None
        if payload is not None:
            conn.putheader("Content-Length", str(len(payload)))
        conn.endheaders(payload)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def _wait_ready_sync(port: int, proc: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("receiver exited during start-up")
        try:
            if _request_sync(port, "GET", "/readyz", None, b"") == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError("receiver not ready")


def _in_thread(coro: Awaitable[Any]) -> Any:
    """Run a coroutine on a fresh loop in another thread (the session loop is not running)."""

    async def wrapper() -> Any:
        return await coro

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, wrapper()).result()


@pytest.fixture
async def fuzz_topics(new_topic: Callable[..., Awaitable[str]]) -> dict[str, str]:
    """Fresh topics for the fuzzed receiver (created on the session loop)."""
    return {"events": await new_topic("events"), "dlq": await new_topic("dlq")}


@pytest.mark.timeout(180)
def test_fuzzed_callbacks_never_5xx_and_are_all_dead_lettered(
    kafka_bootstrap: str, fuzz_topics: dict[str, str], tmp_path: Path
) -> None:
    port = free_port()
    env = {
        **os.environ,
        "BRIDGE_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
        "BRIDGE_TOPICS__CALL_EVENTS": fuzz_topics["events"],
        "BRIDGE_TOPICS__DEAD_LETTERS": fuzz_topics["dlq"],
        "BRIDGE_HTTP__HOST": "127.0.0.1",
        "BRIDGE_HTTP__PORT": str(port),
        "BRIDGE_HTTP__SHUTDOWN_TIMEOUT": "3",
        "BRIDGE_CALLBACKS__ALLOW_UNAUTHENTICATED": "true",
    }
    log_path = tmp_path / "receiver.log"
    fuzz = _FuzzLog()
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bridge.cli", "receiver"],
            env=env,
            stdout=log_file,
            stderr=log_file,
        )
    try:
        _wait_ready_sync(port, proc)

        @settings(
            max_examples=200,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        )
        @given(_requests())
        def fuzz_one(request: Request) -> None:
            method, query, ctype, body, extra = request
            path = CALLBACK_PATH + (f"?{query}" if query else "")
            status = _request_sync(port, method, path, ctype, body, extra)
            fuzz.statuses[status] += 1
            if status >= 500:
                fuzz.five_xx.append((status, *request))
            assert status < 500, f"{status} for {request!r}"
            # Nothing a caller sends may take the replica out of its Service.
            if sum(fuzz.statuses.values()) % 25 == 0:
                assert _request_sync(port, "GET", "/readyz", None, b"") == 200

        fuzz_one()
        assert proc.poll() is None, "the receiver died"
        assert _request_sync(port, "GET", "/healthz", None, b"") == 200
        assert _request_sync(port, "GET", "/readyz", None, b"") == 200
    finally:
        stop_sync(proc, grace=15)
    log = log_path.read_text()
    assert "Traceback" not in log, log[-3000:]
    assert not fuzz.five_xx
    refused = sum(n for status, n in fuzz.statuses.items() if 400 <= status < 500)
    accepted = fuzz.statuses[200]
    letters = _in_thread(read_to_end(kafka_bootstrap, fuzz_topics["dlq"]))
    by_status = Counter(json.loads(r.value)["http_status"] for r in letters)
    print(
        f"\nfuzz: {sum(fuzz.statuses.values())} requests, statuses "
        f"{dict(sorted(fuzz.statuses.items()))}; dead letters {len(letters)} "
        f"({dict(sorted(by_status.items()))})"
    )
    assert len(letters) == refused
    bound = dead_letter_bound(LIMIT)
    largest = max((len(r.value) for r in letters), default=0)
    assert largest <= bound, f"a dead letter of {largest} bytes, over the bound of {bound}"
    assert by_status == Counter({s: n for s, n in fuzz.statuses.items() if 400 <= s < 500})
    assert accepted + refused == sum(fuzz.statuses.values())
