"""How the bytes of an ABC file become text: the character sets of ABC 2.1.

A file or a tune names its character set with ``I:abc-charset VALUE`` or ``%%abc-charset VALUE``; the standard's
values are ``iso-8859-1`` to ``iso-8859-10``, ``us-ascii`` and ``utf-8``. A declaration in the file header holds for
the whole file, one inside a tune for that tune. Without one, text is UTF-8, the standard's default. Bytes that are
not what was declared (or not UTF-8, when nothing was) are read as ISO-8859-1 (latin-1), the character set of most
tunebooks written before UTF-8, and the reader says so: latin-1 gives every byte a character, so nothing is lost. A
UTF-8 byte-order mark is dropped; a UTF-16 or UTF-32 one is refused, since the standard allows neither and read byte
by byte such a file is noise.
"""

from __future__ import annotations

import re

from ..errors import ChatMusicianError

UTF8 = "utf-8"
LATIN1 = "iso-8859-1"
# the standard's names -> Python's codecs
CHARSETS = {UTF8: "utf-8", "us-ascii": "ascii", **{f"iso-8859-{n}": f"iso8859_{n}" for n in range(1, 11)}}
# spellings seen in the wild for the same character sets
_ALIASES = {"utf8": UTF8, "ascii": "us-ascii", "latin1": LATIN1, "latin-1": LATIN1, "iso8859-1": LATIN1}
WIDE_BOMS = {
    b"\xff\xfe\x00\x00": "UTF-32",
    b"\x00\x00\xfe\xff": "UTF-32",
    b"\xff\xfe": "UTF-16",
    b"\xfe\xff": "UTF-16",
}
UTF8_BOM = b"\xef\xbb\xbf"
# a declaration line, read on bytes: every character set the standard names is ASCII in its first 128 codes
DECLARATION = re.compile(rb"^[ \t]*(?:%%|I:)[ \t]*abc-charset[ \t]+([^\s%]+)", re.IGNORECASE)
_DECLARATION_TEXT = re.compile(DECLARATION.pattern.decode(), re.IGNORECASE)


class TunebookError(ChatMusicianError, ValueError):
    """A file that cannot be read as ABC at all (missing, too large, binary, UTF-16); the message is one line."""


def strip_bom(raw: bytes, what: str) -> bytes:
    """``raw`` without a UTF-8 byte-order mark; :class:`TunebookError` for a UTF-16/UTF-32 one."""
    for bom, name in WIDE_BOMS.items():
        if raw.startswith(bom):
            raise TunebookError(
                f"{what} is {name} text; ABC files are UTF-8 or ISO-8859: save it as UTF-8 first"
            )
    return raw.removeprefix(UTF8_BOM)


def declared_charset(line: bytes) -> str | None:
    """The value of an ``abc-charset`` declaration on ``line`` (lower case, as written), or None."""
    match = DECLARATION.match(line)
    return match.group(1).decode("ascii", "replace").lower() if match else None


def is_declaration(text: str) -> bool:
    """Whether a decoded line is an ``abc-charset`` declaration."""
    return _DECLARATION_TEXT.match(text) is not None


def standard_name(value: str) -> str | None:
    """The standard's name for a declared value (``latin1`` -> ``iso-8859-1``), or None when it names none."""
    value = value.lower().replace("_", "-")
    value = _ALIASES.get(value, value)
    return value if value in CHARSETS else None


def decode(raw: bytes, declared: str | None, what: str) -> tuple[str, str, str | None]:
    """(text, the character set it was read with, a warning or None) for the bytes of one part of a file.

    ``declared`` is the declaration in force for that part (its own, or the file header's), as written.
    """
    warning = None
    charset = UTF8
    if declared is not None:
        charset = standard_name(declared)
        if charset is None:
            warning = f"{what}: unknown abc-charset {declared!r}; read as UTF-8 (ISO-8859-1 where it is not)"
            charset = UTF8
    try:
        return raw.decode(CHARSETS[charset]), charset, warning
    except UnicodeDecodeError as err:
        said = f"declared {charset}" if declared is not None and warning is None else "not declared"
        fallback = (
            f"{what}: byte 0x{raw[err.start]:02x} is not {charset} ({said}); read as ISO-8859-1 (latin-1)"
        )
        return raw.decode("latin-1"), LATIN1, warning or fallback
