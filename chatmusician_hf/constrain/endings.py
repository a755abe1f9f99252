"""Variant endings (``|1``, ``:|2``, ``[1``, ``[2,3``, ``[1-3``) and the passes they are played on.

abc2midi's pass logic (store.c ``fixreps``, genmidi.c ``writetrack``): the tune's first ending needs an open ``|:``
(or no repeat sign yet: abc2midi then puts ``|:`` at the start, and a ``:|`` becomes due), an ending must be closed
by a soft bar line before the next one, and an ending not played on the current pass is skipped with the bar line
that closes it (:mod:`.bars`), which must come and must not be a repeat sign.
"""

from __future__ import annotations

from ..abc.lexicon import DIGITS
from .notes import bar_allowed
from .repeats import BAR_EVENT, ENDING_EVENT, SPLIT, record, repeat_can_close
from .state import AGAIN, ENDING, MUSIC, ZERO, TrackerState


def start_ending(s: TrackerState, c: str) -> bool:
    """The first digit of a variant ending (``|1``, ``:|2``, ``[1``). Refused where abc2midi would report an
    error whatever the numbers: a second ending before a soft bar line closes the first ("Need || |: :| or ::
    to mark end of variant ending"), and the tune's first ending after a repeat has closed with no new ``|:``
    ("found [1 or like before |:"). Before any repeat sign, abc2midi puts a ``|:`` at the voice's start when
    a ``:|`` follows, so the ending makes that ``:|`` due."""
    if c == "0" or s.in_varend or s.broken:
        return False
    if s.strict and s.pass_no == 1 and c != "1":
        return False  # strict: no ending skipped on the first pass ("|3A" makes a repeat no short text closes)
    if not s.endings_seen and not s.expect_repeat:
        if not s.seen_repeat:
            s.expect_repeat = True
            if s.strict and not repeat_can_close(s):
                return False  # (the :| it makes due must be able to replay the bars from the start)
        elif s.strict or not s.header_parts:
            return False  # (abc2midi checks this only in a tune without P: parts: store.c runs fixreps when
            # parts == -1)
    s.endings_seen = True
    s.in_varend = True
    s.ctx = ENDING
    s.fbuf = c
    return True


def start_mid_bar_ending(s: TrackerState, c: str) -> bool:
    """``[1`` in mid-bar ("G2 [1 G2:| [2 G ||"): the bar goes on in the ending."""
    if s.strict or not bar_allowed(s) or s.tie:
        return False  # (strict mode: its replay is hard to complete, measured by the completion fuzz test)
    record(s, (BAR_EVENT, SPLIT, s.seg))
    s.seg = ZERO
    return start_ending(s, c)


def ending(s: TrackerState, c: str):
    if c in DIGITS or c in ",-":
        if len(s.fbuf) >= 8 or (c in ",-" and not s.fbuf[-1].isdigit()):
            return False
        if c == "-" and "-" in s.fbuf.rsplit(",", 1)[-1]:
            return False  # one range per part: "1-2-3" is not an ending list
        if s.strict and s.pass_no == 1 and s.fbuf == "1" and c in DIGITS:
            return False  # (an ending played on the first pass: 1, not 12)
        s.fbuf += c
        return True
    if not s.fbuf[-1].isdigit():
        return False
    numbers = _ending_numbers(s.fbuf)
    # an ending not played on this pass is skipped up to the next soft bar line, which must come
    s.skip_open = s.pass_no not in numbers
    record(s, (ENDING_EVENT, numbers))
    s.ctx = MUSIC
    return AGAIN


def _ending_numbers(text: str) -> frozenset[int]:
    numbers: set[int] = set()
    for part in text.split(","):
        if "-" in part:
            low, _, high = part.partition("-")
            if low and high:
                numbers.update(range(int(low), int(high) + 1))
        elif part:
            numbers.add(int(part))
    return frozenset(numbers)
