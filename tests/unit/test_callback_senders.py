"""The Basic ``Authorization`` header of a callback: what it gives, and what is refused (None)."""

from __future__ import annotations

import base64

import pytest

from bridge.ingest.senders import basic_credentials


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


TOKEN = _b64(b"fone:st0rm")
RAW = _b64(b"\xff:\x00\xfe")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        pytest.param("", None, id="no header"),
        pytest.param(f"Basic {TOKEN}", (b"fone", b"st0rm"), id="basic"),
        pytest.param(f"basic {TOKEN}", (b"fone", b"st0rm"), id="scheme in any case"),
        pytest.param(f"BASIC   {TOKEN}", (b"fone", b"st0rm"), id="more than one space"),
        pytest.param(f"Basic {TOKEN} ", (b"fone", b"st0rm"), id="trailing space"),
        pytest.param(f"Basic \t{TOKEN}", (b"fone", b"st0rm"), id="space then a tab"),
        pytest.param(f"Basic\t{TOKEN}", None, id="tab instead of a space"),
        pytest.param(f"Bearer {TOKEN}", None, id="another scheme"),
        pytest.param("Basic", None, id="scheme alone"),
        pytest.param("Basic ", None, id="scheme and a space"),
        pytest.param("Basic !", None, id="not base64"),
        pytest.param("Basic Zm9vOmJhcg", None, id="padding missing"),
        pytest.param("Basic Zm9v OmJhcg==", None, id="space inside"),
        pytest.param("Basic Zm9vOmJhcg==é", None, id="non-ASCII"),
        pytest.param("Basic Zm9vOmJhcg==\udcff", None, id="undecodable byte (surrogate)"),
        pytest.param(f"Basic {_b64(b'nocolon')}", None, id="no colon"),
        pytest.param(f"Basic {_b64(b':')}", (b"", b""), id="empty user and password"),
        pytest.param(f"Basic {_b64(b'a:b:c')}", (b"a", b"b:c"), id="colon in the password"),
        pytest.param(
            f"Basic {_b64('fóne:päss'.encode())}",
            ("fóne".encode(), "päss".encode()),
            id="UTF-8, as sent",
        ),
        pytest.param(f"Basic {RAW}", (b"\xff", b"\x00\xfe"), id="any bytes"),
    ],
)
def test_basic_credentials(header: str, expected: tuple[bytes, bytes] | None) -> None:
    assert basic_credentials(header) == expected
