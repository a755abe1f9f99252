"""How long the elements last and whether they fit the bar: lengths being typed, broken rhythm, tuplets, the room
left in the bar. A note's duration is added to the bar when the note ends (its length is only known then), so
every check made while it is typed asks whether *some* completion of it still fits."""

from __future__ import annotations

import functools
import re

from quicktions import Fraction

from ..abc.lengths import BROKEN_FACTORS, MAX_LENGTH_NUMBER, SHORTEST_DRAWN, drawable, length_spellings
from ..abc.lexicon import DIGITS
from ..abc.meters import tuplet_ratio
from .state import AGAIN, BROKEN_RHYTHM, MUSIC, TUPLET, ZERO, TrackerState

GRACE_SHARE = 4  # abc2midi's default: a grace group takes a quarter of its length from its host (store.c)
MAX_STRICT_SLASHES = 3  # A/// (1/8 of the unit) is the shortest run of slashes strict mode writes
_DENOMINATOR_PREFIXES = frozenset({"1", "2", "4", "8", "16", "3", "32", "6", "64"})
_LENGTH = re.compile(r"(\d*)(/*)(\d*)")
_TUPLET_SPEC = re.compile(r"[2-9](?::[1-9]?(?::[1-9]?)?)?")


def unplayed(s: TrackerState) -> bool:
    """In an ending skipped on this pass, which abc2midi does not play (genmidi.c, PLAY_ON_REP): it times none
    of its bars and skips the bar line that ends it too -- no repeat, no new pass. Lenient mode follows that;
    strict mode keeps skipped endings to the meter and handles their last bar line as if it were played."""
    return s.skip_open and not s.strict


def add_element(s: TrackerState, plain: bool, duration: Fraction) -> bool:
    """A note, rest or chord (``plain``: not a chord) of ``duration`` ended: time it, with its tuplet and the
    broken rhythm it closes."""
    drawn = duration
    if s.tup_left:
        if s.strict and s.tup_note is not None and duration != s.tup_note:
            return False  # abc2midi: "Different length notes in tuple"
        s.tup_note = duration
        duration *= s.tup_factor
        s.tup_left -= 1
    right = False
    if s.broken:
        last_plain, last_duration, _ = s.last
        if last_plain and plain and last_duration != duration:
            return False  # abc2midi: "Cannot apply broken rhythm. Notes not equal durations"
        left_factor, right_factor = broken_factors(s)
        added = last_duration * (left_factor - 1) + duration * right_factor
        duration = duration * right_factor
        drawn *= right_factor
        s.broken = 0
        right = True
    else:
        added = duration
    s.last = (plain, duration, right)
    s.last_drawn = drawn
    s.n_elements += 1
    s.prev_element = True
    if not add_duration(s, added):
        return False
    if s.tup_left or not s.strict or s.bar_len is None:
        return True
    # after a tuplet the room left may be no sum of notes ((3:2:2 A B leaves 2/3 of a unit): only notes fill it
    return ((s.bar_len - s.bar) / _shortest_written(s)).denominator == 1


def add_duration(s: TrackerState, added: Fraction) -> bool:
    s.off_beat_close = False
    if unplayed(s):
        return True
    s.bar += added
    s.seg += added
    # An overfull bar can never be repaired; abc2midi lets a voice's first bar (a pickup) be any length, the
    # project's validator (and strict mode) only shorter. The notes a tuplet still owes must fit too.
    if s.bar_len is None or not s.strict:
        return True
    return s.bar + s.tup_left * shortest_note(s) <= s.bar_len


def shortest_note(s: TrackerState) -> Fraction:
    """The duration of the shortest note that can be written now (``A/64``, in a tuplet if one is open)."""
    return _shortest_written(s) * (s.tup_factor if s.tup_left else 1)


def _shortest_written(s: TrackerState) -> Fraction:
    """``A/64``; in strict mode no shorter than abcm2ps draws."""
    shortest = s.unit / MAX_LENGTH_NUMBER
    return max(shortest, SHORTEST_DRAWN) if s.strict else shortest


