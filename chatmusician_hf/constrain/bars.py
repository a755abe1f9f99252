"""Bar lines, variant endings and the end of the tune, by abc2midi's rules (``abc2midi -c``).

genmidi.c ``checkbar``/``softcheckbar``: the first bar of a voice may be short or long (a pickup); a single bar
line ``|`` checks the bar; the "soft" bar lines ``||``, ``|]``, ``[|``, ``|:``, ``:|``, ``::`` let a short bar
continue across them (a repeat that splits a bar); at ``:|`` the repeated section is replayed (:mod:`.repeats`).
An ending not played on the current pass (:mod:`.endings`) is skipped with the bar line that closes it.
"""

from __future__ import annotations

from quicktions import Fraction

from ..abc.lexicon import (
    BAR_REP,
    DIGITS,
    DOUBLE,
    DOUBLE_REP,
    REP_BAR,
    SINGLE,
    SOFT_BARS,
    THICK_THIN,
    THIN_THICK,
)
from .durations import unplayed
from .endings import start_ending
from .notes import bar_allowed, finish_element
from .repeats import (
    BAR_EVENT,
    ENDING_STOPS,
    closes_second_ending,
    pass_after_repeat,
    record,
    repeat_can_close,
    replay_repeat,
    start_repeat,
)
from .state import (
    AFTER_MULTI_REST,
    AGAIN,
    BAR,
    BODY_LINE_START,
    COLON_BAR,
    COMMENT,
    CONTINUATION,
    CONTINUED_LINE,
    DOUBLE_BAR,
    ELEMENT,
    ENDING,
    EXPECT_REPEAT,
    MUSIC,
    SKIP_OPEN,
    SLUR,
    ZERO,
    TrackerState,
)

_EIGHTH = Fraction(1, 8)
# Contexts where a tune may end (with the element or bar line being read closed first).
_ENDABLE = frozenset({MUSIC, BODY_LINE_START, COMMENT, AFTER_MULTI_REST, CONTINUATION, CONTINUED_LINE})


def bar_would_pass(s: TrackerState, kind: str) -> bool:
    """Every state the tracker accepts must have a legal continuation, so a repeat sign whose replay would
    fail is refused at its first character, not when the character after it arrives."""
    return bar(s.copy(), kind)


# the characters of a bar line: "|" "||" "|]" "|:" ":|" "::" ":|]" ":||" and "|1" ":|2" endings
def bar_pending(s: TrackerState, c: str):
    if c == "|":
        s.ctx = DOUBLE_BAR
        return not s.strict or bar_would_pass(s, DOUBLE) or bar_would_pass(s, BAR_REP)
    if c == "]":
        s.ctx = MUSIC
        return bar(s, THIN_THICK)
    if c == ":":
        s.ctx = MUSIC
        return bar(s, BAR_REP)
    s.ctx = MUSIC
    return bar(s, SINGLE) and _after_bar_line(s, c)


def _after_bar_line(s: TrackerState, c: str):
    """The character after a bar line that it does not belong to: a digit starts an ending ("|1", ":|2"),
    anything else is read again in the music."""
    return start_ending(s, c) if c in DIGITS else AGAIN


def double_bar(s: TrackerState, c: str):
    s.ctx = MUSIC
    if c == ":":  # ||: reads as a start repeat
        return bar(s, BAR_REP)
    if not bar(s, DOUBLE):
        return False
    return AGAIN


def colon(s: TrackerState, c: str):
    if c == "|":
        s.ctx = COLON_BAR
        return bar_would_pass(s, REP_BAR)
    if c == ":":
        s.ctx = MUSIC
        return bar(s, DOUBLE_REP)
    if s.strict:
        return False  # a lone ":" does nothing (abc2midi ignores it): strict mode does not write it
    s.ctx = MUSIC
    return AGAIN


def colon_bar(s: TrackerState, c: str):
    s.ctx = MUSIC
    if not bar(s, REP_BAR):
        return False
    if c == "]":  # :|] is drawn differently but repeats the same way
        return True
    if c == "|":
        s.ctx = DOUBLE_BAR  # :|| and :||: (end and start of repeats)
        return True
    return _after_bar_line(s, c)


