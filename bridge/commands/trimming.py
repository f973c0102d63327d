"""A result too large for Kafka, cut down so that it can still be published.

Every command gets exactly one result, including one whose ``command_id`` alone is larger than
the results topic takes (an invalid command: a valid id has at most 128 characters). When Kafka
refuses a result, it is published again with its text fields cut, at each of
:data:`TRIM_LIMITS` in turn, and ``error_message`` says what was cut.
"""

from __future__ import annotations

from bridge.contracts.commands import PlaceCallResult

#: Characters each text field (and the metadata, keys and values together) is cut to, one
#: limit per try after Kafka refused the whole result: the first keeps most of a long error
#: message, the last leaves a result of about a kilobyte, which any topic takes.
TRIM_LIMITS = (4096, 128)

#: Ends every cut field. Not printable ASCII, so a cut ``command_id`` is never the id of a
#: valid command: a consumer cannot mistake the result for another command's.
ELLIPSIS = "\u2026"

_TEXT_FIELDS = ("command_id", "call_id", "error_code", "error_message", "correlation_id")


def trimmed(result: PlaceCallResult, limit: int) -> PlaceCallResult | None:
    """``result`` with every text field cut to ``limit`` characters and the metadata entries
    that do not fit in ``limit`` characters dropped; None when nothing is that long."""
    update: dict[str, object] = {}
    cuts: list[str] = []
    for name in _TEXT_FIELDS:
        value = getattr(result, name)
        if value is not None and len(value) > limit:
            update[name] = value[:limit] + ELLIPSIS
            cuts.append(f"{name} ({len(value)} characters)")
    kept: dict[str, str] = {}
    room = limit
    for key, value in result.metadata.items():
        if len(key) + len(value) > room:
            continue
        kept[key] = value
        room -= len(key) + len(value)
    if len(kept) < len(result.metadata):
        update["metadata"] = kept
        cuts.append(f"metadata ({len(result.metadata) - len(kept)} entries dropped)")
    if not cuts:
        return None
    note = (
        f"[result cut to fit Kafka's record size limit, to {limit} characters a field: "
        f"{', '.join(cuts)}]"
    )
    message = update.get("error_message", result.error_message)
    update["error_message"] = f"{message} {note}" if message else note
    return result.model_copy(update=update)
