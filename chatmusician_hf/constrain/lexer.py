"""A music line: which symbol each character starts, and the symbols read here (``[`` openers, quoted chord
symbols and annotations, ``!decorations!``, ``(`` slurs and tuplets). Notes and durations are read in
:mod:`.notes` and :mod:`.durations`, bar lines in :mod:`.bars`."""

from __future__ import annotations

from ..abc.lexicon import (
    ACCIDENTALS,
    BAR_REP,
    CHORD_SYMBOL,
    DECORATION_SHORTCUTS,
    DIGITS,
    DOUBLE,
    DOUBLE_REP,
    FINGERING,
    INLINE_FIELDS,
    LENIENT_CHORD_SYMBOL,
    MULTI_REST_LETTERS,
    NOTE_LETTERS,
    REP_BAR,
    RESERVED_SYMBOLS,
    REST_LETTERS,
    SINGLE,
    STRICT_DECORATION,
    STRICT_SHORTCUTS,
    THICK_THIN,
    THIN_THICK,
)
from ..abc.lexicon import DECORATION as DECORATION_NAME
from .bars import bar, bar_would_pass
from .durations import broken_start, can_start_note, grace_closable, tuplet_start
from .endings import start_ending, start_mid_bar_ending
from .header import clean_for_field
from .notes import MULTI_REST, NOTE, REST, bar_allowed, open_chord, slur_depth, start_note
from .state import (
    ACCIDENTAL,
    AGAIN,
    BAR,
    BODY_LINE_START,
    COLON,
    COMMENT,
    CONTINUATION,
    DECORATION,
    GRACE_OPEN,
    INLINE_FIELD_COLON,
    LEFT_BRACKET,
    MUSIC,
    PAREN,
    QUOTED,
    STARS,
    ZERO,
    TrackerState,
)

MAX_QUOTED_CHARS = 40
# What may follow a decoration shortcut: abc2midi reads ~{g}A, L(3ABc, ~"C"A, ~!trill!A as "Malformed note"
_AFTER_DECORATION = frozenset("ABCDEFGabcdefgzx^_=[") | DECORATION_SHORTCUTS


def music(s: TrackerState, c: str) -> bool:
    if s.deco_pending and c not in _AFTER_DECORATION and not (c == "(" and s.deco_slur_ok):
        return False  # (abc2midi takes a slur after a staccato dot: ".(AB)", not "~(AB)" nor ".(3ABc")
    if c in NOTE_LETTERS:
        return start_note(s, c, NOTE)
    if c == " " or c == "\t" or (c == "`" and not s.strict):
        return True  # abc2midi allows spaces around > and before a tie ("A > B", "A4 -A4"); it ignores "`" with a
        # warning
    if c == "|":
        s.ctx = BAR
        # which bar line this is, the next character tells: one of them must pass (not the case of a short
        # bar in an ending while a :| is due, say)
        return bar_allowed(s) and (
            not s.strict or any(bar_would_pass(s, kind) for kind in (SINGLE, DOUBLE, THIN_THICK, BAR_REP))
        )
    if c in ACCIDENTALS:
        if len(s.tie) > 1:
            return False  # a chord a tie waits for: one note cannot hold its pitches
        s.acc = c
        s.ctx = ACCIDENTAL
        return can_start_note(s)
    if c in REST_LETTERS:
        return start_note(s, c, REST)
    if c == "\n":
        return end_line(s)
    if c == "[":
        s.ctx = LEFT_BRACKET
        if s.strict and s.after_grace:
            return False  # (no chord, inline field or bar line between a grace group and its host)
        return not s.broken or can_start_note(s)
    if c == "(":
        s.ctx = PAREN
        return s.slur < slur_depth(s) and (not s.broken or can_start_note(s))
    if c == ")":
        if s.strict and (not s.slur or s.n_elements - s.slur_from < 2):
            return False  # an unmatched ")", a slur over one note or none: zero-length filler, not phrasing
        # abc2midi ignores an unmatched ")" without a message (after a tuplet "(3ABc)", say)
        s.slur = max(0, s.slur - 1)
        return True
    if c == ">" or c == "<":
        return broken_start(s, c)
    if c == "-":
        if not s.prev_element:
            return False
        s.prev_element = False
        if s.strict and not s.last_pitches:
            return False  # a tied rest
        if s.strict and s.deco_at == s.n_elements - 1:
            return False  # a decorated note: abc2midi plays it split and finds no note to tie ("Cannot find note
            # before tie", "Could not find note to be tied")
        s.tie = s.last_pitches  # abc2midi: "Could not find note to be tied" unless the next note matches
        return True
    if c == '"':
        s.ctx = QUOTED
        s.fbuf = ""
        s.prev_element = False
        return True
    if c == "{":
        if s.grace or s.tie or (s.after_grace and s.strict):
            return False  # abc2midi: no tie across a grace group, "Intervening note needed between grace notes"
        if s.strict and (s.broken or s.tup_left or not grace_closable(s, ZERO)):
            return False  # (a host note must fit the bar, with a length nothing else changes)
        s.grace = True
        s.grace_n = 0
        s.grace_len = ZERO
        s.ctx = GRACE_OPEN
        s.prev_element = False
        return True
    if (c in "!+" or c in DECORATION_SHORTCUTS) and s.strict and (s.after_grace or s.tie):
        # abc2midi splits a staccato, trilled or rolled note: a grace group would outlast its host, and a tie
        # would find no note ("Could not find note to be tied")
        return False
    if c in "!+" and s.strict and not can_start_note(s):
        return False  # a decoration waits for its note, which must fit
    if c in "!+" or c in DECORATION_SHORTCUTS:
        s.deco_at = s.n_elements
    if c == "!" or c == "+":
        s.ctx = DECORATION
        s.deco_close = c
        s.fbuf = ""
        s.prev_element = False
        return True
    if c in (STRICT_SHORTCUTS if s.strict else DECORATION_SHORTCUTS) or (c in RESERVED_SYMBOLS and not s.strict):
        if c == "." and s.broken and not s.broken_staccato and s.strict:
            return False  # the right-hand note of a broken rhythm is staccato only if the left one is
        s.prev_element = False
        s.staccato = s.staccato or c == "."
        s.deco_slur_ok = c == "." and (s.deco_slur_ok or not s.deco_pending)
        s.deco_pending = s.strict  # abc2midi: "Malformed note" when no note follows a shortcut
        return not s.strict or can_start_note(s)  # ...so the note must fit
    if c == ":":
        s.ctx = COLON
        if not s.strict:  # a lone ":" (not :| nor ::) is ignored by abc2midi without a message
            return bar_allowed(s)
        return bar_allowed(s) and (bar_would_pass(s, REP_BAR) or bar_would_pass(s, DOUBLE_REP))
    if c in MULTI_REST_LETTERS:
        return start_note(s, c, MULTI_REST)
    if c == "%":
        if not end_line_ok(s):
            return False
        s.ctx = COMMENT
        return True
    if c == "\\":
        s.ctx = CONTINUATION  # (abc2midi takes "A>\\" + newline + "B")
        return True
    if c == "y":
        s.prev_element = False
        return True
    if c == "*" and not s.strict:  # "*" at the end of a line: an old line-break mark (parseabc.c checkend)
        s.ctx = STARS
        s.fbuf = ""
        return end_line_ok(s)
    return False


