"""Field lines: the tune header up to ``K:``, and the fields of the body (``V:`` lines, inline ``[K:D]``...).

A field value is judged while it is typed, by the grammars of the ABC core (:mod:`chatmusician_hf.abc`) matched
partially: a prefix that can still become valid is accepted, one that cannot is rejected at the character that
breaks it. Strict mode takes the strict grammars (what a model may write), lenient mode abc2midi's own. What a
value means is applied when it ends: ``M:`` and ``L:`` set the bar and unit lengths, ``V:`` switches voices,
``P:`` names and defines parts, and the header's ``K:`` starts the body.
"""

from __future__ import annotations

import regex

from ..abc.keys import HEADER_KEY_VALUE, KEY_VALUE, STRICT_HEADER_KEY_VALUE, STRICT_KEY_VALUE
from ..abc.lengths import LENIENT_UNIT_LENGTH_VALUE, UNIT_LENGTH_VALUE, parse_unit_length
from ..abc.lexicon import STRICT_FIELDS, without_comment
from ..abc.meters import LENIENT_METER_VALUE, METER_VALUE, default_unit_length, parse_meter
from .state import (
    BODY,
    BODY_LINE_START,
    FIELD_COLON,
    FIELD_VALUE,
    HEADER,
    HEADER_COMMENT,
    HEADER_LINE_START,
    MUSIC,
    TrackerState,
)

MAX_FIELD_CHARS = 200
REFERENCE_VALUE = regex.compile(r"\s*\d{1,6}\s*")
PARTS_VALUE = regex.compile(r"\s*[A-Z](?:[A-Z]|[2-9])*\s*")  # (strict: "A", "ABA", "A2B"; abc2midi reads more)
# The value grammars of the fields other than K: (strict, lenient); the fields without one take any text.
_GRAMMARS = {
    "M": (METER_VALUE, LENIENT_METER_VALUE),
    "L": (UNIT_LENGTH_VALUE, LENIENT_UNIT_LENGTH_VALUE),
    "X": (REFERENCE_VALUE, REFERENCE_VALUE),
    "P": (PARTS_VALUE, None),
}
GRAMMAR_FIELDS = frozenset("K") | frozenset(_GRAMMARS)
# Strict mode: header fields a tune states once, titles (a title and an alternative), and field lines in all: a model
# that repeats them is writing filler, not a header (the corpus: 2 titles at most in 12,932 of 12,945 tunes, 16 header
# lines at most in 12,908).
ONCE_IN_HEADER = STRICT_FIELDS - frozenset("TNZVW")
MAX_TITLES = 2
MAX_HEADER_FIELDS = 16
MAX_HEADER_CHARS = 400  # (the corpus: 363 at the 99th percentile)
MAX_TEXT_VALUE_CHARS = 80  # a text field's value (the corpus: 75 at the 99.9th percentile)
# Text fields that may hold bar lines: lyrics (aligned to the bars by them) and notes (which quote bars).
BAR_TEXT_FIELDS = frozenset("wWN")
# The fields that set what the music is in: where one is required, strict mode does not change it in the body.
MUSICAL_FIELDS = frozenset("KLM")


def start_header(s: TrackerState) -> bool:
    """A tune starts (its first field letter and ``:`` were read, the letter in ``fletter``)."""
    letter = s.fletter
    s.reset()
    s.mode = HEADER
    s.fletter = letter
    start_field_value(s, inline=False)
    return letter == "X" or field_allowed(s, letter)


def field_allowed(s: TrackerState, letter: str) -> bool:
    """Strict mode: a field abc2midi reads without a warning; the header's ``K:`` line after every other
    required field."""
    if s.strict and letter == "P" and s.mode == HEADER:
        return False  # (a header P: names parts the body must then define: a trap for a completion)
    if s.strict and s.mode == HEADER and not _header_has_room(s, letter):
        return False
    return not s.strict or (letter in STRICT_FIELDS and not (letter == "K" and pending_fields(s)))


def _header_has_room(s: TrackerState, letter: str) -> bool:
    if letter == "K" or (letter in s.required and letter not in s.written_fields):
        return True  # (the fields a request forces are written whatever came before them)
    if (letter in ONCE_IN_HEADER and letter in s.written_fields) or (letter == "T" and s.titles >= MAX_TITLES):
        return False
    return (s.header_fields + len(pending_fields(s)) < MAX_HEADER_FIELDS
            and s.header_chars + len(pending_header(s)) < MAX_HEADER_CHARS)


