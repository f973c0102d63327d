"""Is the broker up? A free-port check and a minimal Kafka wire-protocol readiness probe."""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct

from tools.local_kafka.common import HOST, NODE_ID, PROG


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


# --------------------------------------------------------------------------------------------
# Kafka wire protocol probe (readiness): ApiVersions v0, then Metadata v4 listing this broker.
# --------------------------------------------------------------------------------------------

API_VERSIONS = 18
METADATA = 3
METADATA_PROBE_VERSION = 4  # oldest Metadata version Kafka 4.x still serves (KIP-896)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0

    def take(self, fmt: str) -> int:
        (value,) = struct.unpack_from(fmt, self.data, self.offset)
        self.offset += struct.calcsize(fmt)
        return int(value)

    def string(self) -> str | None:
        length = self.take(">h")
        if length < 0:
            return None
        value = self.data[self.offset : self.offset + length].decode("utf-8", errors="replace")
        self.offset += length
        return value


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise ConnectionError("connection closed by broker")
        chunks += chunk
    return bytes(chunks)


def _request(
    sock: socket.socket, api_key: int, version: int, correlation_id: int, body: bytes
) -> _Reader:
    client_id = PROG.encode()
    header = struct.pack(">hhih", api_key, version, correlation_id, len(client_id)) + client_id
    payload = header + body
    sock.sendall(struct.pack(">i", len(payload)) + payload)
    (size,) = struct.unpack(">i", _recv_exact(sock, 4))
    reader = _Reader(_recv_exact(sock, size))
    if reader.take(">i") != correlation_id:
        raise ConnectionError("correlation id mismatch")
    return reader


def probe_broker(
    address: tuple[str, int],
    timeout: float = 3.0,
    tls: ssl.SSLContext | None = None,
    *,
    node_id: int = NODE_ID,
    brokers: int = 1,
) -> str | None:
    """Return None when the broker serves requests and lists itself (node ``node_id``) and at
    least ``brokers`` brokers, else why it does not.

    With ``tls`` the probe talks TLS (verifying the broker's certificate for the host).
    """
    try:
        with contextlib.ExitStack() as stack:
            sock = stack.enter_context(socket.create_connection(address, timeout=timeout))
            if tls is not None:
                sock = stack.enter_context(tls.wrap_socket(sock, server_hostname=address[0]))
            sock.settimeout(timeout)
            reply = _request(sock, API_VERSIONS, 0, 1, b"")
            error = reply.take(">h")
            if error != 0:
                return f"ApiVersions error {error}"
            versions: dict[int, tuple[int, int]] = {}
            for _ in range(reply.take(">i")):
                key, low, high = reply.take(">h"), reply.take(">h"), reply.take(">h")
                versions[key] = (low, high)
            low, high = versions.get(METADATA, (0, -1))
            if not low <= METADATA_PROBE_VERSION <= high:
                return None  # a future broker without Metadata v4: ApiVersions has to do
            # Metadata v4 body: topics = [] (no topics), allow_auto_topic_creation = false.
            body = struct.pack(">ib", 0, 0)
            reply = _request(sock, METADATA, METADATA_PROBE_VERSION, 2, body)
            reply.take(">i")  # throttle_time_ms
            listed = []
            for _ in range(reply.take(">i")):
                listed_id = reply.take(">i")
                host = reply.string()
                port = reply.take(">i")
                reply.string()  # rack
                listed.append((listed_id, host, port))
            if not any(node == node_id and port == address[1] for node, _, port in listed):
                return f"metadata lists brokers {listed}, not node {node_id} on this port yet"
            if len(listed) < brokers:
                return f"metadata lists {len(listed)} of {brokers} brokers yet: {listed}"
            return None
    except (OSError, struct.error) as exc:
        return f"{type(exc).__name__}: {exc}"
