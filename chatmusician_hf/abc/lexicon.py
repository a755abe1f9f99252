"""The characters of ABC music and the field letters: what each symbol is, as abc2midi reads it."""

from __future__ import annotations

NOTE_LETTERS = frozenset("ABCDEFGabcdefg")
REST_LETTERS = frozenset("zx")
MULTI_REST_LETTERS = frozenset("ZX")
DIGITS = frozenset("0123456789")  # (str.isdigit() would take other scripts' digits too)
ACCIDENTALS = frozenset("^_=")
# ABC 2.1 decoration shortcuts (~ roll, H fermata, L accent, M/P mordents, O coda, S segno, T trill, u/v bowing,
# . staccato), and the letters ABC reserves for user symbols (h-w, H-W), which abc2midi ignores with a warning.
DECORATION_SHORTCUTS = frozenset(".~HLMOPSTuv")
RESERVED_SYMBOLS = frozenset("hijklmnopqrstuvwHIJKLMNOPQRSTUVW")

# Field letters: those a tune may start with when X: is left out; those that may stand on their own line in the
# body, and inside [ ] in a music line.
TUNE_START_FIELDS = frozenset("XTMLK")
BODY_FIELDS = frozenset("KLMPQTVWwIrs")  # N: is "Field not allowed in tune body" for abc2midi
INLINE_FIELDS = frozenset("KLMPQVIr")

# Bar line kinds. The "soft" ones let a short bar continue across them (abc2midi, genmidi.c softcheckbar).
SINGLE, DOUBLE, THIN_THICK, THICK_THIN, BAR_REP, REP_BAR, DOUBLE_REP = "|", "||", "|]", "[|", "|:", ":|", "::"
SOFT_BARS = frozenset({DOUBLE, THIN_THICK, THICK_THIN, BAR_REP, REP_BAR, DOUBLE_REP})
