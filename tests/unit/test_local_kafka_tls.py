"""scripts/local-kafka --ssl-port without a broker: the certificates, config and state."""

from __future__ import annotations

import shutil
import socket
import ssl
import threading
from pathlib import Path

import pytest

from tests.support.local_kafka import start_args
from tools.local_kafka.common import LocalKafkaError
from tools.local_kafka.config import server_properties
from tools.local_kafka.paths import instance_paths
from tools.local_kafka.state import load_config, resolve_config, save_state, status_document
from tools.local_kafka.tls import client_tls_context, ensure_tls

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")


@pytest.fixture
def state(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("BRIDGE_KAFKA_STATE", str(tmp_path))
    return tmp_path


def handshake(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, hostname: str
) -> bytes | None:
    """One TLS handshake over loopback; returns the client certificate (DER) the server saw."""
    seen: list[bytes | None] = []
    with socket.create_server(("127.0.0.1", 0)) as listener:

        def serve_one() -> None:
            conn, _ = listener.accept()
            with server_ctx.wrap_socket(conn, server_side=True) as tls:
                seen.append(tls.getpeercert(binary_form=True))
                tls.sendall(b"ok")

        thread = threading.Thread(target=serve_one, daemon=True)
        thread.start()
        with (
            socket.create_connection(listener.getsockname(), timeout=5) as raw,
            client_ctx.wrap_socket(raw, server_hostname=hostname) as tls,
        ):
            assert tls.recv(2) == b"ok"
        thread.join(timeout=5)
    return seen[0]


@pytest.mark.parametrize("hostname", ["127.0.0.1", "localhost"])
def test_generated_certificates_authenticate_both_sides(state: Path, hostname: str) -> None:
    paths = instance_paths("unit")
    ensure_tls(paths, fresh=False)
    assert all(path.is_file() for path in paths.tls_files)
    assert paths.client_key.read_text().startswith("-----BEGIN PRIVATE KEY-----")  # PKCS#8
    assert paths.client_key.stat().st_mode & 0o077 == 0

    # The broker's PEM key store (key + chain) as a server, requiring a client certificate.
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(paths.broker_keystore)
    server.load_verify_locations(paths.ca_cert)
    server.verify_mode = ssl.CERT_REQUIRED
    client = client_tls_context(paths)
    client.verify_flags |= ssl.VERIFY_X509_STRICT  # Python 3.13's default: keep passing it
    client_cert = ssl.PEM_cert_to_DER_cert(paths.client_cert.read_text())
    assert handshake(server, client, hostname) == client_cert


def test_tls_files_are_reused_unless_fresh(state: Path) -> None:
    paths = instance_paths("unit")
    ensure_tls(paths, fresh=False)
    ca = paths.ca_cert.read_bytes()
    ensure_tls(paths, fresh=False)
    assert paths.ca_cert.read_bytes() == ca
    ensure_tls(paths, fresh=True)
    assert paths.ca_cert.read_bytes() != ca


def test_ssl_listener_config_and_state(state: Path) -> None:
    config = resolve_config(start_args(ssl_port=19005, ssl_client_auth="required"))
    paths = instance_paths("unit")
    props = server_properties(config, paths)
    assert (
        "listeners=PLAINTEXT://127.0.0.1:19000,CONTROLLER://127.0.0.1:19001,SSL://127.0.0.1:19005"
        in props
    )
    assert ",SSL:SSL" in props
    assert "advertised.listeners=PLAINTEXT://127.0.0.1:19000,SSL://127.0.0.1:19005" in props
    assert f"listener.name.ssl.ssl.keystore.location={paths.broker_keystore}" in props
    assert f"listener.name.ssl.ssl.truststore.location={paths.ca_cert}" in props
    assert "listener.name.ssl.ssl.client.auth=required" in props

    paths.root.mkdir(parents=True)
    save_state(paths, config, None)
    assert load_config("unit") == config
    # A plain restart keeps the SSL listener and its client auth.
    assert resolve_config(start_args(port=None)) == config
    doc = status_document("unit", "stopped", None, None)
    assert doc["ssl_bootstrap"] == "127.0.0.1:19005"
    assert doc["ssl_client_auth"] == "required"
    assert doc["tls"] == {
        "ssl_cafile": str(paths.ca_cert),
        "ssl_certfile": str(paths.client_cert),
        "ssl_keyfile": str(paths.client_key),
    }


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"ssl_port": 19001}, "must differ"),  # the controller port (port+1)
        ({"ssl_port": 19005, "sasl_port": 19005}, "must differ"),
        ({"ssl_client_auth": "required"}, "needs --ssl-port"),
    ],
)
def test_bad_ssl_options_are_refused(
    state: Path, overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(LocalKafkaError, match=message):
        resolve_config(start_args(**overrides))