def pending_fields(s: TrackerState) -> list[str]:
    """The required fields the header has yet to write before its ``K:`` line."""
    return [code for code in s.required if code != "K" and code not in s.written_fields]


def pending_header(s: TrackerState) -> str:
    """The field lines that end the header from a line start: the pending required fields, then ``K:``."""
    lines = [f"{code}:{s.required[code][0]}\n" for code in pending_fields(s)]
    return "".join(lines) + f"K:{s.required.get('K', ('C',))[0]}\n"


def required_rest(s: TrackerState) -> str | None:
    """In the value of a required header field: the rest of a value it may take and the line end; else None."""
    if s.mode != HEADER or s.finline:
        return None
    typed = s.fbuf.lstrip()
    wanted = next((value for value in s.required.get(s.fletter, ()) if value.startswith(typed)), None)
    return None if wanted is None else wanted[len(typed) :] + "\n"


def _required_prefix_ok(s: TrackerState, letter: str, value: str, complete: bool) -> bool:
    """A required field's value is one asked for (spaces around it aside)."""
    values = s.required.get(letter) if s.strict and s.mode == HEADER else None
    if values is None:
        return True
    typed = value.lstrip()
    if complete:
        return typed.rstrip() in values
    return any(
        wanted.startswith(typed) or (typed.startswith(wanted) and not typed[len(wanted) :].strip())
        for wanted in values
    )


def start_field_value(s: TrackerState, inline: bool) -> None:
    s.ctx = FIELD_VALUE
    s.fbuf = ""
    s.finline = inline


def clean_for_field(s: TrackerState, letter: str = "") -> bool:
    """Nothing is open that a field line or an inline field would cut (a broken rhythm, a chord, a tie...)."""
    if letter == "V" and s.voice == "" and s.expect_repeat:
        return False  # the unnamed first voice could never be resumed to close its repeat
    if s.strict and letter == "V" and s.voice == "" and s.n_elements:
        return False  # abc2midi: "First V: field occurs past body" (the music before it joins that voice)
    if s.strict and letter and (letter not in STRICT_FIELDS or (letter in MUSICAL_FIELDS and letter in s.required)):
        return False  # (the key, meter or unit length asked for holds for the whole tune)
    return not (s.broken or s.chord or s.grace or s.tie or (s.after_grace and s.strict))


# header: field lines (and comment lines) up to the K: line
def header_line_start(s: TrackerState, c: str) -> bool:
    if c == "%":
        s.ctx = HEADER_COMMENT
        if s.strict:  # a comment line is a header line to the caps: the tiny model repeated one 15 times
            if not _header_has_room(s, "%"):
                return False
            s.header_fields += 1
        return True
    if c.isascii() and c.isalpha() and (c != "X" or not s.strict):
        s.fletter = c
        s.ctx = FIELD_COLON
        return field_allowed(s, c)
    if not s.strict and c != "\n":
        s.ctx = HEADER_COMMENT  # a line that is not a field: abc2midi warns "Ignoring text" and goes on
        return True
    return False


def field_colon(s: TrackerState, c: str) -> bool:
    if c != ":" and not s.strict and s.mode == HEADER:
        s.ctx = HEADER_COMMENT  # (lenient: "N bars 13..." -- text abc2midi ignores)
        return header_comment(s, c)
    if c != ":" or s.fletter == "X":
        return False
    start_field_value(s, inline=False)
    return True


def header_comment(s: TrackerState, c: str) -> bool:
    if c == "\n":
        s.ctx = HEADER_LINE_START if s.mode == HEADER else BODY_LINE_START
        return True
    if not s.strict:
        return True
    s.header_chars += 1
    # (no %% directives: see lines.comment)
    return c != "%" and s.header_chars + len(pending_header(s)) < MAX_HEADER_CHARS


def inline_colon(s: TrackerState, c: str) -> bool:
    """The ``:`` of an inline field ``[K:``."""
    if c == ":":
        if not clean_for_field(s):
            return False
        s.prev_element = False
        start_field_value(s, inline=True)
        return True
    return False


def field_value(s: TrackerState, c: str) -> bool:
    letter = s.fletter
    if c == "\n" or (s.finline and c == "]"):
        if s.finline != (c == "]"):
            return False
        return _end_field(s, letter, s.fbuf)
    if len(s.fbuf) >= MAX_FIELD_CHARS:
        return False
    if s.finline and c in '["':
        return False
    if not s.fbuf and c in ":|" and not s.finline and letter != "w" and (s.strict or s.mode == BODY):
        # parseabc.c: "Potentially ambiguous line - either a :| repeat or a field command": abc2midi reads a body
        # line "P:|..." as music ("Malformed note"), a header one as text
        return False
    if s.strict and not _text_char_ok(s, letter, c):
        return False
    s.fbuf += c
    if not _required_prefix_ok(s, letter, s.fbuf, complete=False):
        return False
    grammar = _grammar(s, letter)
    return grammar is None or value_prefix_ok(grammar, s.fbuf)


