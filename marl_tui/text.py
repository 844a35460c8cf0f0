"""Text from users (scenario files, paths, checkpoints) made safe to show in a terminal.

A terminal obeys what it is sent: an escape sequence in a scenario's description can write
the clipboard (OSC 52), retitle the window, move the cursor over earlier lines or hide text.
Everything a person or a file supplied goes through `printable` before it is shown.
"""

from __future__ import annotations

import re
import unicodedata

# Whole escape sequences, so no residue ("]52;c;...") is left behind: CSI (ESC [ or 0x9B ...
# final byte), OSC / DCS / SOS / PM / APC strings (ended by BEL or ST, or by the end of the
# text), and two-byte ESC sequences.
_ESCAPES = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[ -~]?"
)
# Unicode format characters that reorder what is shown (bidirectional overrides, "Trojan source").
_BIDI = set("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def printable(s: str) -> str:
    """`s` as one line a terminal shows as written: escape sequences removed, tabs and line
    breaks made spaces, other control characters and bidirectional overrides removed."""
    s = _ESCAPES.sub("", s)
    return "".join(
        " " if c in "\t\n\r\v\f" else c
        for c in s
        if c in "\t\n\r\v\f" or (unicodedata.category(c) != "Cc" and c not in _BIDI)
    )


def printable_lines(text: str) -> str:
    """Several lines, each made `printable` (the line breaks kept)."""
    return "\n".join(printable(line) for line in text.splitlines())
