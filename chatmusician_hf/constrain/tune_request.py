"""A tune request: the header fields a tune must have, its minimum number of bars, its form.

:mod:`.request` reads one from a prompt and an explicit option; the tracker enforces it. Values are checked with
:mod:`chatmusician_hf.abc`, the readers of meters, unit lengths and keys the rest of the project uses.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from ..abc.keys import parse_key
from ..abc.lengths import parse_unit_length
from ..abc.meters import parse_meter
from ..chat_format import FIELD_NAMES
from ..errors import ChatMusicianError
from .tracker import AbcTracker

# The order fields take in a header: T: first, K: last (ABC 2.1 §3).
HEADER_ORDER = "T" + "".join(code for code in FIELD_NAMES if code not in "TK") + "K"
# ABC 2.1 §3.1.8: "1/4=120", "3/8=80 \"Slow\"", "\"Allegro\" 1/4=120", "1/4 3/8=40"; also the legacy bare "120".
_TEMPO = re.compile(r'\s*(?:"[^"]*"\s*)?(?:(?:\d+/\d+\s*)+=\s*\d+|\d+)(?:\s*"[^"]*")?\s*|\s*"[^"]*"\s*')
# (the strict readings of M: and L:, which the tracker writes the requested fields in)
_READERS = {
    "K": parse_key,
    "M": functools.partial(parse_meter, strict=True),
    "L": functools.partial(parse_unit_length, strict=True),
}


class RequestError(ChatMusicianError, ValueError):
    """An explicit header option that cannot be used; the message says which field and why, on one line."""


@dataclass(frozen=True)
class TuneRequest:
    """What a tune must be. ``fields``: header lines to write, in header order (a code may repeat, as ``T:`` does);
    ``meter_choices``: the meters a tune type allows when no one meter was asked for; ``min_bars``: written bars
    (repeats not expanded); ``form``: ``AABB``-style."""

    fields: tuple[tuple[str, str], ...] = ()
    meter_choices: tuple[str, ...] = ()
    min_bars: int | None = None
    form: str | None = None

    def value(self, code: str) -> str | None:
        """The first value asked for field ``code``, or None."""
        return next((value for name, value in self.fields if name == code), None)

    def header_lines(self) -> list[str]:
        return [f"{code}:{value}" for code, value in self.fields]

    def __bool__(self) -> bool:
        return bool(self.fields or self.meter_choices or self.min_bars or self.form)


def ordered(fields) -> tuple[tuple[str, str], ...]:
    """``fields`` in header order; fields of one code keep their order."""
    return tuple(sorted(fields, key=lambda field: HEADER_ORDER.index(field[0])))


def value_problem(code: str, value: str) -> str | None:
    """Why ``value`` cannot be the value of field ``code``, or None when it can."""
    if not value.strip() or "\n" in value:
        return "the value must be one non-empty line"
    if code in _READERS:
        try:
            _READERS[code](value)
        except ValueError as err:
            return str(err)
    elif code == "Q" and not _TEMPO.fullmatch(value):
        return f"unreadable tempo {value!r}"
    if not AbcTracker(strict=True).feed(f"X:1\n{code}:{value}\n"):
        return "music-aware decoding does not write it (ABC 2.1 with nothing abc2midi warns about)"
    return None


def valid_form(form: str) -> bool:
    """``AABB``, ``ABAC``, ``AAB``: two to eight sections, each new letter the next of the alphabet from A."""
    if not 2 <= len(form) <= 8:
        return False
    seen = ""
    for letter in form:
        if letter not in seen:
            if letter != "ABCDEFGH"[len(seen)]:
                return False
            seen += letter
    return True


def merge(preferred: TuneRequest, fallback: TuneRequest) -> TuneRequest:
    """``preferred``, with what ``fallback`` asks for where ``preferred`` is silent, field by field."""
    codes = {code for code, _ in preferred.fields}
    fields = ordered(preferred.fields + tuple(field for field in fallback.fields if field[0] not in codes))
    has_meter = any(code == "M" for code, _ in fields)
    return TuneRequest(
        fields=fields,
        meter_choices=() if has_meter else preferred.meter_choices or fallback.meter_choices,
        min_bars=preferred.min_bars or fallback.min_bars,
        form=preferred.form or fallback.form,
    )
