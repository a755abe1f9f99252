"""Notes, rests, chords, grace groups and multi-bar rests: reading an element and ending it.

An element is read over several characters (``^c'3/2``): its start checks that a note can begin here (room in the
bar, the pitch a tie waits for, staccato across a broken rhythm), its octave marks and length follow, and any
other character ends it, which times it (:func:`finish_element`).
"""

from __future__ import annotations

from quicktions import Fraction

from ..abc.lengths import drawable, note_length
from ..abc.lexicon import ACCIDENTALS, DECORATION_SHORTCUTS, DIGITS, NOTE_LETTERS
from .durations import (
    GRACE_SHARE,
    MAX_STRICT_SLASHES,
    add_element,
    bar_is_full,
    broken_factors,
    can_start_note,
    grace_closable,
    length_can_fit,
    length_prefix_ok,
    unplayed,
)
from .state import (
    ACCIDENTAL,
    AFTER_MULTI_REST,
    AGAIN,
    CHORD,
    ELEMENT,
    GRACE,
    MUSIC,
    TrackerState,
)

# Element kinds.
NOTE, REST, CHORD_ELEMENT, MULTI_REST = "note", "rest", "chord", "mrest"
# The characters that continue a note, rest or chord being read (its length and octave marks); any other ends it.
ELEMENT_CHARS = DIGITS | frozenset("/,'")
MAX_CHORD_NOTES = 4  # (strict mode: what one hand plays; abc2midi: "Too many notes in chord" past its limit)
MAX_SLUR_DEPTH = 4  # (strict mode: 1, abc2midi warns "Slur within slur")
MAX_OCTAVE_MARKS = 3  # c''' and C,,, span abc2midi's MIDI range; strict mode writes no more


def start_note(s: TrackerState, c: str, kind: str) -> bool:
    if kind != NOTE and (s.chord or s.grace):
        return False
    if kind == MULTI_REST and (s.bar != 0 or s.broken or s.tup_left):
        return False
    if not can_start_note(s):
        return False
    if s.tie and not s.chord and not s.grace:
        # the note a tie waits for: its letter now, its octave marks in note()
        if kind != NOTE or len(s.tie) > 1 or not any(p[0] == c for p in s.tie):
            return False
    s.deco_pending = False
    if not s.grace:
        if s.after_grace and s.strict:
            if kind == MULTI_REST:
                return False
            s.host_min = s.grace_len / GRACE_SHARE
        s.after_grace = False
    if s.broken and not s.chord and s.staccato != s.broken_staccato:
        return False  # abc2midi: "Cannot apply broken rhythm. Notes not equal durations"
    s.el_staccato, s.staccato = s.staccato, False
    s.el = kind
    s.el_len = ""
    s.el_octave_ok = kind == NOTE
    s.el_upper = c.isupper()
    s.el_pitch = c
    s.ctx = ELEMENT
    s.after_bar = False
    return True


def slur_depth(s: TrackerState) -> int:
    """How many slurs may be open at once."""
    return 1 if s.strict else MAX_SLUR_DEPTH


def bar_allowed(s: TrackerState) -> bool:
    """Nothing is open that a bar line would cut: a chord, a grace group, a tuplet, a broken rhythm; in strict
    mode, a grace group waiting for its host (abc2midi looks for it past any bar line but | and ||)."""
    return not (s.broken or s.tup_left or s.chord or s.grace or (s.after_grace and s.strict))


def _context_after_element(s: TrackerState) -> str:
    return CHORD if s.chord else (GRACE if s.grace else MUSIC)


def ended(s: TrackerState) -> TrackerState | None:
    """In an element being read: a copy of the state after it ends; None when it may not end here."""
    trial = s.copy()
    trial.ctx = _context_after_element(trial)
    return trial if finish_element(trial) else None


def accidental(s: TrackerState, c: str) -> bool:
    if c in NOTE_LETTERS:
        s.acc = ""
        return start_note(s, c, NOTE)
    if c == s.acc[-1] and len(s.acc) == 1 and c != "=":
        s.acc += c
        return True
    return False


def note(s: TrackerState, c: str):
    """A character after a note, rest or chord: its octave marks, its length, or the character that ends it."""
    if c in ",'":
        # abc2midi: "Bad pitch specifier" for c, or C' (strict mode writes C, and c' only)
        s.el_pitch += c
        if s.strict and len(s.el_pitch) > MAX_OCTAVE_MARKS + 1:
            return False  # past the piano's range
        if s.tie and not s.chord and not any(p.startswith(s.el_pitch) for p in s.tie):
            return False
        return s.el_octave_ok and not (s.strict and (c == ",") != s.el_upper)
    if c in DIGITS or c == "/":
        s.el_octave_ok = False
        length = s.el_len + c
        if s.el == MULTI_REST and c not in DIGITS:
            return False
        if not length_prefix_ok(length) or (s.strict and length.count("/") > MAX_STRICT_SLASHES):
            return False
        s.el_len = length
        return length_can_fit(s, length)
    s.ctx = _context_after_element(s)
    if not finish_element(s):
        return False
    return AGAIN


