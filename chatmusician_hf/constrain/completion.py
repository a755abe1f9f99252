"""The completion search: a short text after which the tune may end.

The tracker's invariant is that every state it accepts has such a completion (no dead ends, no traps): the logits
processor relies on it to finish a tune before the token budget runs out, and to have a legal token to force
should every candidate of the model be illegal. A depth-first search that tries first whole moves that close what
is open (:func:`_fills`), then the characters that close the current context, then any ASCII character that is
not an opener; every step is checked by the tracker itself, so the result is always legal.
``tests/test_constrain_tracker.py`` fuzzes the invariant.
"""

from __future__ import annotations

from itertools import chain, islice

from quicktions import Fraction

from ..abc.lengths import MAX_LENGTH_NUMBER, length_spellings
from ..abc.lexicon import BODY_FIELDS
from . import state
from .bars import full_bars
from .dispatch import can_end, feed
from .header import pending_header, required_rest
from .state import EXPECT_REPEAT, SKIP_OPEN, TrackerState

BAR_OF_REST_CHARS = 6  # the longest whole bar of rest a completion writes ("z12|"; "z3/2|" does not occur)
MAX_COMPLETION_CHARS = 64  # completion() gives up past this (the invariant says it never needs to)
COMPLETION_NODES = 4000  # characters completion() may try in all
SHALLOW_COMPLETION_DEPTHS = (1, 2, 6)  # completion() first looks for completions this short

# Characters tried first, per context: those that close what is open. Openers (" ! + { [ ( and field letters)
# are never tried where they are not closers, so the greedy completion cannot loop on them.
_BODY_CLOSERS = "\n|:]z"
_CLOSERS = {
    state.HEADER_LINE_START: "K",
    state.FIELD_COLON: ":",
    state.FIELD_VALUE: "\n]1/",
    state.HEADER_COMMENT: "\n",
    state.COMMENT: "\n",
    state.CONTINUED_COMMENT: "\n",
    state.CONTINUATION: "\n",
    state.CONTINUED_LINE: "\nz|",
    state.STARS: "\n",
    state.BODY_LINE_START: "\nz:|",
    state.BODY_LETTER: ":z",
    state.QUOTED: '"B',
    state.DECORATION: "!+",
    state.GRACE_OPEN: "B",
    state.GRACE: "}B",
    state.CHORD: "]B",
    state.ACCIDENTAL: "B",
    state.ELEMENT: "\n|]}/",
    state.TUPLET: "z",
    state.PAREN: "z",
    state.LEFT_BRACKET: "B",
    state.INLINE_FIELD_COLON: ":",
    state.BROKEN_RHYTHM: "B",
    state.ENDING: " ",
}
_ANY_CLOSER = "".join(chr(code) for code in range(32, 127) if chr(code) not in "\"!+{[(%\\,'" + "".join(BODY_FIELDS))


