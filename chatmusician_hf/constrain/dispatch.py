"""One step of the tracker: each character goes to the handler of the current context.

A handler returns True (the character is legal), False (it is not), or ``AGAIN`` when the character is not its
own -- it ended what was being read (a note, a bar line's kind) and changed the context -- so :func:`step` reads
it again there.
"""

from __future__ import annotations

from . import bars, durations, endings, header, lexer, lines, notes, state
from .header import GRAMMAR_FIELDS
from .state import (
    AGAIN,
    COMMENT,
    FIELD_VALUE,
    HEADER_COMMENT,
    IN_PROSE,
    MUSIC,
    PROSE,
    QUOTED,
    STARS,
    TrackerState,
)

# The C0 control characters (tab and line feed aside) and the other characters str.splitlines breaks a line at:
# strict mode writes none in a tune. (C1 characters stay: mojibake in the corpus titles is full of them.)
CONTROL_CHARS = frozenset([chr(code) for code in range(32) if chr(code) not in "\t\n"] + ["\x85", "\u2028", "\u2029"])

HANDLERS = {
    state.IN_PROSE: lines.prose,
    state.PROSE_LETTER: lines.prose_letter,
    state.HEADER_LINE_START: header.header_line_start,
    state.FIELD_COLON: header.field_colon,
    state.HEADER_COMMENT: header.header_comment,
    state.FIELD_VALUE: header.field_value,
    state.BODY_LINE_START: lines.body_line_start,
    state.BODY_LETTER: lines.body_letter,
    state.COMMENT: lines.comment,
    state.CONTINUED_COMMENT: lines.continued_comment,
    state.CONTINUATION: lines.continuation,
    state.CONTINUED_LINE: lines.continued_line,
    state.STARS: lines.stars,
    state.MUSIC: lexer.music,
    state.ACCIDENTAL: notes.accidental,
    state.ELEMENT: notes.note,
    state.AFTER_MULTI_REST: notes.after_multi_rest,
    state.BROKEN_RHYTHM: durations.broken,
    state.LEFT_BRACKET: lexer.left_bracket,
    state.INLINE_FIELD_COLON: header.inline_colon,
    state.CHORD: notes.chord,
    state.GRACE_OPEN: notes.grace_open,
    state.GRACE: notes.grace,
    state.QUOTED: lexer.quoted,
    state.DECORATION: lexer.decoration,
    state.PAREN: lexer.paren,
    state.TUPLET: durations.tuplet,
    state.ENDING: endings.ending,
    state.BAR: bars.bar_pending,
    state.DOUBLE_BAR: bars.double_bar,
    state.COLON: bars.colon,
    state.COLON_BAR: bars.colon_bar,
}


def step(s: TrackerState, c: str) -> bool:
    """Read one character; False when no valid tune can continue from it."""
    while True:
        if c in CONTROL_CHARS and s.strict and s.mode != PROSE:
            return False  # (str.splitlines and so most readers break a line at \x1c-\x1e, \x85, \u2028...)
        if s.final_bar and c not in " \t\n" and not (c == "*" and s.ctx in (MUSIC, STARS)):
            return False
        if s.after_thick:  # "[|:" is a start repeat for abc2midi, not "[|" then ":|" (strict never writes it)
            s.after_thick = False
            if c == ":" and s.strict:
                return False
        result = HANDLERS[s.ctx](s, c)
        if result is not AGAIN:
            return result


def feed(s: TrackerState, text: str) -> bool:
    read = step
    for char in text:
        if not read(s, char):
            return False
    return True


def can_end(s: TrackerState) -> bool:
    """True when the text may stop here (end of generation): prose, or a tune body that is complete."""
    if s.mode == PROSE:
        return True
    if s.mode == state.HEADER:
        return False
    return bars.end_tune(s.copy(), reset=False)


def accepts_any_char(s: TrackerState) -> bool:
    """True where any non-ASCII character is valid (prose, comments, field text): used for partial UTF-8."""
    if s.ctx in (IN_PROSE, COMMENT, HEADER_COMMENT):
        return True
    if s.ctx == FIELD_VALUE and s.fletter not in GRAMMAR_FIELDS:
        return True
    return s.ctx == QUOTED and s.fbuf[:1] in ("^", "_", "<", ">", "@")  # an annotation, not a chord symbol