@functools.lru_cache(maxsize=64)
def drawn_spellings(drawn_unit: Fraction) -> tuple[tuple[str, Fraction], ...]:
    """The length suffixes strict mode writes whose note abcm2ps draws, where one unit draws as ``drawn_unit``
    whole notes, each with its multiplier."""
    multipliers = {Fraction(n, 2**e) for n in range(1, MAX_LENGTH_NUMBER + 1) for e in range(7)}
    return tuple(
        (spelling, multiplier)
        for multiplier in sorted(multipliers)
        if drawable(drawn_unit * multiplier)
        for spelling in length_spellings(multiplier)
        if spelling.count("/") <= MAX_STRICT_SLASHES
    )


def can_draw(
    s: TrackerState, length: str, drawn: Fraction, timed: Fraction | None = None, longer_than: Fraction = ZERO
) -> bool:
    """Some completion of the typed ``length`` draws (a unit drawing as ``drawn`` whole notes), is more than
    ``longer_than`` units and, when ``timed`` (a unit's duration) is given, fits the room left in the bar."""
    left = room(s) if timed is not None and s.bar_len is not None else None
    return any(
        multiplier > longer_than and spelling.startswith(length) and (left is None or timed * multiplier <= left)
        for spelling, multiplier in drawn_spellings(drawn)
    )


def broken_factors(s: TrackerState) -> tuple[Fraction, Fraction]:
    left, right = BROKEN_FACTORS[abs(s.broken)]
    return (right, left) if s.broken < 0 else (left, right)


def room(s: TrackerState) -> Fraction:
    """Duration left in the bar, after the pending change of a broken rhythm's left-hand note."""
    left = s.bar_len - s.bar
    if s.broken and s.last is not None:
        left -= s.last[1] * (broken_factors(s)[0] - 1)
    if s.tup_left > 1:
        left -= (s.tup_left - 1) * shortest_note(s)  # the tuplet's later notes need room too
    return left


def bar_is_full(s: TrackerState) -> bool:
    """No note can start: the bar has no room left (its duration is added only when the note ends)."""
    if s.bar_len is None or not s.strict:
        return False
    left = room(s)
    if s.broken and s.last is not None and s.last[0]:
        return left < s.last[1] * broken_factors(s)[1]  # the right note must match the left
    return left < shortest_note(s)  # (after a tuplet the room may be less than any note: A/64)


def can_start_note(s: TrackerState) -> bool:
    if s.chord or s.grace:
        return True
    if bar_is_full(s):
        return False
    if s.broken and s.last is not None and s.last[0]:
        factor = s.tup_factor if s.tup_left else 1
        return bool(length_spellings(s.last[1] / (s.unit * factor)))
    return True


def length_can_fit(s: TrackerState, length: str) -> bool:
    """Whether the note length typed so far can still end as a length that fits.

    Every accepted prefix must have a valid completion. A bare number such as ``A8`` may only be rescued by
    a ``/`` and a denominator (``A3/64``), so it is refused once even that would overflow the bar; the
    right-hand note of a broken rhythm must be able to reach exactly the length of the left-hand one.
    """
    if s.el == "mrest":
        return True
    if s.chord and s.chord_first is not None and s.strict:
        return any(spelling.startswith(length) for spelling in length_spellings(s.chord_first))  # (equal notes)
    if s.grace and s.strict:
        return any(
            spelling.startswith(length) and grace_closable(s, s.grace_len + multiplier)
            for spelling, multiplier in drawn_spellings(s.unit)
        )
    if s.chord and s.strict:
        # a chord lasts as long as its first note; one longer than a unit takes no length after it, so must fit
        one_unit = any(spelling.startswith(length) for spelling in length_spellings(Fraction(1)))
        if s.tup_left or s.broken:
            return one_unit
        return can_draw(s, length, s.unit) and (one_unit or can_draw(s, length, s.unit, timed=s.unit))
    if s.grace or s.chord:
        # grace notes take no time; a chord lasts as long as its first note
        return not s.strict or can_draw(s, length, s.unit)
    if s.el == "chord" and s.strict and s.chord_first != 1:
        return False  # a length after "[A2c2]": abcm2ps multiplies the notes' lengths, abc2midi replaces them
    factor = s.tup_factor if s.tup_left else Fraction(1)
    drawn = Fraction(1)
    if s.el == "chord":
        factor *= s.chord_first
        drawn *= s.chord_first
    plain_pair = s.broken and s.last is not None and s.last[0] and not s.chord and s.el == "note"
    if plain_pair:
        target = s.last[1] / (s.unit * factor)
        return any(spelling.startswith(length) for spelling in length_spellings(target))
    if s.tup_left and s.tup_note is not None and s.strict and s.el != "chord":
        return any(spelling.startswith(length) for spelling in length_spellings(s.tup_note / s.unit))
    if not s.strict:
        return True
    if s.broken and s.last is not None:
        factor *= broken_factors(s)[1]
        drawn *= broken_factors(s)[1]
    timed = s.unit * factor if s.bar_len is not None else None
    return can_draw(s, length, s.unit * drawn, timed, s.host_min if s.host_min is not None else ZERO)