def bar(s: TrackerState, kind: str) -> bool:
    """A bar line of ``kind`` after the current bar: abc2midi's checkbar/softcheckbar, and the repeat replay."""
    if not bar_allowed(s):
        return False
    if kind == BAR_REP and s.expect_repeat:
        return False  # abc2midi: "found another |: after a |:"
    if kind == DOUBLE_REP and s.repeat_closed and not s.expect_repeat:
        return False  # abc2midi: "found :: before |:"
    if kind == REP_BAR and s.strict and _assumes_repeat(s):
        return False
    if s.skip_open and (kind in (BAR_REP, DOUBLE_REP) or (kind == REP_BAR and s.expect_repeat)):
        return False  # abc2midi skips an ending not played on this pass with the bar line that ends it
    if s.in_varend and s.expect_repeat and kind not in (SINGLE, REP_BAR, DOUBLE_REP) and _mid_bar(s):
        return False  # the replay skips the ending up to this bar line: the rest of its bar would be short
    s.prev_element = False
    s.last = None
    skipped = unplayed(s)
    s.off_beat_close = off_beat(s, s.bar)
    if not skipped and not _check_bar(s, kind):
        return False
    record(s, (BAR_EVENT, kind, s.seg))
    s.seg = ZERO
    s.after_bar = True
    if kind in ENDING_STOPS:
        s.in_varend = s.skip_open = False
    if skipped:
        return True
    if kind in (SINGLE, DOUBLE, THIN_THICK, THICK_THIN):
        s.after_grace = False  # abc2midi takes "{a}|{b}A" (not across a repeat sign: "{a}|:{b}A")
    if kind == BAR_REP:
        start_repeat(s)
        s.pass_no, s.seen_repeat = 1, True
    elif kind == REP_BAR or kind == DOUBLE_REP:
        if not closes_second_ending(s):
            ok, carried = replay_repeat(s)
            if not ok:
                return False
            s.bar = carried
        s.pass_no = 1 if kind == DOUBLE_REP else pass_after_repeat(s)
        s.seen_repeat = True
        start_repeat(s)
        s.expect_repeat = kind == DOUBLE_REP
        s.repeat_closed = s.repeat_closed or kind == REP_BAR
    elif kind != SINGLE and not s.expect_repeat and s.seen_repeat:
        # abc2midi turns the last double bar before a :| with no |: into the start of the repeat -- once a
        # repeat sign was written in the voice: before that, it puts a |: at the voice's start (scan_for_
        # missing_repeats), so the first :| goes back there
        start_repeat(s)
        s.expect_repeat = False
    return not (s.strict and s.expect_repeat) or repeat_can_close(s)


def _assumes_repeat(s: TrackerState) -> bool:
    """A ``:|`` after a closed repeat with no ``|:`` or ``::`` since: abc2midi's fixreps warns "Assuming repeat" and
    turns the last ``||`` or ``:|`` into the start of the repeat. It stays silent once the tune has a variant ending
    (fixreps counts endings over the whole tune, never resetting), and before the voice's first repeat sign (a
    ``|:`` is put at the voice's start)."""
    return not s.expect_repeat and s.seen_repeat and not s.endings_seen


def _mid_bar(s: TrackerState) -> bool:
    return s.bar_len is not None and 0 < s.bar < s.bar_len


def off_beat(s: TrackerState, duration: Fraction) -> bool:
    """A bar of no whole number of eighth notes (of beats, in meters of shorter beats): where the accompaniment
    chords abc2midi plays may be cut. A rule of thumb for strict mode, measured with abc2midi (which accepts some
    of those, "B3/" at the end of a 3/4 tune, and none of the others)."""
    if not s.strict or s.bar_len is None or not duration:
        return False
    return (duration / min(s.bar_len / s.meter_num, _EIGHTH)).denominator != 1


