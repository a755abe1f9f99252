"""abc2midi's repeats: the second pass over a repeated section, replayed from the bar lines recorded since ``|:``.

At ``:|`` abc2midi plays the section again from its start, so a short bar before ``:|`` must complete the bar the
repeat goes back to, and every bar of the second pass (with the endings played on it) is checked again (genmidi.c
``checkbar``/``softcheckbar`` on the replay; store.c ``fixreps`` and genmidi.c ``writetrack`` for the passes of the
variant endings). The tracker records, per voice, a cons list ``segs`` of events since the repeat start:
``(BAR_EVENT, kind, duration since the previous event)`` and ``(ENDING_EVENT, numbers)``.
"""

from __future__ import annotations

from quicktions import Fraction

from ..abc.lexicon import SOFT_BARS
from .state import ZERO, TrackerState

BAR_EVENT, ENDING_EVENT = "bar", "ending"
SPLIT = "split"  # the kind of the bar event that starts an ending in mid-bar: the bar goes on
# Bar lines where abc2midi stops skipping a variant ending that is not played on this pass.
ENDING_STOPS = SOFT_BARS


def record(s: TrackerState, event: tuple) -> None:
    s.segs = (s.segs, event)


def start_repeat(s: TrackerState) -> None:
    s.segs = None
    s.rep_barno = s.barno
    s.expect_repeat = True


def events(s: TrackerState) -> list:
    """The bar lines and endings recorded since the repeat start, oldest first."""
    out, node = [], s.segs
    while node is not None:
        node, event = node
        out.append(event)
    out.reverse()
    return out


def pass_after_repeat(s: TrackerState) -> int:
    """The pass abc2midi is in after this :| (genmidi.c): pass 2 replays the section; each ending played on a
    pass allows one more (up to 4), so while the ending before the :| lists the pass, the section is played
    again; the music after the :| then goes on in the last pass."""
    numbers, node = None, s.segs
    while node is not None and numbers is None:
        node, event = node
        if event[0] == ENDING_EVENT:
            numbers = event[1]
    passes = 2 if s.pass_no == 1 else s.pass_no
    while numbers is not None and passes in numbers and passes < 4:
        passes += 1
    return passes


def closes_second_ending(s: TrackerState) -> bool:
    """``:|2 ... :|``: the :| ends the second ending, which is played on the second pass; no replay."""
    first = next((e for e in events(s) if e[1:2] != (SPLIT,)), None)
    return first is not None and first[0] == ENDING_EVENT and 1 not in first[1]


def replay_repeat(s: TrackerState) -> tuple[bool, Fraction]:
    """abc2midi's second pass over the repeated section, with the short bar left before ``:|`` carried in (the
    last event is the :| itself, recorded just before this call)."""
    return replay(s, s.bar, events(s))


def repeat_can_close(s: TrackerState) -> bool:
    """While a ``:|`` is due, whether some short bar before it would let the replay of the bars written so far
    pass: the first bar the replay checks fixes that carry (``full - s``, or none), so two replays tell.
    (``::|b|``, a pickup just after a repeat sign, can never be replayed: strict mode refuses its bar line.)"""
    if s.bar_len is None or s.segs is None or closes_second_ending(s):
        return True
    recorded = events(s)
    ok, short = replay(s, ZERO, recorded)
    return ok or (0 < short < s.bar_len and replay(s, s.bar_len - short, recorded)[0])


def replay(s: TrackerState, carry: Fraction, recorded: list) -> tuple[bool, Fraction]:
    """Replay the ``recorded`` events from a bar holding ``carry``: whether every bar checks, and the bar at the
    end (at the first failing check, the bar there)."""
    full = s.bar_len
    bar, barno = carry, s.rep_barno
    i = 0
    while i < len(recorded):
        event = recorded[i]
        if event[0] == ENDING_EVENT:
            if 2 in event[1]:
                i += 1
                continue
            # skip the ending not played on pass 2, up to the next soft bar line (not itself processed)
            i += 1
            while i < len(recorded) and not (recorded[i][0] == BAR_EVENT and recorded[i][1] in ENDING_STOPS):
                i += 1
            barno += 1
            i += 1
            continue
        _, kind, seg = event
        bar += seg
        if kind == SPLIT:
            i += 1
            continue
        if full is not None:
            if kind in SOFT_BARS and bar < full and barno > 0:
                i += 1
                continue
            if bar != full and bar != 0:
                return False, bar
            if bar > 0:
                barno += 1
            bar = ZERO
        i += 1
    return True, bar
