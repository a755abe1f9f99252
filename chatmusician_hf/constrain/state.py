"""What the tracker knows after the text read so far: one flat object of immutable values.

Every rule module (:mod:`.lexer`, :mod:`.header`, :mod:`.notes`, :mod:`.durations`, :mod:`.bars`,
:mod:`.repeats`, :mod:`.completion`) reads and writes a :class:`TrackerState`; nothing else holds state. Its
values are immutable (numbers, strings, frozensets, tuples, a cons list of bar events), so :meth:`TrackerState.copy`
is one dict copy: the logits processor copies the state to try each candidate token.
"""

from __future__ import annotations

from quicktions import Fraction

from ..abc.meters import COMMON_TIME, Meter, default_unit_length

# Modes: where in the text the tracker is.
PROSE = "prose"  # free text around tunes
HEADER = "header"  # the field lines of a tune up to K:
BODY = "body"  # the music, up to the blank line that ends the tune

# Contexts: what the next character means (the keys of the dispatch table in lexer.py).
IN_PROSE = "prose"  # a prose line
PROSE_LETTER = "prose_letter"  # a field letter at the start of a prose line: a ":" starts a tune
HEADER_LINE_START = "hdr_ls"
FIELD_COLON = "field_colon"  # a field letter was read: its ":" must follow
HEADER_COMMENT = "hdr_comment"  # a comment line in the header (or a line abc2midi ignores, lenient mode)
FIELD_VALUE = "field"  # the value of a field line or an inline field [K:...]
BODY_LINE_START = "body_ls"
BODY_LETTER = "body_letter"  # a letter at a body line start: a field letter (with ":") or music
COMMENT = "comment"
CONTINUED_COMMENT = "comment_cont"  # a comment after a line-continuation "\"
CONTINUATION = "continuation"  # after "\": only blanks or a comment up to the line end
CONTINUED_LINE = "continued"  # the start of a line continued by the "\" before it
STARS = "stars"  # the old line-end mark "*" (lenient mode)
MUSIC = "body"  # a music line, between symbols
ACCIDENTAL = "acc"  # an accidental waits for its note letter
ELEMENT = "note"  # a note, rest, chord or multi-bar rest whose length or octave marks may continue
AFTER_MULTI_REST = "mrest_done"  # a multi-bar rest stands alone in its bar
BROKEN_RHYTHM = "broken"  # > or < (more may follow), before the right-hand element
LEFT_BRACKET = "lbracket"  # "[": a chord, an inline field, a "[|" or a "[1" ending
INLINE_FIELD_COLON = "inline_colon"
CHORD = "chord"  # inside [ ]
GRACE_OPEN = "grace_open"  # just after "{" (a "/" may make it an acciaccatura)
GRACE = "grace"  # inside { }
QUOTED = "quoted"  # a chord symbol or annotation in quotes
DECORATION = "deco"  # inside !...! or +...+
PAREN = "paren"  # "(": a slur, or a tuplet if a digit follows
TUPLET = "tuplet"  # a tuplet's p:q:r
ENDING = "ending"  # the numbers of a variant ending
BAR = "bar"  # "|", whose kind the next character tells
DOUBLE_BAR = "bar2"  # "||"
COLON = "colon"  # ":", the start of ":|" or "::"
COLON_BAR = "colon_bar"  # ":|"

# Per-voice values, saved and restored when V: switches voices.
VOICE_FIELDS = (
    "bar", "barno", "seg", "segs", "rep_barno", "expect_repeat", "repeat_closed", "bar_len", "meter_num", "unit",
    "last", "last_drawn", "slur", "after_bar", "tup_left", "tup_factor", "tup_note", "pass_no", "seen_repeat",
    "in_varend", "skip_open", "pickup", "bar_lines", "last_bar", "slur_from",
)  # fmt: skip
EXPECT_REPEAT = VOICE_FIELDS.index("expect_repeat")
SLUR = VOICE_FIELDS.index("slur")
SKIP_OPEN = VOICE_FIELDS.index("skip_open")
ZERO = Fraction(0)
# What a context's handler answers for a character that is not its own (one that ends a note, say): the context
# has changed, and the character is read again there.
AGAIN = object()