def grace_closable(s: TrackerState, grace_len: Fraction) -> bool:
    """A grace group of ``grace_len`` units can still have a host note that outlasts its share and fits."""
    if s.bar_len is None:
        return True
    left = room(s)
    return any(
        multiplier * GRACE_SHARE > grace_len and s.unit * multiplier <= left
        for _, multiplier in drawn_spellings(s.unit)
    )


def broken_drawable(s: TrackerState) -> bool:
    """Strict mode: abcm2ps draws the broken rhythm's left-hand note, lengthened or shortened, and the right-hand
    note, as long as the left one where both are plain notes."""
    if not s.strict:
        return True
    left, right = broken_factors(s)
    if not drawable(s.last_drawn * left):
        return False
    if s.last[0]:
        return drawable(s.last_drawn * right)
    return can_draw(s, "", s.unit * right)


def length_prefix_ok(length: str) -> bool:
    """A note length being typed: digits, then slashes, then digits (``3``, ``/``, ``//``, ``3/2``, ``/4``)."""
    match = _LENGTH.fullmatch(length)
    if match is None:
        return False
    top, slashes, bottom = match.groups()
    if len(slashes) > 1 and bottom:
        return False
    if bottom and bottom not in _DENOMINATOR_PREFIXES:
        return False  # only binary fractions, and every prefix accepted must have a valid completion
    return all(not n or (n[0] != "0" and int(n) <= MAX_LENGTH_NUMBER) for n in (top, bottom))


# broken rhythm: > or < after an element, then the right-hand element
def broken_start(s: TrackerState, c: str) -> bool:
    if not s.prev_element or s.last is None or s.last[2] or s.chord or s.grace or (s.strict and s.graced_last):
        return False
    s.broken_staccato = s.last_staccato  # the right-hand note must match it
    s.broken = 1 if c == ">" else -1
    s.prev_element = False
    s.ctx = BROKEN_RHYTHM
    return can_start_note(s) and broken_drawable(s)  # the right-hand note must fit and be writable


def broken(s: TrackerState, c: str):
    sign = 1 if s.broken > 0 else -1
    if c == (">" if sign > 0 else "<"):
        if abs(s.broken) >= 3:
            return False
        s.broken += sign
        return not s.strict or (can_start_note(s) and broken_drawable(s))
    s.ctx = MUSIC
    if c in "|:]%-<>" or (c == "." and not s.broken_staccato):
        return False
    return AGAIN


# tuplets: "(" then p[:q[:r]]
def tuplet_start(s: TrackerState, c: str) -> bool:
    """The digit after ``(`` that makes it a tuplet."""
    if c in "01" or s.tup_left or s.chord or s.grace or s.broken or s.deco_pending:
        return False
    if bar_is_full(s):
        return False
    s.ctx = TUPLET
    s.fbuf = c
    return True


def tuplet(s: TrackerState, c: str):
    if c in DIGITS or c == ":":
        spec = s.fbuf + c
        if _TUPLET_SPEC.fullmatch(spec) is None:
            return False
        s.fbuf = spec
        return True
    parts = s.fbuf.split(":")  # (p from 2 to 9, q and r from 1 to 9: the spec's grammar)
    p = int(parts[0])
    q = int(parts[1]) if len(parts) > 1 and parts[1] else None
    r = int(parts[2]) if len(parts) > 2 and parts[2] else p
    s.tup_left = r
    s.tup_factor = tuplet_ratio(p, q, s.meter_num)
    s.tup_note = None
    if s.bar_len is not None and s.strict:
        if r * shortest_note(s) > s.bar_len - s.bar:
            return False  # its notes could not all fit the bar, however short
    s.prev_element = False
    s.ctx = MUSIC
    if c == " ":
        return True
    return AGAIN
