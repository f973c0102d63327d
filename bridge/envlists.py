"""List settings read from one environment variable: comma-separated, or a JSON list.

pydantic-settings would decode a list variable as JSON and fail with a traceback on
``10.0.0.0/8``; these types take the raw text (``NoDecode``) and read either form, so a refused
value is a validation error that names its variable.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Annotated

from pydantic import BeforeValidator
from pydantic_settings import NoDecode

#: How a list setting is written, for error messages.
LIST_FORMS = 'comma-separated values (a,b) or a JSON list (["a", "b"])'


def split_list(value: object) -> object:
    """``value`` as a list when it is the text of one; anything else is left to pydantic.

    Text starting with ``[`` is a JSON list; other text is split at commas, blanks dropped.
    """
    if not isinstance(value, str):
        return value
    text = value.strip()
    if not text.startswith("["):
        return [item.strip() for item in text.split(",") if item.strip()]
    try:
        # Valid JSON that starts with ``[`` is a list.
        return json.loads(text)
    except ValueError:
        raise ValueError(f"not a valid JSON list; expected {LIST_FORMS}") from None


def _network_list(value: object) -> object:
    items = split_list(value)
    if not isinstance(items, list):
        return items
    networks: list[object] = []
    for item in items:
        if not isinstance(item, str):
            networks.append(item)
            continue
        try:
            networks.append(ipaddress.ip_network(item.strip()))
        except ValueError:
            raise ValueError(
                f"{item!r} is not a network in CIDR notation; expected CIDRs as {LIST_FORMS}, "
                "e.g. 10.0.0.0/8,192.168.0.0/16"
            ) from None
    return networks


#: A list of strings from one variable (``a,b`` or ``["a", "b"]``).
StringList = Annotated[list[str], NoDecode, BeforeValidator(split_list)]

#: A list of networks from one variable (``10.0.0.0/8,fd00::/8`` or a JSON list of CIDRs).
NetworkList = Annotated[
    list[ipaddress.IPv4Network | ipaddress.IPv6Network], NoDecode, BeforeValidator(_network_list)
]