def end_line_ok(s: TrackerState) -> bool:
    # (a > may end the line: its right-hand note starts the next)
    return not (s.chord or s.grace or s.deco_pending)


def end_line(s: TrackerState) -> bool:
    if not end_line_ok(s):
        return False
    s.ctx = BODY_LINE_START  # (abc2midi takes a > or a tie at the start of the next line: "B2\n>A2")
    return True


def left_bracket(s: TrackerState, c: str):
    """After ``[``: a chord, an inline field, ``[|`` or a ``[1`` ending."""
    if s.deco_pending and not (c in NOTE_LETTERS or c in ACCIDENTALS):
        return False
    if c == "|":
        s.ctx = MUSIC
        s.after_thick = True
        return bar(s, THICK_THIN)
    if c in DIGITS:
        return start_ending(s, c) if s.after_bar else start_mid_bar_ending(s, c)
    if c.isascii() and c.isalpha() and c in INLINE_FIELDS and c not in NOTE_LETTERS:
        if s.strict and not s.after_bar:
            return False  # (strict: a change of key or meter at the start of a bar, where the music has room for it)
        if not clean_for_field(s, c):
            return False
        s.fletter = c
        s.ctx = INLINE_FIELD_COLON
        return True
    if c in NOTE_LETTERS or c in ACCIDENTALS:
        if not open_chord(s):
            return False
        return AGAIN
    return False


def paren(s: TrackerState, c: str):
    """After ``(``: a tuplet's digit, or anything after the ``(`` of a slur."""
    if c in DIGITS:
        return tuplet_start(s, c)
    if s.slur >= slur_depth(s):
        return False
    s.slur += 1  # (a slur may open between the notes of a broken rhythm or a tie: "a(<f", "A4(-A4)")
    s.slur_from = s.n_elements
    s.ctx = MUSIC
    return AGAIN


def quoted(s: TrackerState, c: str) -> bool:
    if c == '"':
        s.ctx = MUSIC
        return _quoted_ok(s, s.fbuf, partial=False)
    if not s.fbuf and c in NOTE_LETTERS:  # a chord symbol
        s.gchords = True
    if c == "\n" or (len(s.fbuf) >= MAX_QUOTED_CHARS and s.strict):
        return False
    s.fbuf += c
    return _quoted_ok(s, s.fbuf, partial=True)


def _quoted_ok(s: TrackerState, text: str, partial: bool) -> bool:
    grammar = CHORD_SYMBOL if s.strict else LENIENT_CHORD_SYMBOL
    if grammar.fullmatch(text, partial=partial) is not None:
        return True
    return FINGERING.fullmatch(text, partial=partial) is not None


def decoration(s: TrackerState, c: str) -> bool:
    if c == "\n" and s.deco_close == "!" and not s.fbuf.strip():
        s.ctx = MUSIC  # "!" at the end of a line: the old ABC line break
        return end_line(s)
    grammar = STRICT_DECORATION if s.strict else DECORATION_NAME
    if c == s.deco_close:
        s.ctx = MUSIC
        return grammar.fullmatch(s.fbuf) is not None
    s.fbuf += c
    return grammar.fullmatch(s.fbuf, partial=True) is not None
