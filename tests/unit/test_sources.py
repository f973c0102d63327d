"""client_address() and source_allowed(): X-Forwarded-For is believed only from trusted proxies."""

import ipaddress

import pytest

from bridge.ingest.sources import client_address, source_allowed

PROXIES = [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8")]


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("203.0.113.9", None, "203.0.113.9"),
        ("203.0.113.9", "198.51.100.1", "203.0.113.9"),  # not a proxy: the header is ignored
        ("10.0.0.2", "198.51.100.1", "198.51.100.1"),
        ("10.0.0.2", "1.2.3.4, 198.51.100.1", "198.51.100.1"),  # the left part is the sender's
        ("10.0.0.2", "198.51.100.1, 10.0.0.7", "198.51.100.1"),  # two proxies
        ("10.0.0.2", "10.0.0.9, 10.0.0.7", "10.0.0.9"),  # proxies all the way
        ("10.0.0.2", "garbage, 198.51.100.1", "198.51.100.1"),
        ("10.0.0.2", "198.51.100.1, garbage", "10.0.0.2"),
        ("fd00::1", "2001:db8::5", "2001:db8::5"),
        (None, "198.51.100.1", None),
        # One line per proxy: the lines are one list, the sender's own line first.
        ("10.0.0.2", ["198.51.100.1", "203.0.113.9"], "203.0.113.9"),
        ("10.0.0.2", ["1.2.3.4, 198.51.100.1", "203.0.113.9, 10.0.0.7"], "203.0.113.9"),
        ("10.0.0.2", ["198.51.100.1", "10.0.0.7"], "198.51.100.1"),
        ("10.0.0.2", ["198.51.100.1", "garbage"], "10.0.0.2"),
        ("10.0.0.2", [], "10.0.0.2"),
        ("203.0.113.9", ["198.51.100.1", "198.51.100.2"], "203.0.113.9"),
    ],
)
def test_client_address(peer, forwarded, expected) -> None:
    lines = [] if forwarded is None else [forwarded] if isinstance(forwarded, str) else forwarded
    found = client_address(peer, lines, PROXIES)
    assert (str(found) if found else None) == expected


@pytest.mark.parametrize(
    ("address", "allowed", "expected"),
    [
        ("198.51.100.1", [], True),
        (None, [], True),
        ("198.51.100.1", ["198.51.100.0/24"], True),
        ("198.51.100.1", ["203.0.113.0/24"], False),
        ("2001:db8::5", ["198.51.100.0/24"], False),
        ("2001:db8::5", ["2001:db8::/32"], True),
        (None, ["198.51.100.0/24"], False),
    ],
)
def test_source_allowed(address, allowed, expected) -> None:
    networks = [ipaddress.ip_network(n) for n in allowed]
    parsed = ipaddress.ip_address(address) if address else None
    assert source_allowed(parsed, networks) is expected
