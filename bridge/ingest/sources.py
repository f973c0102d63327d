"""Who sent a callback, and whether that source may: a pure function, tested as a table.

``X-Forwarded-For`` is believed only from ``BRIDGE_HTTP__TRUSTED_PROXIES``: the client is the
right-most address in the header that is not itself a trusted proxy (addresses further left
were written by whoever sent the request, and can say anything). A request may carry the header
more than once (a proxy that appends a line rather than extending the sender's): the lines are
one list, in order, as HTTP defines repeated fields.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _address(text: str | None) -> Address | None:
    if not text:
        return None
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def _within(address: Address, networks: Sequence[Network]) -> bool:
    return any(address.version == net.version and address in net for net in networks)


def client_address(
    peer: str | None, forwarded_for: Sequence[str], trusted_proxies: Sequence[Network]
) -> Address | None:
    """The address the request came from, through trusted proxies only; None if unreadable.

    ``forwarded_for`` is every ``X-Forwarded-For`` line of the request, in order.
    """
    address = _address(peer)
    if address is None or not forwarded_for or not _within(address, trusted_proxies):
        return address
    for hop in reversed(",".join(forwarded_for).split(",")):
        forwarded = _address(hop)
        if forwarded is None:
            return address  # garbage in the chain: stop at the last address we can vouch for
        address = forwarded
        if not _within(address, trusted_proxies):
            return address
    return address


def source_allowed(address: Address | None, allowed: Sequence[Network]) -> bool:
    """Whether a callback from ``address`` is accepted (any source when ``allowed`` is empty)."""
    if not allowed:
        return True
    return address is not None and _within(address, allowed)