def completion(
    s: TrackerState, limit: int = MAX_COMPLETION_CHARS, nodes: int = COMPLETION_NODES
) -> str | None:
    """A short text after which the tune may end (``""`` where it already may); None if none is found."""
    # the greedy deep search on a tenth of the budget (it usually succeeds at once), then short completions,
    # then the deep search again on the whole budget: its first try (a line end after which the next line needs
    # much) can spend the budget where two more characters would do
    limit += bars_missing(s) * BAR_OF_REST_CHARS  # (the whole bars a tune must still have)
    shallow = ((depth, nodes // 10) for depth in SHALLOW_COMPLETION_DEPTHS)
    for depth, budget in chain(((limit, nodes // 10),), shallow, ((limit, nodes),)):
        out: list[str] = []
        if _complete(s, out, min(depth, limit), [budget]):
            return "".join(out)
    return None


def _complete(s: TrackerState, out: list[str], limit: int, budget: list[int]) -> bool:
    if can_end(s):
        return True
    if len(out) >= limit:
        return False
    for piece in chain(_fills(s), _CLOSERS.get(s.ctx, _BODY_CLOSERS), _ANY_CLOSER):
        budget[0] -= 1
        if budget[0] < 0:
            return False
        trial = s.copy()
        if feed(trial, piece):
            out.append(piece)
            if _complete(trial, out, limit, budget):
                return True
            out.pop()
    return False


def _fills(s: TrackerState):
    """Whole moves, which a character search would take long to find (yielded lazily: the first one usually
    completes the tune): the rest of the header (a ``K:`` line), the ``:|`` an open repeat needs, after a rest
    that brings the bar to any length; a rest that fills the bar (or leaves room for the rest of a tuplet)."""
    if s.mode == state.HEADER:
        if s.ctx == state.HEADER_LINE_START:
            yield pending_header(s)
        elif s.ctx == state.FIELD_VALUE:
            rest = required_rest(s)
            if rest is not None:
                yield rest
            elif s.fletter == "K" and not s.fbuf.strip():
                yield "C"
        return
    if s.chord and s.tie and s.ctx in (state.CHORD, state.ELEMENT):  # a chord a tie waits for: its notes
        yield "".join(sorted(s.tie - s.chord_pitches)) + "]"
        return
    if s.ctx not in (state.MUSIC, state.BODY_LINE_START, state.CONTINUED_LINE, state.TUPLET):
        return
    if s.chord or s.grace or s.broken:
        return
    if s.ctx == state.BODY_LINE_START:  # another voice left with an open repeat: go back to it; define parts
        yield from (
            f"V:{name}\n"
            for name, saved in s.voices.items()
            if name and (saved[EXPECT_REPEAT] or saved[SKIP_OPEN])
        )
        yield from (f"P:{part}\n" for part in sorted(s.header_parts - s.parts))
    if s.tie:  # the tied note (or chord), as long as fits
        pitches = "".join(sorted(s.tie))
        yield from ((pitches if len(s.tie) == 1 else f"[{pitches}]") + length for length in ("1", "/", "//"))
    if s.skip_open and not s.expect_repeat:  # a skipped ending waits for a soft bar line
        yield "||"
    if s.bar_len is None:
        if s.expect_repeat:
            yield ":|"
        return
    if s.tup_left:
        yield next(_rests(s), "z/" + str(MAX_LENGTH_NUMBER))
        return
    if s.slur:
        yield ")"
        yield from (rest + ")" for rest in islice(_rests(s), 2))  # (strict: a slur holds two notes at least)
    if not s.expect_repeat:
        if s.after_bar and not s.bar and bars_missing(s):
            yield _bar_of_rest(s) * bars_missing(s)
        yield from (rest + "|" for rest in islice(_rests(s), 1))
        return
    yield ":|"
    yield from (rest + ":|" for rest in _rests(s))
    yield from (rest + "|" for rest in islice(_rests(s), 1))


def bars_missing(s: TrackerState) -> int:
    """Whole bars the tune must still have: all of its minimum while its header is written."""
    if s.mode == state.HEADER:
        return s.min_bars
    return max(0, s.min_bars - full_bars(s)) if s.mode == state.BODY and s.bar_len is not None else 0


def _bar_of_rest(s: TrackerState) -> str:
    """A whole bar's rest and its bar line (``z8|``)."""
    spellings = length_spellings(s.bar_len / s.unit) if s.bar_len is not None else []
    return f"z{spellings[0] or 1}|" if spellings else "z|"


def _rests(s: TrackerState):
    """Rests that fit the room left in the bar, for :func:`_fills`: the one that fills it exactly, then rests
    of k/4 units, longest first."""
    factor = s.tup_factor if s.tup_left else Fraction(1)
    room = (s.bar_len - s.bar) / (s.tup_left or 1) / (s.unit * factor)  # in units
    exact = length_spellings(room) if room > 0 else []
    if exact:
        yield "z" + (exact[0] or "1")  # z1, not z: at a line start "z:" reads as a field
    for quarters in range(min(int(room * 4), 4 * MAX_LENGTH_NUMBER), 0, -1):  # rests of k/4 units
        spelling = length_spellings(Fraction(quarters, 4))
        if spelling and Fraction(quarters, 4) != room:
            yield "z" + (spelling[0] or "1")