def finish_element(s: TrackerState) -> bool:
    kind, multiplier = s.el, note_length(s.el_len)
    if multiplier is None:
        return False  # (A/3: only binary fractions, which abc2midi plays as written)
    if s.strict and kind != MULTI_REST and not drawable(_drawn(s, kind, multiplier)):
        return False
    s.el = ""
    if s.grace:
        if s.strict and not grace_closable(s, s.grace_len + multiplier):
            return False
        s.grace_n += 1
        s.grace_len += multiplier
        return True
    if s.chord:
        if s.chord_first is None:
            s.chord_first = multiplier
        elif s.strict and multiplier != s.chord_first:
            return False  # abc2midi: "unequal notes in chord"
        s.chord_pitches |= {s.el_pitch}
        return True
    pitches = {NOTE: frozenset({s.el_pitch}), CHORD_ELEMENT: s.chord_pitches}.get(kind, frozenset())
    if not s.tie <= pitches:
        return False  # abc2midi: "Could not find note to be tied"
    s.tie, s.last_pitches = frozenset(), pitches
    s.last_staccato = s.el_staccato
    host_min, s.host_min = s.host_min, None
    s.graced_last = host_min is not None
    if host_min is not None and multiplier <= host_min:
        return False
    if kind == MULTI_REST:
        return _add_multi_rest(s, int(s.el_len or 1))
    if kind == CHORD_ELEMENT and s.el_len in ("", "1"):
        multiplier = s.chord_first  # abc2midi (store.c event_chordoff): a chord lasts as long as its first note,
        # unless a length follows it, which then replaces its notes' lengths ("[A2c2]/" is half a unit)
    return add_element(s, kind != CHORD_ELEMENT, s.unit * multiplier)


def _drawn(s: TrackerState, kind: str, multiplier: Fraction) -> Fraction:
    """The length abcm2ps draws the element with, in whole notes."""
    drawn = s.unit * multiplier
    if s.grace or s.chord:
        return drawn
    if kind == CHORD_ELEMENT:
        drawn *= s.chord_first
    return drawn * broken_factors(s)[1] if s.broken and s.last is not None else drawn


def _add_multi_rest(s: TrackerState, count: int) -> bool:
    if count < 1 or s.bar_len is None:
        return count >= 1
    s.n_elements += 1
    s.prev_element = False
    s.last = None
    s.off_beat_close = False
    if not unplayed(s):
        s.bar = s.bar_len
        s.seg += s.bar_len
    s.barno += count - 1
    s.ctx = AFTER_MULTI_REST
    return True


def after_multi_rest(s: TrackerState, c: str):
    # a multi-bar rest stands alone in its bar
    if c == " " or c == "\t":
        return True
    if c == "|" or c == ":" or c == "[":
        s.ctx = MUSIC
        return AGAIN
    return False


# chords [CEG] and grace groups {ag}
def open_chord(s: TrackerState) -> bool:
    if s.chord or s.grace or bar_is_full(s) or (s.after_grace and s.strict):
        return False  # (strict mode: a grace group's host is a note or a rest)
    s.chord = True
    s.deco_pending = False
    s.chord_first = None
    s.chord_pitches = frozenset()
    s.chord_notes = 0
    s.ctx = CHORD
    s.after_bar = False
    return True


def chord(s: TrackerState, c: str) -> bool:
    if c in NOTE_LETTERS or c in ACCIDENTALS:
        return _pitch_start(s, c)
    if s.deco_pending:
        return False  # abc2midi: "Malformed note" unless the decorated note follows at once ("[A L c]")
    if c == "]":
        return _close_chord(s)
    if s.strict:
        return False  # (strict: no spaces, ties, slurs or decorations inside a chord: abc2midi reads some of them
        # as notes of unequal length, and a chord then runs on: "[eed_C ac FGFE.C.A ...]")
    if c == " ":
        return True
    if c in "()":
        return _slur_inside(s, c)
    if c in DECORATION_SHORTCUTS:
        s.deco_at = s.n_elements
        return True
    return c == "-"


def _slur_inside(s: TrackerState, c: str) -> bool:
    """A slur opened or closed between the notes of a chord or a grace group (abc2midi: "[E4(e4]c2)")."""
    if c == ")":
        s.slur = max(0, s.slur - 1)
        return True
    s.slur += 1
    return s.slur <= slur_depth(s)


def _pitch_start(s: TrackerState, c: str) -> bool:
    """A note letter or an accidental inside a chord or a grace group."""
    if s.chord:
        if s.strict and not _chord_has_room(s, c):
            return False
        s.chord_notes += 1
    if c in NOTE_LETTERS:
        return start_note(s, c, NOTE)
    s.acc = c
    s.ctx = ACCIDENTAL
    return True


def _chord_has_room(s: TrackerState, c: str) -> bool:
    """Strict mode: a note may start in the chord while the notes a tie waits for still fit after it."""
    waiting = s.tie - s.chord_pitches
    left = MAX_CHORD_NOTES - s.chord_notes
    if len(waiting) < left:
        return True
    return len(waiting) == left and any(pitch[0] == c for pitch in waiting)


def _close_chord(s: TrackerState) -> bool:
    if s.chord_first is None or not s.tie <= s.chord_pitches:
        return False  # (an empty chord; one without the notes a tie waits for)
    s.chord = False
    s.el = CHORD_ELEMENT
    s.el_len = ""
    s.el_octave_ok = False
    s.ctx = ELEMENT
    return True


def grace_open(s: TrackerState, c: str) -> bool:
    s.ctx = GRACE
    if c == "/":
        return True
    return grace(s, c)


def grace(s: TrackerState, c: str) -> bool:
    if c in NOTE_LETTERS or c in ACCIDENTALS:
        return _pitch_start(s, c)
    if s.deco_pending:
        return False  # abc2midi: "Malformed note" when no grace note follows the decoration
    if c in "()" and not s.strict:
        return _slur_inside(s, c)
    if c in DECORATION_SHORTCUTS and c != "~" and not s.strict:
        s.deco_pending = True  # ("{vB=Bc^c}"; "~" is a roll, a grace group abc2midi cannot nest)
        return True
    if c == "}":
        if s.grace_n == 0:
            return False
        s.grace = False  # abc2midi takes a grace group with no note after it (before a bar line, a ")")
        s.after_grace = True
        s.ctx = MUSIC
        return True
    return c == " "
