"""TLS material of the SSL listener (openssl CLI): a throwaway CA, the broker's certificate
and a client certificate, plus the client side's ssl.SSLContext."""

from __future__ import annotations

import os
import secrets
import shlex
import shutil
import ssl
import subprocess
import time
from pathlib import Path

from tools.local_kafka.common import HOST, PROG, LocalKafkaError, info
from tools.local_kafka.paths import InstancePaths

TLS_VALID_DAYS = 365
TLS_RENEW_SECONDS = 7 * 86400  # regenerate the certificates when they expire sooner than this

OPENSSL_CONFIG = f"""\
# Written by scripts/{PROG}: extensions of the throwaway certificates of the SSL listener.
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[broker]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:{HOST}, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
[client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
"""


def openssl_executable() -> str:
    openssl = os.environ.get("OPENSSL", "").strip() or shutil.which("openssl")
    if not openssl:
        raise LocalKafkaError("openssl not found on PATH; --ssl-port needs it for certificates")
    return openssl


def _openssl(openssl: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [openssl, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def _openssl_checked(openssl: str, cwd: Path, *args: str) -> None:
    result = _openssl(openssl, cwd, *args)
    if result.returncode != 0:
        raise LocalKafkaError(
            f"openssl failed (exit {result.returncode}): {shlex.join([openssl, *args])}",
            log_tail=(result.stdout + result.stderr).strip(),
        )


def tls_usable(paths: InstancePaths) -> bool:
    """True when every TLS file exists and the certificates stay valid for a while."""
    if not all(path.is_file() for path in paths.tls_files):
        return False
    check = ("x509", "-noout", "-checkend", str(TLS_RENEW_SECONDS), "-in")
    return all(
        _openssl(openssl_executable(), paths.root, *check, str(cert)).returncode == 0
        for cert in (paths.ca_cert, paths.client_cert)
    )


def make_tls(paths: InstancePaths) -> None:
    """(Re)create paths.tls: an EC P-256 CA, a broker and a client certificate signed by it.

    Keys are unencrypted PKCS#8 PEM (what `genpkey` writes): the broker reads its key store as
    `ssl.keystore.type=PEM` and Python's ssl module loads client.pem/client.key directly.
    """
    openssl = openssl_executable()
    staging = paths.root / f".tls.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(mode=0o700, parents=True)
    try:
        (staging / "openssl.cnf").write_text(OPENSSL_CONFIG, encoding="utf-8")
        days = str(TLS_VALID_DAYS)
        base = ("-config", "openssl.cnf", "-sha256")
        for key in ("ca.key", "broker.key", "client.key"):
            _openssl_checked(
                openssl, staging, "genpkey", "-algorithm", "EC",
                "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key,
            )  # fmt: skip
        subject = f"/CN={PROG} throwaway CA {secrets.token_hex(4)}"
        _openssl_checked(
            openssl, staging, "req", *base, "-new", "-x509", "-key", "ca.key", "-subj", subject,
            "-days", days, "-extensions", "ca", "-out", "ca.pem",
        )  # fmt: skip
        for leaf, common_name in (("broker", "localhost"), ("client", f"{PROG}-client")):
            _openssl_checked(
                openssl, staging, "req", *base, "-new", "-key", f"{leaf}.key",
                "-subj", f"/CN={common_name}", "-out", f"{leaf}.csr",
            )  # fmt: skip
            _openssl_checked(
                openssl, staging, "x509", "-req", "-sha256", "-in", f"{leaf}.csr",
                "-CA", "ca.pem", "-CAkey", "ca.key", "-set_serial", f"0x{secrets.token_hex(16)}",
                "-days", days, "-extfile", "openssl.cnf", "-extensions", leaf,
                "-out", f"{leaf}.pem",
            )  # fmt: skip
            (staging / f"{leaf}.csr").unlink()
        keystore = "".join(
            (staging / part).read_text(encoding="utf-8")
            for part in ("broker.key", "broker.pem", "ca.pem")
        )
        (staging / "broker-keystore.pem").write_text(keystore, encoding="utf-8")
        for key in ("ca.key", "broker.key", "client.key", "broker-keystore.pem"):
            (staging / key).chmod(0o600)
        shutil.rmtree(paths.tls, ignore_errors=True)
        staging.replace(paths.tls)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def ensure_tls(paths: InstancePaths, *, fresh: bool) -> None:
    if fresh or not tls_usable(paths):
        started = time.monotonic()
        make_tls(paths)
        info(f"made a throwaway CA and certificates in {time.monotonic() - started:.1f}s")
    info(f"TLS: CA {paths.ca_cert}; client certificate {paths.client_cert}, key {paths.client_key}")


def client_tls_context(paths: InstancePaths) -> ssl.SSLContext:
    """What a client of the SSL listener uses: trust the local CA, present the client cert."""
    context = ssl.create_default_context(cafile=str(paths.ca_cert))
    context.load_cert_chain(paths.client_cert, paths.client_key)
    return context
