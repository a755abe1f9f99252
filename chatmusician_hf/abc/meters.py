"""Meters (``M:``) and what follows from them: the bar length, the default unit note length, the tuplet ratio.

Two readings of a meter, one value. *Lenient* is abc2midi's (parseabc.c ``readsig``, abc2midi 4.84): ``C`` or
``c`` is 4/4 and ``C|`` 2/2, ``none`` (or ``None``) is free meter, and a numerator may be a sum of parts, with or
without parentheses and spaces (``(2+3)/8``, ``2+3/8``, ``3 / 4``); what follows the meter is ignored; a zero, or
a denominator that is not a power of two, is an error. *Strict* is what the decoding tracker lets a model write:
``C``, ``C|``, ``none`` or ``N/D`` (``N`` a sum of up to two-digit parts, ``D`` a power of two up to 64), nothing
else on the line.
"""

from __future__ import annotations

import re
from typing import NamedTuple

import regex
from quicktions import Fraction

from .lexicon import without_comment

# Strict grammar, matched while the value is typed (``regex`` with partial=True): a prefix that can still become
# valid is accepted, one that cannot is rejected at the character that breaks it.
METER_VALUE = regex.compile(r"\s*(?:C\|?|none|(?:[1-9]\d?\+)*[1-9]\d?/(?:64|32|16|8|4|2|1))\s*")
# abc2midi's readsig, as a grammar: numerator parts (summed; not all zero), skipped spaces, then a denominator
# and whatever follows it, or (no "/": denominator 1, with a warning) whatever follows but "s" or "l" ("s and l in
# M: field not supported").
_POWER_OF_TWO = "1024|512|256|128|64|32|16|8|4|2|1"
_NUMERATOR = r"\(?\s*(?:0+\s*\+?\s*)*\d*[1-9]\d*(?:\s*\+?\s*\d+)*\s*\)?\s*"
LENIENT_METER_VALUE = regex.compile(
    r"\s*(?:(?:none|None|[Cc]\|?)[^%]*"
    rf"|{_NUMERATOR}(?:/\s*0*(?:{_POWER_OF_TWO})(?:[^\dsl%][^%]*)?|(?:[^\d/sl%][^%]*)?))\s*"
)
_PARTS = re.compile(r"\(?\s*(\d+(?:\s*\+?\s*\d+)*)\s*\)?\s*(?:/\s*(\d+))?")


class Meter(NamedTuple):
    """A meter as abc2midi plays it: the bar length in whole notes (None: free meter) and the numerator
    abc2midi's rules look at (``(2+3)/8`` has 5; ``C`` 4, ``C|`` 2; free meter counts as 4/4)."""

    bar_length: Fraction | None
    numerator: int

    def text(self) -> str:
        """A canonical spelling: ``6/8`` (not ``3/4``: the numerator is kept), ``none`` for free meter."""
        if self.bar_length is None:
            return "none"
        return f"{self.numerator}/{self.numerator / self.bar_length}"


COMMON_TIME = Meter(Fraction(1), 4)  # also what a tune with no M: field has
CUT_TIME = Meter(Fraction(1), 2)
FREE_METER = Meter(None, 4)


class MeterError(ValueError):
    """An ``M:`` value abc2midi reports as an error (or, with ``strict``, one strict mode does not write)."""


def parse_meter(value: str, strict: bool = False) -> Meter:
    """The meter of an ``M:`` value (a ``%`` comment allowed); :class:`MeterError` for an unreadable one."""
    text = without_comment(value).strip()
    grammar = METER_VALUE if strict else LENIENT_METER_VALUE
    if grammar.fullmatch(text) is None:
        raise MeterError(f"unreadable meter {value.strip()!r}")
    if text.startswith(("none", "None")):
        return FREE_METER
    if text[:2] in ("C|", "c|"):
        return CUT_TIME
    if text[:1] in ("C", "c"):
        return COMMON_TIME
    top, bottom = _PARTS.match(text).groups()
    numerator = sum(int(part) for part in re.split(r"[\s+]+", top) if part)
    return Meter(Fraction(numerator, int(bottom or 1)), numerator)


def default_unit_length(bar_length: Fraction | None) -> Fraction:
    """ABC 2.1 §3.1.7: with no ``L:``, a meter below 3/4 means sixteenths, otherwise eighths (free meter:
    eighths)."""
    if bar_length is not None and bar_length < Fraction(3, 4):
        return Fraction(1, 16)
    return Fraction(1, 8)


def tuplet_ratio(p: int, q: int | None, numerator: int) -> Fraction | None:
    """The factor a tuplet ``(p:q`` applies to its notes' lengths, ``q/p``. With no ``q``, abc2midi's default
    (store.c ``event_tuple``): 3 for (2 (4 (8, 2 for (3 (6, and for (5 (7 (9 3 when the meter's numerator is a
    multiple of 3 (3/4, 6/8, 9/8...), else 2; None (no tuplet: abc2midi reports an error) for other ``p``."""
    if p < 1:
        return None
    if q is None:
        if p in (2, 4, 8):
            q = 3
        elif p in (3, 6):
            q = 2
        elif p in (5, 7, 9):
            q = 3 if numerator % 3 == 0 else 2
        else:
            return None
    return Fraction(q, p)
