"""The one escaping function for everything ``dead-letters`` prints to a terminal.

A dead letter is hostile input kept whole: a caller ID, a query value, a header or a body can
carry escape sequences (clear the screen, retitle the window, write the clipboard with OSC 52),
C1 controls that some terminals obey as well (U+009B is CSI), and bidi overrides that show
text in another order than it is. Every field ``list``, ``show`` and ``replay`` print goes
through :func:`escape`, so what reaches the terminal is visible text and, where a block
of text is printed, newlines.

Pure, tested as a table.
"""

from __future__ import annotations

import unicodedata

#: Unicode categories never printed raw: controls (C0, DEL, C1), format characters (bidi
#: embeddings, overrides and isolates, zero-width characters, soft hyphen, tags), lone
#: surrogates (which would not even encode), and the line and paragraph separators.
ESCAPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def _escaped(char: str) -> str:
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def escape(text: str, *, newlines: bool = False) -> str:
    r"""``text`` with every character of :data:`ESCAPED_CATEGORIES` written as an escape
    (``\x1b``, ``\x9b``, ``\u202e``, ``\U000e0001``); a newline is kept only when
    ``newlines`` is true (a block of text), so a one-line field stays one line.

    Other characters, backslashes included, are left as they are: ``list --json`` is the
    form to read when the exact text matters.
    """
    if text.isprintable():  # no control, format or separator character (nor a newline)
        return text
    return "".join(
        char
        if (char == "\n" and newlines) or unicodedata.category(char) not in ESCAPED_CATEGORIES
        else _escaped(char)
        for char in text
    )