def _text_char_ok(s: TrackerState, letter: str, c: str) -> bool:
    """Strict mode: a header value is one line of plain text, not a place to pour music or padding into."""
    if c == "|" and letter not in GRAMMAR_FIELDS and letter not in BAR_TEXT_FIELDS:
        return False  # a title or a source holding bars is music written where it is not read as music
    if s.mode != HEADER or letter in GRAMMAR_FIELDS or letter == "N":
        return True  # (notes are prose, as long as the transcriber's)
    return c != "\t" and not (c == " " and s.fbuf.endswith("  ")) and len(s.fbuf) < MAX_TEXT_VALUE_CHARS


def _grammar(s: TrackerState, letter: str):
    if letter == "K":  # abc2midi: "First K: field must specify key signature"; strict: no unknown words
        if s.mode == HEADER:
            return STRICT_HEADER_KEY_VALUE if s.strict else HEADER_KEY_VALUE
        return STRICT_KEY_VALUE if s.strict else KEY_VALUE
    grammars = _GRAMMARS.get(letter)
    return None if grammars is None else grammars[0 if s.strict else 1]


def value_prefix_ok(grammar, value: str) -> bool:
    """True while ``value`` (a field value being typed, comment allowed after ``%``) can still be valid."""
    if "%" in value:
        return grammar.fullmatch(without_comment(value)) is not None
    return grammar.fullmatch(value, partial=True) is not None


def value_complete(grammar, value: str) -> bool:
    return grammar.fullmatch(without_comment(value)) is not None


def _end_field(s: TrackerState, letter: str, value: str) -> bool:
    if s.strict and s.mode == HEADER and not any(c.isalnum() for c in value):
        return False  # an empty field line, or one of punctuation only
    grammar = _grammar(s, letter)
    if grammar is not None and not value_complete(grammar, value):
        return False
    if not _required_prefix_ok(s, letter, value, complete=True):
        return False
    in_header = s.mode == HEADER
    if in_header:
        s.written_fields |= {letter}
        s.header_fields += 1
        s.header_chars += len(value) + 3
        s.titles += letter == "T"
    if letter == "M":
        bar_len, numerator = parse_meter(value, strict=s.strict)
        if not in_header and bar_len is not None and s.bar > bar_len:
            return False  # a meter change in mid-bar would leave the bar overfull: no way to go on
        if in_header:
            s.header_meter = (bar_len, numerator)
        s.bar_len, s.meter_num = bar_len, numerator
        if in_header and s.header_unit is None:
            s.unit = default_unit_length(bar_len)
    elif letter == "L":
        unit = parse_unit_length(value, strict=s.strict)
        if in_header:
            s.header_unit = unit
        s.unit = unit
    elif letter == "P":
        if not _part_field(s, value):
            return False
        s.in_varend = s.skip_open = False  # a part closes a variant ending
    elif letter == "V":
        name = value.split("%", 1)[0].strip().split(" ", 1)[0]
        if not name:
            return False
        if in_header:
            if s.first_voice is None:
                s.first_voice = name
        elif not s.switch_voice(name):
            return False
    if in_header:
        if letter == "K":
            _start_body(s)
        else:
            s.ctx = HEADER_LINE_START
    else:
        s.ctx = MUSIC if s.finline else BODY_LINE_START
    return True


def _part_field(s: TrackerState, value: str) -> bool:
    """``P:`` in the header names the order of parts (``P:ABA``), each of which the body must define with its
    own ``P:A`` line; a header ``P:`` of one part is an error for abc2midi (it belongs after ``K:``)."""
    value = value.split("%", 1)[0].strip()
    if s.mode == HEADER:
        s.header_parts = frozenset(c for c in value if c.isupper())
        return not s.strict or len(value) != 1
    if value[:1].isupper():
        s.parts |= {value[0]}
    return True


def _start_body(s: TrackerState) -> None:
    s.mode = BODY
    s.header_unit = s.header_unit or default_unit_length(s.header_meter[0])
    s.voice = s.first_voice or ""
    s.reset_voice()
    s.ctx = BODY_LINE_START