class TrackerState:
    """The tracker's values; see each one's comment. ``strict`` picks the rules: strict mode (what the logits
    processor writes) or lenient mode (abc2midi's own tolerance). ``required`` (field code -> the values it may
    take) and ``min_bars`` are what a tune must be (:class:`~.tune_request.TuneRequest`), kept across tunes."""

    def __init__(self, strict: bool = True, required: dict[str, tuple[str, ...]] | None = None, min_bars: int = 0):
        self.strict = strict
        self.required = dict(required or {})
        self.min_bars = min_bars
        self.reset()

    def copy(self) -> TrackerState:
        new = TrackerState.__new__(TrackerState)
        new.__dict__.update(self.__dict__)
        return new

    def reset(self) -> None:
        """Back to prose, as before any text."""
        self.mode = PROSE
        self.ctx = IN_PROSE
        self.col = 0  # column in the current line (prose and header)
        self.fletter = ""  # field letter being read
        self.fbuf = ""  # field value / quoted text / decoration / tuplet spec / ending being read
        self.finline = False
        self.deco_close = "!"
        self.header_meter: Meter = COMMON_TIME
        self.header_unit: Fraction | None = None
        self.voices: dict[str, tuple] = {}
        self.voice = ""
        self.first_voice: str | None = None
        self.n_elements = 0
        self.deco_at = -1  # n_elements when the last decoration was read (abc2midi splits decorated notes)
        self.el_pitch = ""  # letter and octave marks of the note being read (ties join notes of the same pitch)
        self.chord_pitches: frozenset[str] = frozenset()
        self.chord_notes = 0  # notes begun in the open chord
        self.last_pitches: frozenset[str] = frozenset()  # pitches of the last element (none for a rest)
        self.tie: frozenset[str] = frozenset()  # pitches a "-" tie waits for: the next element must hold them
        self.header_parts: frozenset[str] = frozenset()  # parts named by the header's P: (ABA)
        self.parts: frozenset[str] = frozenset()  # parts defined by P: in the body
        # the element being read: kind note|rest|chord|mrest, its length text, whether , ' may still come
        self.el = ""
        self.el_len = ""
        self.el_octave_ok = True
        self.el_upper = True
        self.acc = ""
        self.chord = False
        self.chord_first: Fraction | None = None
        self.grace = False
        self.grace_n = 0
        self.broken = 0  # number of > (positive) or < (negative) waiting for the right-hand element
        self.prev_element = False  # the previous character ended an element (for > < and ties)
        self.after_thick = False  # the last character closed a "[|"
        self.final_bar = False  # a short bar was closed with |: only the end of the tune may follow
        self.deco_pending = False  # a decoration letter (~, T, H...) waits for its note
        self.deco_slur_ok = False  # ...and it was only staccato dots, which a slur "(" may follow
        self.after_grace = False  # a grace group ended and no note followed yet
        # abc2midi takes a grace group's time from its host note, which must outlast a quarter of the group
        # ("Grace sequence exceeds host note"): the group's length in units, and the length its host must exceed
        self.grace_len = ZERO
        self.host_min = None
        self.graced_last = False  # the last element was a grace group's host (strict mode: no broken rhythm on it)
        self.endings_seen = False  # a variant ending was written in the tune (abc2midi checks only the first)
        self.written_fields: frozenset[str] = frozenset()  # the header's field codes written so far
        self.header_fields = 0  # field lines in the header so far
        self.header_chars = 0  # their characters
        self.titles = 0  # T: lines among them
        # A chord symbol was written, so abc2midi plays an accompaniment track, whose last chord can sound past the
        # end of the track ("Sustained notes beyond end of track") where the tune ends off the beat; and the last
        # bar line closed a bar off the beat (a short final bar, a pickup)
        self.gchords = self.off_beat_close = False
        # a staccato "." waits for its note / is on the note being read / was on the last element: abc2midi
        # shortens staccato notes, so they cannot take part in a broken rhythm
        self.staccato = self.el_staccato = self.last_staccato = self.broken_staccato = False
        self.reset_voice()

    def reset_voice(self) -> None:
        """The values of a voice that starts: its bars, meter and unit length from the header."""
        bar_len, numerator = self.header_meter
        self.bar = ZERO  # duration written in the current bar (whole notes)
        self.barno = 0  # bars with music so far (abc2midi's barno: the first one may be a pickup)
        self.seg = ZERO  # duration since the last bar line (for the repeat replay)
        self.segs = None  # cons list (previous, event) of bar lines/endings since the repeat start
        self.rep_barno = 0
        self.expect_repeat = False
        self.repeat_closed = False  # a :| has closed a repeat (abc2midi then wants |: before the next ::)
        self.bar_len = bar_len
        self.meter_num = numerator
        self.unit = self.header_unit or default_unit_length(bar_len)
        self.last = None  # (plain note?, duration, was right side of a broken pair) of the last element
        self.last_drawn = ZERO  # the written length of the last element, in whole notes: what abcm2ps draws
        self.slur = 0
        self.slur_from = 0  # n_elements where the open slur began
        self.after_bar = True
        self.tup_left = 0
        self.tup_factor = Fraction(1)
        self.tup_note: Fraction | None = None  # the length of the tuplet's first note: the others match it
        # abc2midi's variant endings (genmidi.c writetrack, store.c fixreps): the pass being played (1, then 2
        # after a :| ...), whether a repeat sign was written in this voice, an ending not yet closed by a soft bar
        # line, and one of those that is not played on this pass (skipped up to the next soft bar line)
        self.pass_no = 1
        self.seen_repeat = False
        self.in_varend = False
        self.skip_open = False
        self.pickup = ZERO  # the length of a short first bar: the final bar may complete it
        self.bar_lines = 0  # bar lines written in this voice (strict mode writes no empty bar between two)
        self.last_bar = ""  # the kind of the last one

    def switch_voice(self, name: str) -> bool:
        """Save the current voice's values and resume voice ``name`` (a new one starts afresh)."""
        if name == self.voice:
            return True
        if self.broken or self.tup_left or self.tie or (self.voice == "" and self.expect_repeat):
            return False  # (the unnamed first voice can never be resumed to close its repeat)
        voices = dict(self.voices)
        voices[self.voice] = tuple(getattr(self, f) for f in VOICE_FIELDS)
        self.voices = voices
        self.voice = name
        saved = voices.get(name)
        if saved is None:
            self.reset_voice()
        else:
            for f, value in zip(VOICE_FIELDS, saved, strict=True):
                setattr(self, f, value)
        return True

    def any_voice(self, index: int) -> bool:
        """Whether the per-voice value at ``index`` of :data:`VOICE_FIELDS` is set in another voice."""
        return any(saved[index] for saved in self.voices.values())
