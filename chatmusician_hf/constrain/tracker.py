"""An incremental ABC state tracker: fed text one character at a time, it says whether the text is still valid.

It follows a chat answer or a plain text through three modes: *prose* (anything goes; a tune starts at a line
beginning ``X:`` or another header field ``T: M: L: K:``), the tune *header* (field lines up to ``K:``) and the
*body* (music up to a blank line, which ends the tune and returns to prose).

In the body it knows the meter and unit note length, the duration written in the current bar of each voice
(exact fractions), and whether a chord ``[``, chord symbol ``"``, grace group ``{``, decoration
``!...!``, inline field ``[K:...]``, tuplet ``(3`` or broken rhythm ``>`` is open. A character is rejected when
no valid tune can continue from it: a note that overflows the bar, a bar line closing a bar that is neither full
nor allowed to be short, a broken rhythm between notes of unequal length, an unknown chord name... The bar rules
are abc2midi's (``abc2midi -c``), so a tune the tracker accepts draws no bar warning from it.

The rules live in modules that share one :class:`~.state.TrackerState`: :mod:`.dispatch` (one step per
character), :mod:`.lines` (prose and line structure), :mod:`.header` (field lines), :mod:`.lexer` (the symbols
of a music line), :mod:`.notes` and :mod:`.durations` (elements and whether they fit), :mod:`.bars`,
:mod:`.endings` and :mod:`.repeats` (bar lines, variant endings, abc2midi's replay of repeats) and
:mod:`.completion` (the completion search); what ABC means (keys, meters, lengths, the lexicon) comes from the ABC
core, :mod:`chatmusician_hf.abc`. This class is their public face.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from quicktions import Fraction

from ..abc.meters import Meter
from . import completion as _completion
from .completion import COMPLETION_NODES, MAX_COMPLETION_CHARS, bars_missing
from .dispatch import accepts_any_char, can_end, feed
from .lines import mark_line_start
from .notes import ELEMENT_CHARS, ended
from .state import BODY_LINE_START, ELEMENT, IN_PROSE, PROSE, TrackerState

if TYPE_CHECKING:
    from .tune_request import TuneRequest

__all__ = ["AbcTracker", "COMPLETION_NODES", "ELEMENT_CHARS", "MAX_COMPLETION_CHARS"]


class AbcTracker:
    """Character-by-character ABC validity tracker. ``feed(text)`` returns False at the first illegal character.

    After a False return the tracker is in an undefined state: callers try text on a :meth:`copy`.
    """

    __slots__ = ("_state",)

    def __init__(self, strict: bool = True, request: TuneRequest | None = None):
        """``request``: the header fields every tune must have and its minimum of bars (strict mode)."""
        required: dict[str, tuple[str, ...]] = {}
        for code, value in request.fields if request else ():
            required[code] = (*required.get(code, ()), value)
        if request and request.meter_choices and "M" not in required:
            required["M"] = request.meter_choices
        self._state = TrackerState(strict, required, (request.min_bars or 0) if request else 0)

    @classmethod
    def _of(cls, state: TrackerState) -> AbcTracker:
        tracker = cls.__new__(cls)
        tracker._state = state
        return tracker

    def copy(self) -> AbcTracker:
        """An independent tracker in the same state (one dict copy: the state holds only immutable values)."""
        return AbcTracker._of(self._state.copy())

    def feed(self, text: str) -> bool:
        return feed(self._state, text)

    def can_end(self) -> bool:
        """True when the text may stop here (end of generation): prose, or a tune body that is complete."""
        return can_end(self._state)

    def completion(self, limit: int = MAX_COMPLETION_CHARS, nodes: int = COMPLETION_NODES) -> str | None:
        """A short text after which the tune may end (``""`` where it already may); None if none is found.

        Every state the tracker accepts has one (its invariant, fuzzed by ``tests/test_constrain_tracker.py``); the
        bounded search (:mod:`.completion`) finds nearly all of them.
        """
        return _completion.completion(self._state, limit, nodes)

    def ended(self) -> AbcTracker | None:
        """In a note, rest or chord being read (:attr:`in_element`): the tracker after it ends, which every
        character but those of ``ELEMENT_CHARS`` does first (feeding such a character to a copy of it is feeding
        it here); None when it may not end here. Callers trying many continuations end the element once."""
        state = ended(self._state)
        return None if state is None else AbcTracker._of(state)

    def mark_line_start(self) -> None:
        """Treat the next character as the start of a line (a chat answer starts on a fresh line)."""
        mark_line_start(self._state)

    def reset_to_prose(self, line_start: bool) -> None:
        """Drop what was read and go back to prose, at the start of a line or inside one (where a tune cannot
        start before the next line)."""
        self._state.reset()
        self._state.col = 0 if line_start else 1

    def accepts_any_char(self) -> bool:
        """True where any non-ASCII character is valid (prose, comments, field text): used for partial UTF-8."""
        return accepts_any_char(self._state)

    @property
    def in_tune(self) -> bool:
        return self._state.mode != PROSE

    @property
    def in_element(self) -> bool:
        """A note, rest or chord is being read: only ``ELEMENT_CHARS`` continue it, any other character ends it."""
        return self._state.ctx == ELEMENT

    @property
    def in_prose_line(self) -> bool:
        """Inside a prose line, past its start: text with no ``:`` and no line end cannot start a tune here."""
        s = self._state
        return s.ctx == IN_PROSE and s.col > 0

    @property
    def rhythm_open(self) -> bool:
        """A tuplet or a broken rhythm is open: some states there have no exact bar fill left (see the
        processor, which checks a completion for each candidate there)."""
        s = self._state
        return bool(s.tup_left or s.broken)

    @property
    def meter(self) -> Meter:
        """The meter the current voice is in (the header's before the body)."""
        return Meter(self._state.bar_len, self._state.meter_num)

    @property
    def unit_length(self) -> Fraction:
        """The unit note length the current voice's notes are read in."""
        return self._state.unit

    @property
    def bars_missing(self) -> int:
        """Whole bars the tune still needs before it may end (its request's minimum)."""
        return bars_missing(self._state)

    @property
    def final_bar(self) -> bool:
        """A short final bar was closed: only blanks or the end of the tune may follow."""
        return self._state.final_bar

    def tune_end(self) -> str:
        """The text that ends the tune with a blank line from here: one line end at a line start, else two."""
        return "\n" if self._state.ctx == BODY_LINE_START else "\n\n"
