"""Numbers written in other scripts' digits, as producers may send them."""

from __future__ import annotations

FULLWIDTH, ARABIC_INDIC, DEVANAGARI = 0xFF10, 0x0660, 0x0966


def written(text: str, zero: int) -> str:
    """``text`` with its ASCII digits in the script whose zero is ``zero`` (and, in fullwidth,
    its ``+`` and ``-`` too)."""
    fullwidth = {"+": "\uff0b", "-": "\uff0d"} if zero == FULLWIDTH else {}
    return "".join(chr(zero + int(c)) if c.isdigit() else fullwidth.get(c, c) for c in text)
