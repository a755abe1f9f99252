"""Keys (``K:``): tonic, mode and key signature, read as abc2midi reads them (parseabc.c ``parsekey``, the mode
table of music_utils.c, abc2midi 4.84), and the grammars the decoding tracker checks a ``K:`` value with."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import regex

from .lexicon import without_comment

NATURAL_SEMITONES = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
ACCIDENTAL_SEMITONES = {"^^": 2, "^": 1, "=": 0, "_": -1, "__": -2}
# Position on the circle of fifths of each natural tonic's major key; a sharp adds 7, a flat takes 7 away.
LETTER_FIFTHS = {"F": -1, "C": 0, "G": 1, "D": 2, "A": 3, "E": 4, "B": 5}
SHARP_ORDER = "FCGDAEB"
FLAT_ORDER = "BEADGCF"
# abc2midi's modes (music_utils.c mode/modeshift): a mode is named by its first three letters, any case ("Dor",
# "dorian", "DORIANISH"), or "m" alone for minor; each moves the signature along the circle of fifths.
MODE_FIFTHS = {
    "maj": 0, "min": -3, "m": -3, "aeo": -3, "loc": -5, "ion": 0, "dor": -2, "phr": -4, "lyd": 1, "mix": -1,
}  # fmt: skip
MODE_NAMES = {
    "maj": "major", "ion": "ionian", "min": "minor", "aeo": "aeolian", "dor": "dorian", "phr": "phrygian",
    "lyd": "lydian", "mix": "mixolydian", "loc": "locrian",
}  # fmt: skip
_SAME_MODE = {"ion": "maj", "aeo": "min", "m": "min"}
_THREE_LETTER = "|".join(MODE_NAMES)

# Grammars, matched while a value is typed (``regex`` with partial=True). Lenient (abc2midi's tolerance): a key
# word is read up to a space, or up to "=" (and "^"/"_" after two characters, so "Dmix^f" is "Dmix" then "^f");
# what follows the key is clef/transposition words or explicit accidentals (``K:D clef=bass``, ``K:G ^f``,
# ``K:Dmix=c``), and words abc2midi ignores with a warning.
_ABC2MIDI_MODE = rf"(?i:(?:{_THREE_LETTER})[^\s=^_%]*|m)"
_REST = r"(?:\s+[^\s%][^%]*)"
_KEY_WORD = (
    rf"(?:none|[Hh][Pp])(?:{_REST})?"
    rf"|[A-G](?:(?:[#b]{_ABC2MIDI_MODE}?|{_ABC2MIDI_MODE})(?:{_REST}|[=^_][^%]*)?|(?:{_REST}|=[^%]*)?)"
)
KEY_VALUE = regex.compile(rf"\s*(?:{_KEY_WORD})?\s*")
# The first K: (the header's) must name a key: abc2midi takes "K:" or "K:clef=bass" alone as no key at all.
HEADER_KEY_VALUE = regex.compile(rf"\s*(?:{_KEY_WORD})\s*")
# Strict mode (generation) allows after the key only the words abc2midi knows (it calls any other word written
# onto the tonic an unknown mode, and ignores a separate one) -- a model that runs on after "K:A" writes music there.
_MODE_SPELLINGS = "|".join(["m"] + [w for mode, name in MODE_NAMES.items() for w in (mode, name)])
_KEY_WORDS = (
    r"(?:\s+(?:(?:clef|middle|transpose|octave|t|m|stafflines)=\S+|[\^_=]{1,2}[a-gA-G]"
    r"|treble|bass|alto|tenor|perc|exp))*"
)
_KEY = rf"(?:none|H[Pp]|[A-G][#b]?(?:\s*(?i:{_MODE_SPELLINGS}))?)"
STRICT_KEY_VALUE = regex.compile(rf"\s*(?:{_KEY}{_KEY_WORDS}|(?:clef|middle|transpose|octave)=\S+)?\s*")
STRICT_HEADER_KEY_VALUE = regex.compile(rf"\s*{_KEY}{_KEY_WORDS}\s*")

# clef=bass, middle=d, transpose=-2, ... (ABC 2.1 §4.6), and the clef names that may stand alone
_SETTING = re.compile(
    r"^(clef|middle|m|transpose|t|octave|stafflines|staffscale|cue|instrument|sound|shift)=", re.IGNORECASE
)
_CLEF_WORDS = ("treble", "bass", "alto", "tenor", "perc", "clef")
_TONIC = re.compile(r"([A-G])([#b]?)(.*)")
_EXPLICIT_ACCIDENTAL = re.compile(r"(\^\^|\^|__|_|=)([A-Ga-g])")


class UnknownKey(ValueError):
    """A ``K:`` value that names no key: abc2midi reports an error (or ignores it, in a tune's first ``K:``)."""


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

    def describe(self) -> str | None:
        """``A dorian``, ``F sharp minor``; None for a key with no tonic (``none``, highland pipes)."""
        if not self.tonic:
            return None
        sign = {"#": " sharp", "b": " flat", "": ""}[self.tonic[1:]]
        return f"{self.tonic[0]}{sign} {MODE_NAMES[self.mode]}"


C_MAJOR = Key("C", "maj", {})


def read_mode(word: str) -> str | None:
    """The mode a word names (abc2midi compares its first three letters, in any case), canonical; or None."""
    lower = word.lower()
    mode = lower if lower == "m" else lower[:3] if len(lower) >= 3 else None
    if mode not in MODE_FIFTHS:
        return None
    return _SAME_MODE.get(mode, mode)


def fifths_accidentals(fifths: int) -> dict[str, int]:
    if fifths >= 0:
        return {letter: 1 for letter in SHARP_ORDER[:fifths]}
    return {letter: -1 for letter in FLAT_ORDER[:-fifths]}


def _split_key_word(word: str) -> tuple[str, str]:
    """abc2midi's readword: a key word ends at "=" after its first character, or at "^"/"_" after its second
    ("Dmix=c" is "Dmix" then "=c"; "D^f" is one word, with an unknown mode)."""
    for index, char in enumerate(word):
        if (char == "=" and index >= 1) or (char in "^_" and index >= 2):
            return word[:index], word[index:]
    return word, ""


def parse_key(value: str) -> Key:
    """The key of a ``K:`` value (``G``, ``Ador``, ``F#m``, ``Bb mix``, ``D exp ^f``, ``none``, ``HP``).

    As abc2midi: a mode written onto the tonic must be one (``Cfoo`` is an error), a mode word after it is one
    if it names one (``G treble`` is G major), other words are ignored; a signature past 7 sharps or flats is
    taken 12 fifths back (``A#`` has B flat major's). Clef and other ``name=value`` settings are ignored; highland
    pipes, ``HP`` or ``Hp`` in any case, play F sharp and C sharp (ABC 2.1 §3.1.14). Raises :class:`UnknownKey`.
    """
    words = [w for w in without_comment(value).split() if not _SETTING.match(w)]
    if not words or words[0].lower() == "none":
        return Key("", "none", {})
    if words[0].lower() == "hp":  # (HP only leaves the signature unwritten: both play F sharp and C sharp)
        return Key("", "none", {"F": 1, "C": 1})
    word, explicit = _split_key_word(words[0])
    match = _TONIC.fullmatch(word)
    if match is None:
        if word.lower() in _CLEF_WORDS:
            return C_MAJOR
        raise UnknownKey(f"unknown key {value!r}")
    letter, sign, attached = match.groups()
    rest = words[1:]
    if attached:
        mode = read_mode(attached)
        if mode is None:
            raise UnknownKey(f"unknown mode {attached!r} in key {value!r}")
    elif rest and read_mode(rest[0]) is not None:
        mode = read_mode(rest.pop(0))
    else:
        mode = "maj"
    fifths = LETTER_FIFTHS[letter] + {"#": 7, "b": -7}.get(sign, 0) + MODE_FIFTHS[mode]
    fifths = fifths - 12 if fifths > 7 else fifths + 12 if fifths < -7 else fifths
    accidentals = {} if "exp" in (w.lower() for w in rest) else fifths_accidentals(fifths)
    # explicit accidentals after the key ("K:D ^g", "K:Dmix=c") modify the signature
    for acc, note in _EXPLICIT_ACCIDENTAL.findall(" ".join([explicit, *rest])):
        accidentals[note.upper()] = ACCIDENTAL_SEMITONES[acc]
    accidentals = {k: v for k, v in accidentals.items() if v}
    return Key(letter + sign, mode, accidentals)
