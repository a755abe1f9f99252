"""The tokenizers library's pre-tokenization, reproduced in Python where that is exact: a ``Split`` regex translated
from Oniguruma to Python's ``re``, and GPT-2's byte-level alphabet. Used by :mod:`.piece_encoder`, which checks every
translation against the Rust pipeline before trusting it.
"""

from __future__ import annotations

import re

# Unicode White_Space: what the Oniguruma regexes of the tokenizers library call \s. Python's \s also matches
# U+001C..U+001F, so the class is spelled out.
WHITE_SPACE = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"


def python_split_regex(pattern: str):
    """The Oniguruma ``pattern`` of a ``Split`` pre-tokenizer as a compiled Python regex with the same matches, or
    None when it uses anything whose meaning could differ between the two engines (\\w, \\d, \\p{..}, anchors, ...).
    """
    out, i, in_class = [], 0, False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            nxt = pattern[i + 1 : i + 2]
            if nxt == "s":
                out.append(WHITE_SPACE if in_class else f"[{WHITE_SPACE}]")
            elif nxt == "S" and not in_class:
                out.append(f"[^{WHITE_SPACE}]")
            elif nxt in ("n", "t", "r") or (nxt and not nxt.isalnum() and nxt.isascii()):
                out.append("\\" + nxt)
            else:
                return None
            i += 2
            continue
        if in_class:
            if c == "[":
                return None  # nested or POSIX classes
            in_class = c != "]"
        elif c == "[":
            in_class = True
        elif c in ".^$":
            return None
        elif c == "(":
            if pattern[i + 1 : i + 2] != "?":
                out.append("(?:")  # findall must return whole matches, not groups
                i += 1
                continue
            if pattern[i + 2 : i + 3] not in ("!", "=", ":", ">"):
                return None  # inline flags, lookbehind, named groups
        out.append(c)
        i += 1
    try:
        return re.compile("".join(out))
    except re.error:
        return None


def byte_level_map():
    """GPT-2's byte-to-character table as a function of a piece (what the ``ByteLevel`` pre-tokenizer does to it)."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("\u00a1"), ord("\u00ac") + 1),
        *range(ord("\u00ae"), 256),
    ]
    table, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            table[byte] = chr(byte)
        else:
            table[byte] = chr(256 + extra)
            extra += 1
    translation = str.maketrans(table)

    def byte_map(piece: str) -> str:
        return piece.encode("utf-8").decode("latin-1").translate(translation)

    return byte_map