def _check_bar(s: TrackerState, kind: str) -> bool:
    written, full = s.bar, s.bar_len
    if s.strict and written == 0 and s.after_bar and s.bar_lines and not _repeat_pair(s, kind):
        return False  # an empty bar, or a run of bar lines
    s.bar_lines += 1
    s.last_bar = kind
    if full is None:
        s.bar = ZERO
        return True
    if kind in SOFT_BARS and written < full and s.barno > 0 and _may_split(s, kind):
        return True  # a repeat or double bar in mid-bar: the bar continues after it
    if written != full and written != 0 and s.barno != 0:
        if kind not in _final_bar_kinds(s) or written > full or s.voices or s.expect_repeat or s.tie:
            return False  # (nothing may follow the final bar: not the :| of an open repeat, a tied note...)
        if not s.header_parts <= s.parts:
            return False  # ...nor the P: lines of parts not defined yet
        if s.strict and (written + s.pickup != full or not long_enough(s)):
            return False  # a short final bar completes the pickup, once the tune is long enough
        s.final_bar = True  # the last bar of a tune may be short even when closed with |
    if s.final_bar and s.gchords and s.off_beat_close:  # (set by bar() for this bar)
        return False
    if written > 0:
        if s.barno == 0 and written < full:
            s.pickup = written
        s.barno += 1
    s.bar = ZERO
    return True


def _final_bar_kinds(s: TrackerState) -> tuple[str, ...]:
    # (abc2midi lets a short bar go on across the soft |]: strict mode reads it as the end, as people do)
    return (SINGLE, THIN_THICK) if s.strict else (SINGLE,)


def _repeat_pair(s: TrackerState, kind: str) -> bool:
    """``:|`` then ``|:``: ``:||:``, one symbol to readers."""
    return kind == BAR_REP and s.last_bar == REP_BAR


def _may_split(s: TrackerState, kind: str) -> bool:
    """Whether a soft bar line may stand in mid-bar: in strict mode only a repeat sign, whose replay checks
    that the bar it splits is whole (a section's short last bar completing its pickup)."""
    return not s.strict or kind in (REP_BAR, DOUBLE_REP)


def _whole_at_end(s: TrackerState) -> bool:
    """Strict mode: the tune ends on a whole last bar -- closed by a bar line, full, or completing the pickup --
    once it has its bars."""
    if s.after_bar or s.bar_len is None:
        return long_enough(s)
    if s.bar == s.bar_len:
        return full_bars(s) + 1 >= s.min_bars
    return s.bar + s.pickup == s.bar_len and s.pickup and long_enough(s)


def full_bars(s: TrackerState) -> int:
    """Whole bars written in the current voice (a pickup is not one)."""
    return s.barno - (1 if s.pickup else 0)


def long_enough(s: TrackerState) -> bool:
    """The tune has the bars it must have (``min_bars``; repeats not expanded)."""
    return full_bars(s) >= s.min_bars


def end_tune(s: TrackerState, reset: bool = True) -> bool:
    """End the tune here (back to prose) if it may end; ``reset=False`` only checks (on a throwaway copy)."""
    if s.ctx == ELEMENT:
        s.ctx = MUSIC
        if not finish_element(s):
            return False
    if s.ctx == BAR:
        if not bar(s, SINGLE):
            return False
    elif s.ctx == DOUBLE_BAR:
        if not bar(s, DOUBLE):
            return False
    elif s.ctx == COLON_BAR:
        if not bar(s, REP_BAR):
            return False
    elif s.ctx == ENDING:
        return False
    if s.ctx in (BAR, DOUBLE_BAR, COLON_BAR):
        s.ctx = MUSIC
    if s.ctx not in _ENDABLE:
        return False
    if (
        s.broken
        or s.tup_left
        or s.chord
        or s.grace
        or s.deco_pending
        or s.tie
        or (s.after_grace and s.strict)  # abc2midi: "No note found to follow grace notes"
        or not s.n_elements
        or not s.header_parts <= s.parts  # abc2midi: "Part not defined"
        or (s.gchords and (s.off_beat_close or off_beat(s, s.bar)))
    ):
        return False
    if s.strict and (not _whole_at_end(s) or s.slur or s.any_voice(SLUR)):
        return False
    if s.expect_repeat or s.any_voice(EXPECT_REPEAT):
        return False  # abc2midi: "Missing :| at end of tune"
    if s.skip_open or s.any_voice(SKIP_OPEN):
        return False  # abc2midi: "Cannot find :| || [| or |] to close variant ending"
    if reset:
        s.reset()
    return True
