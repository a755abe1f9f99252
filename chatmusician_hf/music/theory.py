"""The bits of ABC's musical semantics the layer needs: meters, unit lengths, key signatures, note lengths.

Everything is exact (``fractions.Fraction`` of a whole note) so bar durations compare without rounding.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fractions import Fraction

NATURAL_SEMITONES = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
LETTERS = "CDEFGAB"

# Position on the circle of fifths of each natural tonic's major key; a sharp adds 7, a flat takes 7 away.
LETTER_FIFTHS = {"F": -1, "C": 0, "G": 1, "D": 2, "A": 3, "E": 4, "B": 5}
MODE_OFFSETS = {
    "maj": 0,
    "ion": 0,
    "mix": -1,
    "dor": -2,
    "min": -3,
    "m": -3,
    "aeo": -3,
    "phr": -4,
    "loc": -5,
    "lyd": 1,
}
SHARP_ORDER = "FCGDAEB"
FLAT_ORDER = "BEADGCF"

ACCIDENTAL_SEMITONES = {"^^": 2, "^": 1, "=": 0, "_": -1, "__": -2}

_KEY_RE = re.compile(r"^\s*([A-G])([#b]?)\s*([A-Za-z]*)(.*)$")
# clef=bass, middle=d, transpose=-2, ... after the key (ABC 2.1 §4.6); "Dmix=c" is a key with an accidental
_SETTING_RE = re.compile(
    r"^(clef|middle|m|transpose|t|octave|stafflines|staffscale|cue|instrument|sound|shift)=", re.IGNORECASE
)
_EXPLICIT_ACC_RE = re.compile(r"(\^\^|\^|__|_|=)([A-Ga-g])")


class KeyError_(ValueError):
    """A K: field that names no key this layer understands (internal; reported, never raised to callers)."""


@dataclass(frozen=True)
class Key:
    """A key signature: tonic spelling, mode, and the accidental (semitones) carried by each letter."""

    tonic: str  # "C", "F#", "Bb"; "" for K:none / highland pipes
    mode: str  # canonical three-letter mode ("maj", "min", "dor", ...) or "none"
    accidentals: dict[str, int] = field(default_factory=dict)

    @property
    def tonic_pitch_class(self) -> int | None:
        if not self.tonic:
            return None
        return (NATURAL_SEMITONES[self.tonic[0]] + {"#": 1, "b": -1}.get(self.tonic[1:], 0)) % 12

    def text(self) -> str:
        return self.tonic + ("" if self.mode in ("maj", "none") else self.mode)


C_MAJOR = Key("C", "maj", {})


def fifths_accidentals(fifths: int) -> dict[str, int]:
    if fifths >= 0:
        return {letter: 1 for letter in SHARP_ORDER[:fifths]}
    return {letter: -1 for letter in FLAT_ORDER[:-fifths]}


def parse_key(value: str) -> Key:
    """Parse the value of a ``K:`` field (``G``, ``Ador``, ``F#m``, ``Bb mix``, ``D exp ^f``, ``none``, ``HP``).

    Clef and other ``name=value`` settings after the key are ignored. Raises :class:`KeyError_` when the tonic or
    mode is not understood.
    """
    value = value.split("%", 1)[0].strip()
    words = [w for w in value.split() if not _SETTING_RE.match(w)]
    text = " ".join(words)
    if not text or text.lower() == "none":
        return Key("", "none", {})
    if text in ("HP", "Hp"):
        # Highland pipes: HP writes no signature, Hp writes F# C# G natural (ABC 2.1 §3.1.14).
        return Key("", "none", {"F": 1, "C": 1} if text == "Hp" else {})
    match = _KEY_RE.match(text)
    if not match:
        if text.split()[0].lower() in ("treble", "bass", "alto", "tenor", "perc", "clef"):
            return C_MAJOR
        raise KeyError_(f"unknown key {value!r}")
    letter, sign, mode_word, rest = match.groups()
    tonic = letter + sign
    mode_key = mode_word.lower()[:3] if mode_word else "maj"
    if mode_word.lower() == "m":
        mode_key = "min"
    if mode_key not in MODE_OFFSETS:
        if mode_word.lower() == "exp":
            mode_key = "maj"
        else:
            raise KeyError_(f"unknown mode {mode_word!r} in key {value!r}")
    mode = {"ion": "maj", "aeo": "min", "m": "min"}.get(mode_key, mode_key)
    fifths = LETTER_FIFTHS[letter] + {"#": 7, "b": -7}.get(sign, 0) + MODE_OFFSETS[mode_key]
    if not -7 <= fifths <= 7:
        raise KeyError_(f"key {value!r} would need more than 7 sharps or flats")
    accidentals = {} if "exp" in text.lower().split() else fifths_accidentals(fifths)
    # Explicit accidentals after the key ("K:D ^g") modify the signature.
    for acc, note in _EXPLICIT_ACC_RE.findall(rest):
        accidentals[note.upper()] = ACCIDENTAL_SEMITONES[acc]
    accidentals = {k: v for k, v in accidentals.items() if v}
    return Key(tonic, mode, accidentals)


def parse_meter(value: str) -> Fraction | None:
    """Bar length of an ``M:`` field as a fraction of a whole note; ``None`` for free meter (``none``).

    Raises ValueError for an unreadable meter.
    """
    value = value.split("%", 1)[0].strip()
    if not value or value.lower() == "none":
        return None
    if value == "C":
        return Fraction(1)
    if value == "C|":
        return Fraction(1)
    match = re.fullmatch(r"\(?\s*([\d+\s]+)\s*\)?\s*/\s*(\d+)", value)
    if not match:
        raise ValueError(f"unreadable meter {value!r}")
    numerator = sum(int(part) for part in match.group(1).replace(" ", "+").split("+") if part)
    denominator = int(match.group(2))
    if numerator <= 0 or denominator <= 0:
        raise ValueError(f"unreadable meter {value!r}")
    return Fraction(numerator, denominator)


def parse_unit_length(value: str) -> Fraction:
    value = value.split("%", 1)[0].strip()
    match = re.fullmatch(r"(\d+)\s*/\s*(\d+)", value)
    if not match or int(match.group(1)) == 0 or int(match.group(2)) == 0:
        if re.fullmatch(r"\d+", value) and int(value) > 0:
            return Fraction(int(value))
        raise ValueError(f"unreadable unit note length {value!r}")
    return Fraction(int(match.group(1)), int(match.group(2)))


def default_unit_length(meter: Fraction | None) -> Fraction:
    """ABC 2.1 §3.1.7: 1/16 when the meter is below 3/4, else 1/8 (also with no or free meter)."""
    if meter is not None and meter < Fraction(3, 4):
        return Fraction(1, 16)
    return Fraction(1, 8)


def length_multiplier(text: str) -> Fraction:
    """The length suffix of a note: ``""`` 1, ``2`` 2, ``/`` 1/2, ``//`` 1/4, ``3/2`` 3/2, ``/4`` 1/4."""
    if not text:
        return Fraction(1)
    match = re.fullmatch(r"(\d*)(/*)(\d*)", text)
    if not match:
        return Fraction(1)
    num_s, slashes, den_s = match.groups()
    numerator = int(num_s) if num_s else 1
    if not slashes:
        return Fraction(numerator)
    if den_s:
        denominator = int(den_s) * (2 ** (len(slashes) - 1))
    else:
        denominator = 2 ** len(slashes)
    return Fraction(numerator, max(denominator, 1))
