"""The values of the ABC fields the tracker interprets (``M:``, ``L:``, ``K:``, ``X:``) and quoted chord symbols.

Each grammar is a ``regex`` pattern used with ``partial=True``, so a value can be judged while it is being written:
a prefix that can still become valid is accepted, one that cannot is rejected at the character that breaks it.
The grammars follow what abc2midi 4.84 accepts without an error (measured with ``abc2midi -c``).
"""

from __future__ import annotations

import regex
from quicktions import Fraction

_MODES = "m|min|minor|maj|major|mix|mixolydian|dor|dorian|phr|phrygian|lyd|lydian|loc|locrian|ion|ionian|aeo|aeolian|exp"
# abc2midi (parseabc.c parsekey) reads a key word up to a space, or up to "=" (and "^"/"_" after two characters,
# so "Dmix^f" is "Dmix" then "^f"), and finds its mode by the first three letters, case-insensitively: "Dmixm" and
# "DMixolydian" are D mixolydian; "m" alone is minor. What follows the key is clef/transposition words or explicit
# accidentals (``K:D clef=bass``, ``K:G ^f``, ``K:Dmix=c``).
_ABC2MIDI_MODE = r"(?i:(?:maj|min|mix|dor|phr|lyd|loc|ion|aeo)[^\s=^_%]*|m)"
_REST = r"(?:\s+[^\s%][^%]*)"
_KEY_WORD = rf"(?:none|H[Pp])(?:{_REST})?|[A-G](?:(?:[#b]{_ABC2MIDI_MODE}?|{_ABC2MIDI_MODE})(?:{_REST}|[=^_][^%]*)?|(?:{_REST}|=[^%]*)?)"
KEY_VALUE = regex.compile(rf"\s*(?:{_KEY_WORD})?\s*")
# The first K: (the header's) must name a key: abc2midi takes "K:" or "K:clef=bass" alone as no key at all.
HEADER_KEY_VALUE = regex.compile(rf"\s*(?:{_KEY_WORD})\s*")
# Strict mode (generation) allows after the key only the words abc2midi knows: anything else it reads as a mode
# ("Unknown mode") -- a model that runs on after "K:A" writes music there.
_KEY_WORDS = r"(?:\s+(?:(?:clef|middle|transpose|octave|t|m|stafflines)=\S+|[\^_=]{1,2}[a-gA-G]|treble|bass|alto|tenor|perc|exp))*"
_KEY = rf"(?:none|H[Pp]|[A-G][#b]?(?:\s*(?i:{_MODES}))?)"
STRICT_KEY_VALUE = regex.compile(rf"\s*(?:{_KEY}{_KEY_WORDS}|(?:clef|middle|transpose|octave)=\S+)?\s*")
STRICT_HEADER_KEY_VALUE = regex.compile(rf"\s*{_KEY}{_KEY_WORDS}\s*")
METER_VALUE = regex.compile(r"\s*(?:C\|?|none|(?:[1-9]\d?\+)*[1-9]\d?/[1-9]\d?)\s*")
LENGTH_VALUE = regex.compile(r"\s*1(?:/(?:1|2|4|8|16|32|64))?\s*")
REFERENCE_VALUE = regex.compile(r"\s*\d{1,6}\s*")

# abc2midi's built-in chord names (store.c: setup_chordnames); anything else in quotes starting with a note letter
# is an error for abc2midi ("Unrecognized chord name").
CHORD_QUALITIES = (
    "", "m", "7", "m7", "m7b5", "maj7", "M7", "6", "m6", "aug", "+", "aug7", "dim", "dim7", "9", "m9", "maj9", "M9",
    "11", "dim9", "sus", "sus4", "sus9", "sus2", "7sus2", "7sus4", "7sus9", "5",
)  # fmt: skip
_QUALITY = "|".join(regex.escape(q) for q in sorted(CHORD_QUALITIES, key=len, reverse=True) if q)
# A chord symbol ("Am7", "G/B") or an annotation placed with ^ _ < > @ (free text, never a chord for abc2midi).
CHORD_SYMBOL = regex.compile(rf"[A-G][#b]?(?:{_QUALITY})?(?:/[A-G][#b]?)?|[\^_<>@][^\"\n]{{0,40}}|[0-5]")
# Lenient mode takes any quoted text: abc2midi reads what is not a chord symbol as an annotation (with an error
# message that does not change the music).
LENIENT_CHORD_SYMBOL = regex.compile(r'[^"\n]{0,200}')
# Decoration names between ! ! or + + (ABC 2.1 §4.14 and the dynamics/navigation words of the corpus).
DECORATION = regex.compile(r"[A-Za-z0-9.()<>:'-]{1,20}")

FIELD_VALUE_GRAMMARS = {"K": KEY_VALUE, "M": METER_VALUE, "L": LENGTH_VALUE, "X": REFERENCE_VALUE}


def _without_comment(value: str) -> str:
    return value.split("%", 1)[0]


def value_prefix_ok(grammar, value: str) -> bool:
    """True while ``value`` (a field value being typed, comment allowed after ``%``) can still be valid."""
    if "%" in value:
        return grammar.fullmatch(_without_comment(value)) is not None
    return grammar.fullmatch(value, partial=True) is not None


def value_complete(grammar, value: str) -> bool:
    return grammar.fullmatch(_without_comment(value)) is not None


def parse_meter(value: str) -> tuple[Fraction | None, int]:
    """``(bar length in whole notes or None for free meter, numerator)``; ``C`` is 4/4 and ``C|`` is 2/2."""
    value = _without_comment(value).strip()
    if value == "C":
        return Fraction(4, 4), 4
    if value == "C|":
        return Fraction(2, 2), 2
    if value in ("none", ""):
        return None, 0
    top, bottom = value.split("/")
    numerator = sum(int(part) for part in top.split("+"))
    return Fraction(numerator, int(bottom)), numerator


def default_unit_length(bar_length: Fraction | None) -> Fraction:
    """ABC 2.1 §3.1.7: with no ``L:``, a meter below 3/4 means sixteenths, otherwise eighths (free meter: eighths)."""
    if bar_length is not None and bar_length < Fraction(3, 4):
        return Fraction(1, 16)
    return Fraction(1, 8)


def parse_length(value: str) -> Fraction:
    value = _without_comment(value).strip()
    if "/" in value:
        top, bottom = value.split("/")
        return Fraction(int(top), int(bottom))
    return Fraction(int(value))


def is_compound(numerator: int) -> bool:
    """abc2midi's rule for the default tuplet ratio of (5, (7, (9: compound when the numerator is 6, 9, 12..."""
    return numerator % 3 == 0 and numerator > 3
