"""Lengths: a note's length suffix (``A3/2``), the unit note length (``L:``), broken rhythm (``A>B``).

A length is a multiple of the unit note length, an exact fraction. Both readings follow abc2midi (parseabc.c
``readlen`` and ``read_L_unitlen``, abc2midi 4.84); where a reading must be stricter it says so.
"""

from __future__ import annotations

import regex
from quicktions import Fraction

from .lexicon import without_comment

MAX_LENGTH_NUMBER = 64  # the largest numerator or denominator strict mode writes (A64, A/64)
# A note's length suffix as abc2midi's readlen reads it (a pattern to build readers with): a numerator, then "/"
# and a denominator, or slashes (each halves). Digits after a second "/" are not the suffix's: "A//4" is "A//",
# then a stray "4".
NOTE_LENGTH = r"\d*(?:/(?:\d*[1-9]\d*|0*/*))?"
# The unit note length: abc2midi plays only 1/D ("Default length must be 1/X", and "Missing /" for "L:1"), D a
# power of two; it takes a missing or zero numerator as 1, spaces after the "/", and ignores what follows D.
# Strict mode (the decoding tracker) writes 1/1 to 1/64 and nothing else.
UNIT_LENGTH_VALUE = regex.compile(r"\s*1/(?P<d>16|32|64|1|2|4|8)\s*")
LENIENT_UNIT_LENGTH_VALUE = regex.compile(
    r"\s*0*1?/\s*0*(?P<d>16|32|64|128|256|512|1024|1|2|4|8)(?:[^\d%][^%]*)?\s*"
)
# (left, right) multipliers of a broken rhythm > >> >>> (swapped for < << <<<): ABC 2.1 §4.4, as abc2midi plays it
BROKEN_FACTORS = {
    1: (Fraction(3, 2), Fraction(1, 2)),
    2: (Fraction(7, 4), Fraction(1, 4)),
    3: (Fraction(15, 8), Fraction(1, 8)),
}


class LengthError(ValueError):
    """An ``L:`` value abc2midi reports as an error and ignores (or, with ``strict``, one strict mode does not
    write)."""


def is_power_of_two(number: int) -> bool:
    return number > 0 and number & (number - 1) == 0


def note_length(suffix: str) -> Fraction | None:
    """The multiplier of a note length suffix (``""`` 1, ``3`` 3, ``/`` 1/2, ``//`` 1/4, ``3/2``, ``/4``), read
    as abc2midi does (a zero numerator is 1; ``/0`` is ``/``); None where abc2midi reports an error: a
    denominator that is not a power of two (``A/3``). ``suffix`` is one :data:`NOTE_LENGTH` matches in full."""
    top, slash, bottom = suffix.partition("/")
    numerator = int(top or 0) or 1
    if not slash:
        return Fraction(numerator)
    digits = bottom.rstrip("/")
    denominator = int(digits or 0)
    if denominator == 0:  # no digits (or 0): 2, doubled by each further "/"
        denominator = 2 ** (len(bottom) - len(digits) + 1)
    elif not is_power_of_two(denominator):
        return None
    return Fraction(numerator, denominator)


def length_spellings(multiplier: Fraction) -> list[str]:
    """The ways to write a note length of ``multiplier`` units (``""`` for 1, ``3/2``, ``/``, ``/4``, ``//``)
    within strict mode's limits."""
    n, d = multiplier.numerator, multiplier.denominator
    if not is_power_of_two(d) or n > MAX_LENGTH_NUMBER or d > MAX_LENGTH_NUMBER:
        return []
    if d == 1:
        return ["" if n == 1 else str(n)]
    spellings = [f"{n}/{d}"]
    if n == 1:
        spellings += [f"/{d}", "/" * (d.bit_length() - 1)]
    if d == 2:
        spellings.append(f"{n}/")
    return spellings


# abcm2ps draws a note or rest (parse.c identify_note, abcparse.c parse_len) whose length in whole notes is k/128,
# k = m * 2**j with m 1, 3, 7 or 15 (a plain note or one with 1 to 3 dots), j + dots <= 9 (a dotted longa at most)
# and under 10000/1536: it refuses any other with "Note too short", "Invalid note duration", "Note too much
# dotted", "Note too long" or "Bad length", though abc2midi plays them. Strict mode writes only these.
SHORTEST_DRAWN = Fraction(1, 128)
_DOTS = {1: 0, 3: 1, 7: 2, 15: 3}


def drawable(whole: Fraction) -> bool:
    """abcm2ps can draw a note of ``whole`` whole notes (its written length, broken rhythm applied)."""
    k = whole / SHORTEST_DRAWN
    if k.denominator != 1 or k <= 0 or whole * 1536 > 10000:
        return False
    k = int(k)
    j = (k & -k).bit_length() - 1
    dots = _DOTS.get(k >> j)
    return dots is not None and j + dots <= 9


def parse_unit_length(value: str, strict: bool = False) -> Fraction:
    """The unit note length of an ``L:`` value (a ``%`` comment allowed); :class:`LengthError` for one abc2midi
    reports as an error."""
    text = without_comment(value).strip()
    grammar = UNIT_LENGTH_VALUE if strict else LENIENT_UNIT_LENGTH_VALUE
    match = grammar.fullmatch(text)
    if match is None:
        raise LengthError(f"unreadable unit note length {value.strip()!r}")
    return Fraction(1, int(match.group("d")))
