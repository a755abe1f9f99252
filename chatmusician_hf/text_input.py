"""Text and numbers from outside the program, checked once where they enter it.

Every entry point that takes text from a person, a file or a network client (``render``, ``generate``, ``chat``, the
Space, the ABC layer's public functions) decodes bytes with :func:`decode_utf8` and checks strings with
:func:`check_text` before anything else sees them, and checks numbers with :func:`finite_number`. Each problem is
one :class:`TextInputError` whose message is a single line naming what was wrong and where, so a caller can print
it as it is.

What is refused: bytes that are not UTF-8, lone surrogates (a ``str`` Python can hold but no file or tokenizer can
encode; JSON's ``"\\udcff"`` escape makes one), NUL characters (binary data), and NaN or infinite numbers.
"""

from __future__ import annotations

import math

from .errors import ChatMusicianError


class TextInputError(ChatMusicianError, ValueError):
    """Text or a number from outside that cannot be used; the message is one line."""


def decode_utf8(raw: bytes, what: str) -> str:
    """``raw`` as text; bytes that are not UTF-8 raise :class:`TextInputError` naming the first bad byte."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        byte = raw[err.start : err.start + 1].hex()
        raise TextInputError(
            f"{what} is not valid UTF-8 (byte 0x{byte} at offset {err.start}); save it as UTF-8 first"
        ) from None
    return check_text(text.removeprefix("\ufeff"), what)


def text_problem(text: str) -> str | None:
    """What makes ``text`` unusable, or None: a lone surrogate or a NUL character, with its position."""
    if "\x00" in text:
        return f"contains a NUL character at character {text.index(chr(0))} (binary data?)"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        # what Python makes of bytes that are not UTF-8 (surrogateescape), or of a JSON "\udcff" escape
        return f"contains a lone surrogate (U+{ord(text[err.start]):04X}) at character {err.start}; it is not text"
    return None


def check_text(text, what: str) -> str:
    """``text`` itself when it is a usable string; otherwise :class:`TextInputError` saying why."""
    if not isinstance(text, str):
        raise TextInputError(f"{what} must be text, got {type(text).__name__}")
    problem = text_problem(text)
    if problem:
        raise TextInputError(f"{what} {problem}")
    return text


def finite_number(value, what: str) -> float:
    """``value`` as a float; anything that is not a finite number raises :class:`TextInputError`."""
    if isinstance(value, bool):
        raise TextInputError(f"{what} must be a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise TextInputError(f"{what} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise TextInputError(f"{what} must be a finite number, got {value!r}")
    return number
