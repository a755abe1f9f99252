"""The characters of ABC music and the field letters: what each symbol is, as abc2midi reads it."""

from __future__ import annotations

import re

import regex

NOTE_LETTERS = frozenset("ABCDEFGabcdefg")
REST_LETTERS = frozenset("zx")
MULTI_REST_LETTERS = frozenset("ZX")
DIGITS = frozenset("0123456789")  # (str.isdigit() would take other scripts' digits too)
ACCIDENTALS = frozenset("^_=")
# ABC 2.1 decoration shortcuts (~ roll, H fermata, L accent, M/P mordents, O coda, S segno, T trill, u/v bowing,
# . staccato), and the letters ABC reserves for user symbols (h-w, H-W), which abc2midi ignores with a warning.
DECORATION_SHORTCUTS = frozenset(".~HLMOPSTuv")
# abc2midi lengthens a note under a fermata: its bar then overflows, and a broken rhythm on it is an error ("Notes
# not equal durations"). Strict mode writes no fermata.
STRICT_SHORTCUTS = DECORATION_SHORTCUTS - {"H"}
RESERVED_SYMBOLS = frozenset("hijklmnopqrstuvwHIJKLMNOPQRSTUVW")

# Field letters: those a tune may start with when X: is left out; those that may stand on their own line in the
# body, and inside [ ] in a music line.
TUNE_START_FIELDS = frozenset("XTMLK")
BODY_FIELDS = frozenset("KLMPQTVWwIrs")  # N: is "Field not allowed in tune body" for abc2midi
INLINE_FIELDS = frozenset("KLMPQVIr")
# The field letters abc2midi reads without an error or a warning wherever they stand (not I: instructions, U:
# symbols, nor the letters it ignores as text): those strict mode writes, after X:.
STRICT_FIELDS = frozenset("ABCDEFGHKLMNOPQRSTVWZ")

# Bar line kinds. The "soft" ones let a short bar continue across them (abc2midi, genmidi.c softcheckbar).
SINGLE, DOUBLE, THIN_THICK, THICK_THIN, BAR_REP, REP_BAR, DOUBLE_REP = "|", "||", "|]", "[|", "|:", ":|", "::"
SOFT_BARS = frozenset({DOUBLE, THIN_THICK, THICK_THIN, BAR_REP, REP_BAR, DOUBLE_REP})

# A bar line symbol, runs included ("|||", ":||:", "[|]"); and the numbers of a variant ending ("1", "1,3", "1-2")
BAR_LINE = r":*\[?\|+\]?:*|:*\[\|:*|::+"
ENDING_NUMBERS = r"\d+(?:[-,]\d+)*"

# A field line: its letter ("+" continues the previous field) and its value.
FIELD_LINE = re.compile(r"^([A-Za-z+]):(.*)$")

# abc2midi's built-in chord names (store.c: setup_chordnames); anything else in quotes starting with a note letter
# is an error for abc2midi ("Unrecognized chord name").
CHORD_QUALITIES = (
    "", "m", "7", "m7", "m7b5", "maj7", "M7", "6", "m6", "aug", "+", "aug7", "dim", "dim7", "9", "m9", "maj9", "M9",
    "11", "dim9", "sus", "sus4", "sus9", "sus2", "7sus2", "7sus4", "7sus9", "5",
)  # fmt: skip
_QUALITY = "|".join(regex.escape(q) for q in sorted(CHORD_QUALITIES, key=len, reverse=True) if q)
# A chord symbol ("Am7", "G/B") or an annotation placed with ^ _ < > @ (free text, never a chord for abc2midi).
CHORD_SYMBOL = regex.compile(rf"[A-G][#b]?(?:{_QUALITY})?(?:/[A-G][#b]?)?|[\^_<>@][^\"\n%\\]{{0,40}}|[0-5]")
# Any quoted text: abc2midi reads what is not a chord symbol as an annotation (with an error message that does
# not change the music).
LENIENT_CHORD_SYMBOL = regex.compile(r'[^"\n]{0,200}')
# abc2midi takes any text after a fingering digit 0-5 ("04", "2nd time"); "6" or "9" is an error for it.
FINGERING = regex.compile(r'[0-5][^"\n]{0,39}')
# Decoration names between ! ! or + + (ABC 2.1 §4.14 and the dynamics/navigation words of the corpus).
DECORATION = regex.compile(r"[A-Za-z0-9.()<>:'-]{1,20}")
# The decorations abc2midi 4.84 reads without a warning ("instruction !x! ignored" for the rest of ABC 2.1's),
# the fermata aside: what strict mode writes.
STANDARD_DECORATIONS = (
    "trill", "mordent", "turn", "arpeggio", "accent", "wedge", "breath", "ppp", "pp", "p", "mp", "mf",
    "f", "ff", "fff", "sfz", "crescendo(", "crescendo)", "diminuendo(", "diminuendo)", "<(", "<)", ">(", ">)",
    "ped", "ped-up",
)  # fmt: skip
STRICT_DECORATION = regex.compile("|".join(regex.escape(name) for name in STANDARD_DECORATIONS))


def without_comment(value: str) -> str:
    """A field value without its ``%`` comment."""
    return value.split("%", 1)[0]
