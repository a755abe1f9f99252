"""Lines: prose around tunes, and the line structure of a tune body (field or music at a line start, comments,
``\\`` continuations, the blank line that ends the tune).

A tune starts at a prose line beginning ``X:`` or another header field ``T: M: L: K:``, and ends at a blank line,
which returns to prose.
"""

from __future__ import annotations

from ..abc.lexicon import BODY_FIELDS, TUNE_START_FIELDS
from .bars import end_tune
from .header import clean_for_field, start_field_value, start_header
from .lexer import end_line, music
from .state import (
    AGAIN,
    BODY_LETTER,
    BODY_LINE_START,
    COMMENT,
    CONTINUED_COMMENT,
    CONTINUED_LINE,
    IN_PROSE,
    MUSIC,
    PROSE,
    PROSE_LETTER,
    TrackerState,
)


# prose: a tune starts at a line beginning with X: (or T: M: L: K:)
def prose(s: TrackerState, c: str) -> bool:
    if c == "\n":
        s.col = 0
        return True
    if s.col == 0 and (c == " " or c == "\t"):
        return True  # indentation (or SentencePiece's leading space) does not hide a tune's first line
    if s.col == 0 and c in TUNE_START_FIELDS:
        s.fletter = c
        s.ctx = PROSE_LETTER
    s.col += 1
    return True


def prose_letter(s: TrackerState, c: str) -> bool:
    if c == ":":
        return start_header(s)
    s.ctx = IN_PROSE
    return prose(s, c)


def mark_line_start(s: TrackerState) -> None:
    """Treat the next character as the start of a line (a chat answer starts on a fresh line)."""
    if s.mode == PROSE:
        s.ctx = IN_PROSE
        s.col = 0


# body: line start (a field line, a comment line, a blank line ending the tune, or music)
def body_line_start(s: TrackerState, c: str) -> bool:
    if c == "\n":
        return end_tune(s)
    if c == "%":
        s.ctx = COMMENT
        return True
    if c.isascii() and c.isalpha():
        probe = s.copy()
        probe.ctx = MUSIC
        if not (music(probe, c) or (c in BODY_FIELDS and clean_for_field(s, c))):
            return False
        s.fletter = c
        s.ctx = BODY_LETTER
        return True
    s.ctx = MUSIC
    return music(s, c)


def body_letter(s: TrackerState, c: str):
    """After a letter at a body line start: ``:`` makes it a field line, anything else makes it music."""
    letter = s.fletter
    if c == ":":
        if letter not in BODY_FIELDS or not clean_for_field(s, letter):
            return False
        s.prev_element = False
        start_field_value(s, inline=False)
        return True
    s.ctx = MUSIC
    if not music(s, letter):
        return False
    return AGAIN


def comment(s: TrackerState, c: str) -> bool:
    if c == "\n":
        s.ctx = BODY_LINE_START
    # strict: no "%" in a comment; abc2midi reads "%%MIDI ..." as a directive even after music on its line
    return not (s.strict and c == "%")


def continuation(s: TrackerState, c: str) -> bool:
    if c == "\n":
        s.ctx = CONTINUED_LINE  # the next line continues this one: no line-start fields
        return True
    if c == "%":
        s.ctx = CONTINUED_COMMENT
        return True
    return c == " " or c == "\t"


def continued_comment(s: TrackerState, c: str) -> bool:
    if c == "\n":
        s.ctx = CONTINUED_LINE
    return True


def continued_line(s: TrackerState, c: str) -> bool:
    """The start of a line continued by the ``\\`` before it: music goes on, but an empty line still ends the
    tune for abc2midi ("{d}\\" then a blank line: "No note found to follow grace notes")."""
    if c == "\n":
        return end_tune(s)
    s.ctx = MUSIC
    return music(s, c)


def stars(s: TrackerState, c: str) -> bool:
    """``*`` at the end of a line (lenient mode): only more stars, then blanks, up to the line end."""
    if c == "*":
        return not s.fbuf
    if c == " " or c == "\t":
        s.fbuf = c  # only blanks may follow, up to the line end
        return True
    return c == "\n" and end_line(s)
