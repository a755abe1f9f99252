"""An incremental ABC state tracker: fed text one character at a time, it says whether the text is still valid.

It follows a chat answer or a plain text through three modes: *prose* (anything goes; a tune starts at a line
beginning ``X:`` or another header field ``T: M: L: K:``), the tune *header* (field lines up to ``K:``) and the
*body* (music up to a blank line, which ends the tune and returns to prose).

In the body it knows the meter, unit note length and key, the duration written in the current bar of each voice
(exact :class:`~fractions.Fraction`), and whether a chord ``[``, chord symbol ``"``, grace group ``{``, decoration
``!...!``, inline field ``[K:...]``, tuplet ``(3`` or broken rhythm ``>`` is open. A character is rejected when
no valid tune can continue from it: a note that overflows the bar, a bar line closing a bar that is neither full
nor allowed to be short, a broken rhythm between notes of unequal length, an unknown chord name...

The bar rules are abc2midi's (``abc2midi -c``, genmidi.c ``checkbar``/``softcheckbar``), so a tune the tracker
accepts draws no bar warning from it: the first bar of a voice may be short or long (a pickup); a single bar line
``|`` checks the bar; the "soft" bar lines ``||``, ``|]``, ``[|``, ``|:``, ``:|``, ``::`` let a short bar continue
across them (a repeat that splits a bar); and at ``:|`` the second pass of the repeat is replayed from the segments
recorded since ``|:``, with its first/second endings, so a short bar before ``:|`` must complete the bar the
repeat goes back to. Variant endings follow abc2midi's pass logic (store.c ``fixreps``, genmidi.c ``writetrack``):
the tune's first ending needs an open ``|:`` (or no repeat sign yet: abc2midi then puts ``|:`` at the start, and
a ``:|`` becomes due), an ending must be closed by a soft bar line before the next one, and an ending not played
on the current pass is skipped with the bar line that closes it, which must come and must not be a repeat sign.

Each tracker is a flat object of immutable values, so :meth:`AbcTracker.copy` is one dict copy: the logits
processor copies the tracker to try each candidate token.
"""

from __future__ import annotations

import re
from itertools import chain, islice

import regex
from quicktions import Fraction

from .fields import (
    CHORD_SYMBOL,
    DECORATION,
    FIELD_VALUE_GRAMMARS,
    HEADER_KEY_VALUE,
    LENIENT_CHORD_SYMBOL,
    STRICT_HEADER_KEY_VALUE,
    STRICT_KEY_VALUE,
    default_unit_length,
    is_compound,
    parse_length,
    parse_meter,
    value_complete,
    value_prefix_ok,
)

NOTE_LETTERS = frozenset("ABCDEFGabcdefg")
REST_LETTERS = frozenset("zx")
MULTI_REST_LETTERS = frozenset("ZX")
DIGITS = frozenset("0123456789")  # (str.isdigit() would take other scripts' digits too)
# The characters that continue a note, rest or chord being read (its length and octave marks); any other ends it.
ELEMENT_CHARS = DIGITS | frozenset("/,'")
ACCIDENTALS = frozenset("^_=")
# ABC 2.1 decoration shortcuts (~ roll, H fermata, L accent, M/P mordents, O coda, S segno, T trill, u/v bowing,
# . staccato); lenient mode adds the letters ABC reserves for user symbols (h-w, H-W), which abc2midi ignores
# with a warning and some corpus tunes use.
DECORATION_SHORTCUTS = frozenset(".~HLMOPSTuv")
RESERVED_SYMBOLS = frozenset("hijklmnopqrstuvwHIJKLMNOPQRSTUVW")
TUNE_START_FIELDS = frozenset("XTMLK")
# Fields that may stand on their own line in the body / inside [ ] in a music line.
BODY_FIELDS = frozenset("KLMPQTVWwIrs")  # N: is "Field not allowed in tune body" for abc2midi
INLINE_FIELDS = frozenset("KLMPQVIr")
MAX_FIELD_CHARS = 200
MAX_QUOTED_CHARS = 40
MAX_LENGTH_NUMBER = 64
MAX_SLUR_DEPTH = 4
MAX_OCTAVE_MARKS = 3  # c''' and C,,, span abc2midi's MIDI range; strict mode writes no more
MAX_COMPLETION_CHARS = 64  # completion() gives up past this (the invariant says it never needs to)
COMPLETION_NODES = 4000  # characters completion() may try in all
SHALLOW_COMPLETION_DEPTHS = (1, 2, 6)  # completion() first looks for completions this short
MAX_STRICT_SLASHES = 3  # A/// (1/8 of the unit) is the shortest run of slashes strict mode writes
BROKEN_FACTORS = {  # (left, right) multipliers for > >> >>> (and swapped for <)
    1: (Fraction(3, 2), Fraction(1, 2)),
    2: (Fraction(7, 4), Fraction(1, 4)),
    3: (Fraction(15, 8), Fraction(1, 8)),
}
DEFAULT_TUPLET_Q = {2: 3, 3: 2, 4: 3, 6: 2, 8: 3}  # 5, 7, 9: 3 in compound meter, else 2

# Bar line kinds. SOFT ones let a short bar continue across them (abc2midi's softcheckbar).
SINGLE, DOUBLE, THIN_THICK, THICK_THIN, BAR_REP, REP_BAR, DOUBLE_REP = "|", "||", "|]", "[|", "|:", ":|", "::"
SOFT_BARS = frozenset({DOUBLE, THIN_THICK, THICK_THIN, BAR_REP, REP_BAR, DOUBLE_REP})
# Bar lines where abc2midi stops skipping a variant ending that is not played on this pass.
ENDING_STOPS = SOFT_BARS

# Per-voice values, saved and restored when V: switches voices.
VOICE_FIELDS = (
    "bar", "barno", "seg", "segs", "rep_barno", "expect_repeat", "repeat_closed", "bar_len", "meter_num", "unit",
    "last", "slur", "after_bar", "tup_left", "tup_factor", "pass_no", "seen_repeat", "in_varend", "skip_open",
)  # fmt: skip
_ZERO = Fraction(0)
_EIGHTH = Fraction(1, 8)
_EXPECT_REPEAT = VOICE_FIELDS.index("expect_repeat")
_SKIP_OPEN = VOICE_FIELDS.index("skip_open")
# What may follow a decoration shortcut: abc2midi reads ~{g}A, L(3ABc, ~"C"A, ~!trill!A as "Malformed note"
_AFTER_DECORATION = frozenset("ABCDEFGabcdefgzx^_=[") | DECORATION_SHORTCUTS
_DENOMINATOR_PREFIXES = frozenset({"1", "2", "4", "8", "16", "3", "32", "6", "64"})
_LENGTH = re.compile(r"(\d*)(/*)(\d*)")
# The C0 control characters (tab and line feed aside) and the other characters str.splitlines breaks a line at:
# strict mode writes none in a tune. (C1 characters stay: mojibake in the corpus titles is full of them.)
_CONTROL_CHARS = frozenset([chr(code) for code in range(32) if chr(code) not in "\t\n"] + ["\x85", "\u2028", "\u2029"])
_FINGERING = regex.compile(r'[0-5][^"\n]{0,39}')
_TUPLET_SPEC = re.compile(r"[2-9](?::[1-9]?(?::[1-9]?)?)?")


class AbcTracker:
    """Character-by-character ABC validity tracker. ``feed(text)`` returns False at the first illegal character.

    After a False return the tracker is in an undefined state: callers try text on a :meth:`copy`.
    """

    def __init__(self, strict: bool = True):
        self.strict = strict
        self._reset()

    def _reset(self) -> None:
        self.mode = "prose"
        self.ctx = "prose"
        self.col = 0  # column in the current line (prose and header)
        self.fletter = ""  # field letter being read
        self.fbuf = ""  # field value / quoted text / decoration / tuplet spec / ending being read
        self.finline = False
        self.deco_close = "!"
        self.has_key = False
        self.header_meter: tuple[Fraction | None, int] = (Fraction(1), 4)
        self.header_unit: Fraction | None = None
        self.voices: dict[str, tuple] = {}
        self.voice = ""
        self.first_voice: str | None = None
        self.n_elements = 0
        self.el_pitch = ""  # letter and octave marks of the note being read (ties join notes of the same pitch)
        self.chord_pitches: frozenset[str] = frozenset()
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
        self.endings_seen = False  # a variant ending was written in the tune (abc2midi checks only the first)
        # A chord symbol was written, so abc2midi plays an accompaniment track, whose last chord can sound past the
        # end of the track ("Sustained notes beyond end of track") where the tune ends off the beat; and the last
        # bar line closed a bar off the beat (a short final bar, a pickup)
        self.gchords = self.off_beat_close = False
        # a staccato "." waits for its note / is on the note being read / was on the last element: abc2midi
        # shortens staccato notes, so they cannot take part in a broken rhythm
        self.staccato = self.el_staccato = self.last_staccato = self.broken_staccato = False
        self._reset_voice_values()

    # ----- bookkeeping -------------------------------------------------------------------------------------
    def copy(self) -> AbcTracker:
        new = AbcTracker.__new__(AbcTracker)
        new.__dict__.update(self.__dict__)
        return new

    def _reset_voice_values(self) -> None:
        bar_len, numerator = self.header_meter
        self.bar = _ZERO  # duration written in the current bar (whole notes)
        self.barno = 0  # bars with music so far (abc2midi's barno: the first one may be a pickup)
        self.seg = _ZERO  # duration since the last bar line (for the repeat replay)
        self.segs = None  # cons list (previous, event) of bar lines/endings since the repeat start
        self.rep_barno = 0
        self.expect_repeat = False
        self.repeat_closed = False  # a :| has closed a repeat (abc2midi then wants |: before the next ::)
        self.bar_len = bar_len
        self.meter_num = numerator
        self.unit = self.header_unit or default_unit_length(bar_len)
        self.last = None  # (plain note?, duration, was right side of a broken pair) of the last element
        self.slur = 0
        self.after_bar = True
        self.tup_left = 0
        self.tup_factor = Fraction(1)
        # abc2midi's variant endings (genmidi.c writetrack, store.c fixreps): the pass being played (1, then 2
        # after a :| ...), whether a repeat sign was written in this voice, an ending not yet closed by a soft bar
        # line, and one of those that is not played on this pass (skipped up to the next soft bar line)
        self.pass_no = 1
        self.seen_repeat = False
        self.in_varend = False
        self.skip_open = False

    def _switch_voice(self, name: str) -> bool:
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
            self._reset_voice_values()
        else:
            for f, value in zip(VOICE_FIELDS, saved, strict=True):
                setattr(self, f, value)
        return True

    @property
    def in_tune(self) -> bool:
        return self.mode != "prose"

    # ----- public API --------------------------------------------------------------------------------------
    def feed(self, text: str) -> bool:
        step = self._step
        for char in text:
            if not step(char):
                return False
        return True

    def can_end(self) -> bool:
        """True when the text may stop here (end of generation): prose, or a tune body that is complete."""
        if self.mode == "prose":
            return True
        if self.mode == "header":
            return False
        return self.copy()._end_tune(reset=False)

    def completion(self, limit: int = MAX_COMPLETION_CHARS, nodes: int = COMPLETION_NODES) -> str | None:
        """A short text after which the tune may end (``""`` where it already may); None if none is found.

        The tracker's invariant is that every state it accepts has such a completion (no dead ends, no traps):
        the logits processor relies on it to finish a tune before the token budget runs out, and to have a legal
        token to force should every candidate of the model be illegal. A depth-first search that tries first the
        characters that close what is open (a line end, ``]``, ``"``, ``:|`` for an open repeat, a rest to fill a
        tuplet...), then any ASCII character that is not an opener; every step is checked by the tracker itself,
        so the result is always legal. ``tests/test_constrain_tracker.py`` fuzzes the invariant.
        """
        # the greedy deep search on a tenth of the budget (it usually succeeds at once), then short completions,
        # then the deep search again on the whole budget: its first try (a line end after which the next line needs
        # much) can spend the budget where two more characters would do
        shallow = ((depth, nodes // 10) for depth in SHALLOW_COMPLETION_DEPTHS)
        for depth, budget in chain(((limit, nodes // 10),), shallow, ((limit, nodes),)):
            out: list[str] = []
            if self._complete(out, min(depth, limit), [budget]):
                return "".join(out)
        return None

    def _complete(self, out: list[str], limit: int, budget: list[int]) -> bool:
        if self.can_end():
            return True
        if len(out) >= limit:
            return False
        for piece in chain(self._fills(), _CLOSERS.get(self.ctx, _BODY_CLOSERS), _ANY_CLOSER):
            budget[0] -= 1
            if budget[0] < 0:
                return False
            trial = self.copy()
            if trial.feed(piece):
                out.append(piece)
                if trial._complete(out, limit, budget):
                    return True
                out.pop()
        return False

    def _fills(self):
        """Whole moves for completion(), which a character search would take long to find (yielded lazily: the
        first one usually completes the tune): the rest of the header (a ``K:`` line), the ``:|`` an open repeat
        needs, after a rest that brings the bar to any length; a rest that fills the bar (or leaves room for the
        rest of a tuplet)."""
        if self.mode == "header":
            if self.ctx == "hdr_ls":
                yield "K:C\n"
            elif self.ctx == "field" and self.fletter == "K" and not self.fbuf.strip():
                yield "C"
            return
        if self.chord and self.tie and self.ctx in ("chord", "note"):  # a chord a tie waits for: its notes
            yield "".join(sorted(self.tie - self.chord_pitches)) + "]"
            return
        if self.ctx not in ("body", "body_ls", "continued", "tuplet") or self.chord or self.grace or self.broken:
            return
        if self.ctx == "body_ls":  # another voice left with an open repeat: go back to it; define missing parts
            yield from (
                f"V:{name}\n"
                for name, saved in self.voices.items()
                if name and (saved[_EXPECT_REPEAT] or saved[_SKIP_OPEN])
            )
            yield from (f"P:{part}\n" for part in sorted(self.header_parts - self.parts))
        if self.tie:  # the tied note (or chord), as long as fits
            pitches = "".join(sorted(self.tie))
            yield from ((pitches if len(self.tie) == 1 else f"[{pitches}]") + length for length in ("1", "/", "//"))
        if self.skip_open and not self.expect_repeat:  # a skipped ending waits for a soft bar line
            yield "||"
        if self.bar_len is None:
            if self.expect_repeat:
                yield ":|"
            return
        if self.tup_left:
            yield next(self._rests(), "z/" + str(MAX_LENGTH_NUMBER))
            return
        if not self.expect_repeat:
            yield from (rest + "|" for rest in islice(self._rests(), 1))
            return
        yield ":|"
        yield from (rest + ":|" for rest in self._rests())
        yield from (rest + "|" for rest in islice(self._rests(), 1))

    def _rests(self):
        """Rests that fit the room left in the bar, for :meth:`_fills`: the one that fills it exactly, then rests
        of k/4 units, longest first."""
        factor = self.tup_factor if self.tup_left else Fraction(1)
        room = (self.bar_len - self.bar) / (self.tup_left or 1) / (self.unit * factor)  # in units
        exact = _length_spellings(room) if room > 0 else []
        if exact:
            yield "z" + (exact[0] or "1")  # z1, not z: at a line start "z:" reads as a field
        for quarters in range(min(int(room * 4), 4 * MAX_LENGTH_NUMBER), 0, -1):  # rests of k/4 units
            spelling = _length_spellings(Fraction(quarters, 4))
            if spelling and Fraction(quarters, 4) != room:
                yield "z" + (spelling[0] or "1")

    def accepts_any_char(self) -> bool:
        """True where any non-ASCII character is valid (prose, comments, field text): used for partial UTF-8."""
        if self.ctx in ("prose", "comment", "hdr_comment"):
            return True
        if self.ctx == "field" and self.fletter not in FIELD_VALUE_GRAMMARS:
            return True
        return self.ctx == "quoted" and self.fbuf[:1] in ("^", "_", "<", ">", "@")

    def _quoted_ok(self, text: str, partial: bool) -> bool:
        grammar = CHORD_SYMBOL if self.strict else LENIENT_CHORD_SYMBOL
        if grammar.fullmatch(text, partial=partial) is not None:
            return True
        # abc2midi takes any text after a fingering digit 0-5 ("04", "2nd time"); "6" or "9" is an error for it
        return _FINGERING.fullmatch(text, partial=partial) is not None

    # ----- the state machine -------------------------------------------------------------------------------
    def _step(self, c: str) -> bool:
        if c in _CONTROL_CHARS and self.strict and self.mode != "prose":
            return False  # (str.splitlines and so most readers break a line at \x1c-\x1e, \x85, \u2028...)
        if self.final_bar and c not in " \t\n" and not (c == "*" and self.ctx in ("body", "stars")):
            return False
        if self.after_thick:  # "[|:" is a start repeat for abc2midi, not "[|" then ":|" (strict never writes it)
            self.after_thick = False
            if c == ":" and self.strict:
                return False
        return _HANDLERS[self.ctx](self, c)

    # prose: a tune starts at a line beginning with X: (or T: M: L: K:)
    def _prose(self, c: str) -> bool:
        if c == "\n":
            self.col = 0
            return True
        if self.col == 0 and (c == " " or c == "\t"):
            return True  # indentation (or SentencePiece's leading space) does not hide a tune's first line
        if self.col == 0 and c in TUNE_START_FIELDS:
            self.fletter = c
            self.ctx = "prose_letter"
        self.col += 1
        return True

    def _prose_letter(self, c: str) -> bool:
        if c == ":":
            self._start_header()
            self.ctx = "field"
            self.fbuf = ""
            return True
        self.ctx = "prose"
        return self._prose(c)

    def mark_line_start(self) -> None:
        """Treat the next character as the start of a line (a chat answer starts on a fresh line)."""
        if self.mode == "prose":
            self.ctx = "prose"
            self.col = 0

    def _start_header(self) -> None:
        letter = self.fletter
        self._reset()
        self.mode = "header"
        self.ctx = "hdr_ls"
        self.fletter = letter

    # header: field lines (and comment lines) up to the K: line
    def _hdr_ls(self, c: str) -> bool:
        if c == "%":
            self.ctx = "hdr_comment"
            return True
        if c.isascii() and c.isalpha() and (c != "X" or not self.strict):
            self.fletter = c
            self.ctx = "field_colon"
            return True
        if not self.strict and c != "\n":
            self.ctx = "hdr_comment"  # a line that is not a field: abc2midi warns "Ignoring text" and goes on
            return True
        return False

    def _field_colon(self, c: str) -> bool:
        if c != ":" and not self.strict and self.mode == "header":
            self.ctx = "hdr_comment"  # (lenient: "N bars 13..." -- text abc2midi ignores)
            return self._hdr_comment(c)
        if c != ":" or self.fletter == "X":
            return False
        self.ctx = "field"
        self.fbuf = ""
        self.finline = False
        return True

    def _hdr_comment(self, c: str) -> bool:
        if c == "\n":
            self.ctx = "hdr_ls" if self.mode == "header" else "body_ls"
        return True

    def _field(self, c: str) -> bool:
        letter = self.fletter
        if c == "\n" or (self.finline and c == "]"):
            if self.finline != (c == "]"):
                return False
            return self._end_field(letter, self.fbuf)
        if len(self.fbuf) >= MAX_FIELD_CHARS:
            return False
        if self.finline and c in '["':
            return False
        if not self.fbuf and c in ":|" and not self.finline and letter != "w" and (self.strict or self.mode == "body"):
            # parseabc.c: "Potentially ambiguous line - either a :| repeat or a field command": abc2midi reads a body
            # line "P:|..." as music ("Malformed note"), a header one as text
            return False
        self.fbuf += c
        grammar = self._grammar(letter)
        return grammar is None or value_prefix_ok(grammar, self.fbuf)

    def _grammar(self, letter: str):
        if letter == "K":  # abc2midi: "First K: field must specify key signature"; strict: no unknown words
            if self.mode == "header":
                return STRICT_HEADER_KEY_VALUE if self.strict else HEADER_KEY_VALUE
            return STRICT_KEY_VALUE if self.strict else FIELD_VALUE_GRAMMARS[letter]
        return FIELD_VALUE_GRAMMARS.get(letter)

    def _end_field(self, letter: str, value: str) -> bool:
        grammar = self._grammar(letter)
        if grammar is not None and not value_complete(grammar, value):
            return False
        inline = self.finline
        if letter == "M":
            bar_len, numerator = parse_meter(value)
            if self.mode == "body" and bar_len is not None and self.bar > bar_len:
                return False  # a meter change in mid-bar would leave the bar overfull: no way to go on
            if self.mode == "header":
                self.header_meter = (bar_len, numerator)
            self.bar_len, self.meter_num = bar_len, numerator
            if self.mode == "header" and self.header_unit is None:
                self.unit = default_unit_length(bar_len)
        elif letter == "L":
            unit = parse_length(value)
            if self.mode == "header":
                self.header_unit = unit
            self.unit = unit
        elif letter == "P":
            if not self._part_field(value):
                return False
            self.in_varend = self.skip_open = False  # a part closes a variant ending
        elif letter == "V":
            name = value.split("%", 1)[0].strip().split(" ", 1)[0]
            if not name:
                return False
            if self.mode == "header":
                if self.first_voice is None:
                    self.first_voice = name
            elif not self._switch_voice(name):
                return False
        if self.mode == "header":
            if letter == "K":
                self._start_body()
                return True
            self.ctx = "hdr_ls"
            return True
        if inline:
            self.ctx = "body"
            return True
        self.ctx = "body_ls"
        return True

    def _part_field(self, value: str) -> bool:
        """``P:`` in the header names the order of parts (``P:ABA``), each of which the body must define with its
        own ``P:A`` line; a header ``P:`` of one part is an error for abc2midi (it belongs after ``K:``)."""
        value = value.split("%", 1)[0].strip()
        if self.mode == "header":
            self.header_parts = frozenset(c for c in value if c.isupper())
            return not self.strict or len(value) != 1
        if value[:1].isupper():
            self.parts |= {value[0]}
        return True

    def _start_body(self) -> None:
        self.mode = "body"
        self.has_key = True
        self.header_unit = self.header_unit or default_unit_length(self.header_meter[0])
        self.voice = self.first_voice or ""
        self._reset_voice_values()
        self.ctx = "body_ls"

    # body: line start (a field line, a comment line, a blank line ending the tune, or music)
    def _body_ls(self, c: str) -> bool:
        if c == "\n":
            if not self._end_tune():
                return False
            return True
        if c == "%":
            self.ctx = "comment"
            return True
        if c.isascii() and c.isalpha():
            probe = self.copy()
            probe.ctx = "body"
            if not (probe._body(c) or (c in BODY_FIELDS and self._clean_for_field(c))):
                return False
            self.fletter = c
            self.ctx = "body_letter"
            return True
        self.ctx = "body"
        return self._body(c)

    def _body_letter(self, c: str) -> bool:
        letter = self.fletter
        if c == ":":
            if letter not in BODY_FIELDS or not self._clean_for_field():
                return False
            self.prev_element = False
            self.ctx = "field"
            self.fbuf = ""
            self.finline = False
            return True
        self.ctx = "body"
        return self._body(letter) and self._step(c)

    def _comment(self, c: str) -> bool:
        if c == "\n":
            self.ctx = "body_ls"
        return True

    def _clean_for_field(self, letter: str = "") -> bool:
        if letter == "V" and self.voice == "" and self.expect_repeat:
            return False  # the unnamed first voice could never be resumed to close its repeat
        return not (self.broken or self.chord or self.grace or self.tie or (self.after_grace and self.strict))

    # body: music
    def _body(self, c: str) -> bool:
        if self.deco_pending and c not in _AFTER_DECORATION and not (c == "(" and self.deco_slur_ok):
            return False  # (abc2midi takes a slur after a staccato dot: ".(AB)", not "~(AB)" nor ".(3ABc")
        if c in NOTE_LETTERS:
            return self._start_note(c, "note")
        if c == " " or c == "\t" or c == "`":
            return True  # abc2midi allows spaces around > and before a tie ("A > B", "A4 -A4")
        if c == "|":
            self.ctx = "bar"
            # which bar line this is, the next character tells: one of them must pass (not the case of a short
            # bar in an ending while a :| is due, say)
            return self._bar_allowed() and (
                not self.strict or any(self._bar_would_pass(kind) for kind in (SINGLE, DOUBLE, THIN_THICK, BAR_REP))
            )
        if c in ACCIDENTALS:
            if len(self.tie) > 1:
                return False  # a chord a tie waits for: one note cannot hold its pitches
            self.acc = c
            self.ctx = "acc"
            return self._can_start_note()
        if c in REST_LETTERS:
            return self._start_note(c, "rest")
        if c == "\n":
            return self._end_line()
        if c == "[":
            self.ctx = "lbracket"
            return not self.broken or self._can_start_note()
        if c == "(":
            self.ctx = "paren"
            return self.slur < MAX_SLUR_DEPTH and (not self.broken or self._can_start_note())
        if c == ")":
            # abc2midi ignores an unmatched ")" without a message (after a tuplet "(3ABc)", say)
            self.slur = max(0, self.slur - 1)
            return True
        if c == ">" or c == "<":
            return self._broken_start(c)
        if c == "-":
            if not self.prev_element:
                return False
            self.prev_element = False
            if self.strict and not self.last_pitches:
                return False  # a tied rest
            self.tie = self.last_pitches  # abc2midi: "Could not find note to be tied" unless the next note matches
            return True
        if c == '"':
            self.ctx = "quoted"
            self.fbuf = ""
            self.prev_element = False
            return True
        if c == "{":
            if self.grace or self.tie or (self.after_grace and self.strict):
                return False  # abc2midi: no tie across a grace group, "Intervening note needed between grace notes"
            self.grace = True
            self.grace_n = 0
            self.ctx = "grace_open"
            self.prev_element = False
            return True
        if c == "!" or c == "+":
            self.ctx = "deco"
            self.deco_close = c
            self.fbuf = ""
            self.prev_element = False
            return True
        if c in DECORATION_SHORTCUTS or (c in RESERVED_SYMBOLS and not self.strict):
            if c == "." and self.broken and not self.broken_staccato and self.strict:
                return False  # the right-hand note of a broken rhythm is staccato only if the left one is
            self.prev_element = False
            self.staccato = self.staccato or c == "."
            self.deco_slur_ok = c == "." and (self.deco_slur_ok or not self.deco_pending)
            self.deco_pending = self.strict  # abc2midi: "Malformed note" when no note follows a shortcut
            return not self.strict or self._can_start_note()  # ...so the note must fit
        if c == ":":
            self.ctx = "colon"
            if not self.strict:  # a lone ":" (not :| nor ::) is ignored by abc2midi without a message
                return self._bar_allowed()
            return self._bar_allowed() and (self._bar_would_pass(REP_BAR) or self._bar_would_pass(DOUBLE_REP))
        if c in MULTI_REST_LETTERS:
            return self._start_note(c, "mrest")
        if c == "%":
            if not self._end_line_ok():
                return False
            self.ctx = "comment"
            return True
        if c == "\\":
            self.ctx = "continuation"  # (abc2midi takes "A>\\" + newline + "B")
            return True
        if c == "y":
            self.prev_element = False
            return True
        if c == "*" and not self.strict:  # "*" at the end of a line: an old line-break mark (parseabc.c checkend)
            self.ctx = "stars"
            self.fbuf = ""
            return self._end_line_ok()
        return False

    def _end_line_ok(self) -> bool:
        return not (
            self.chord or self.grace or self.deco_pending
        )  # a > may end the line: its right-hand note starts the next

    def _end_line(self) -> bool:
        if not self._end_line_ok():
            return False
        self.ctx = "body_ls"  # (abc2midi takes a > or a tie at the start of the next line: "B2\n>A2")
        return True

    def _stars(self, c: str) -> bool:
        if c == "*":
            return not self.fbuf
        if c == " " or c == "\t":
            self.fbuf = c  # only blanks may follow, up to the line end
            return True
        return c == "\n" and self._end_line()

    def _continuation(self, c: str) -> bool:
        if c == "\n":
            self.ctx = "continued"  # the next line continues this one: no line-start fields
            return True
        if c == "%":
            self.ctx = "comment_cont"
            return True
        return c == " " or c == "\t"

    def _comment_cont(self, c: str) -> bool:
        if c == "\n":
            self.ctx = "continued"
        return True

    def _continued(self, c: str) -> bool:
        """The start of a line continued by the ``\\`` before it: music goes on, but an empty line still ends the
        tune for abc2midi ("{d}\\" then a blank line: "No note found to follow grace notes")."""
        if c == "\n":
            return self._end_tune()
        self.ctx = "body"
        return self._body(c)

    # notes, rests, chords
    def _start_note(self, c: str, kind: str) -> bool:
        if kind != "note" and (self.chord or self.grace):
            return False
        if kind == "mrest" and (self.bar != 0 or self.broken or self.tup_left):
            return False
        if not self._can_start_note():
            return False
        if self.tie and not self.chord and not self.grace:
            # the note a tie waits for: its letter now, its octave marks in _note
            if kind != "note" or len(self.tie) > 1 or not any(p[0] == c for p in self.tie):
                return False
        self.deco_pending = False
        if not self.grace:
            self.after_grace = False
        if self.broken and not self.chord and self.staccato != self.broken_staccato:
            return False  # abc2midi: "Cannot apply broken rhythm. Notes not equal durations"
        self.el_staccato, self.staccato = self.staccato, False
        self.el = kind
        self.el_len = ""
        self.el_octave_ok = kind == "note"
        self.el_upper = c.isupper()
        self.el_pitch = c
        self.ctx = "note"
        self.after_bar = False
        return True

    def ended(self) -> AbcTracker | None:
        """In a note, rest or chord being read (context ``note``): the tracker after it ends, which every character
        but those of ``ELEMENT_CHARS`` does first (feeding such a character to a copy of it is feeding it here);
        None when it may not end here. Callers trying many continuations end the element once."""
        trial = self.copy()
        trial.ctx = "chord" if trial.chord else ("grace" if trial.grace else "body")
        return trial if trial._finish_element() else None

    def _acc(self, c: str) -> bool:
        if c in NOTE_LETTERS:
            self.acc = ""
            return self._start_note(c, "note")
        if c == self.acc[-1] and len(self.acc) == 1 and c != "=":
            self.acc += c
            return True
        return False

    def _note(self, c: str) -> bool:
        if c in ",'":
            # abc2midi: "Bad pitch specifier" for c, or C' (strict mode writes C, and c' only)
            self.el_pitch += c
            if self.strict and len(self.el_pitch) > MAX_OCTAVE_MARKS + 1:
                return False  # past the piano's range
            if self.tie and not self.chord and not any(p.startswith(self.el_pitch) for p in self.tie):
                return False
            return self.el_octave_ok and not (self.strict and (c == ",") != self.el_upper)
        if c in DIGITS or c == "/":
            self.el_octave_ok = False
            length = self.el_len + c
            if self.el == "mrest" and c not in DIGITS:
                return False
            if not _length_prefix_ok(length) or (self.strict and length.count("/") > MAX_STRICT_SLASHES):
                return False
            self.el_len = length
            return self._length_can_fit(length)
        self.ctx = "chord" if self.chord else ("grace" if self.grace else "body")
        if not self._finish_element():
            return False
        return self._step(c)

    def _finish_element(self) -> bool:
        kind, multiplier = self.el, _length_value(self.el_len)
        if multiplier is None:
            return False
        self.el = ""
        if self.grace:
            self.grace_n += 1
            return True
        if self.chord:
            if self.chord_first is None:
                self.chord_first = multiplier
            self.chord_pitches |= {self.el_pitch}
            return True
        pitches = {"note": frozenset({self.el_pitch}), "chord": self.chord_pitches}.get(kind, frozenset())
        if not self.tie <= pitches:
            return False  # abc2midi: "Could not find note to be tied"
        self.tie, self.last_pitches = frozenset(), pitches
        self.last_staccato = self.el_staccato
        if kind == "mrest":
            return self._add_multi_rest(int(self.el_len or 1))
        if kind == "chord":
            multiplier *= self.chord_first
        return self._add_element(kind != "chord", self.unit * multiplier)

    def _add_element(self, plain: bool, duration: Fraction) -> bool:
        if self.tup_left:
            duration *= self.tup_factor
            self.tup_left -= 1
        right = False
        if self.broken:
            last_plain, last_duration, last_right = self.last
            if last_plain and plain and last_duration != duration:
                return False  # abc2midi: "Cannot apply broken rhythm. Notes not equal durations"
            left_factor, right_factor = BROKEN_FACTORS[abs(self.broken)]
            if self.broken < 0:
                left_factor, right_factor = right_factor, left_factor
            added = last_duration * (left_factor - 1) + duration * right_factor
            duration = duration * right_factor
            self.broken = 0
            right = True
        else:
            added = duration
        self.last = (plain, duration, right)
        self.n_elements += 1
        self.prev_element = True
        if not self._add_duration(added):
            return False
        if self.tup_left or not self.strict or self.bar_len is None:
            return True
        # after a tuplet the room left may be no sum of notes ((3:2:2 A B leaves 2/3 of a unit): only notes fill it
        fill = (self.bar_len - self.bar) / self.unit * MAX_LENGTH_NUMBER
        return fill.denominator == 1

    def _unplayed(self) -> bool:
        """In an ending skipped on this pass, which abc2midi does not play (genmidi.c, PLAY_ON_REP): it times none
        of its bars and skips the bar line that ends it too -- no repeat, no new pass. Lenient mode follows that;
        strict mode keeps skipped endings to the meter and handles their last bar line as if it were played."""
        return self.skip_open and not self.strict

    def _add_duration(self, added: Fraction) -> bool:
        self.off_beat_close = False
        if self._unplayed():
            return True
        self.bar += added
        self.seg += added
        # An overfull bar can never be repaired; abc2midi lets a voice's first bar (a pickup) be any length, the
        # project's validator (and strict mode) only shorter. The notes a tuplet still owes must fit too.
        if self.bar_len is None or not self.strict:
            return True
        return self.bar + self.tup_left * self._shortest_note() <= self.bar_len

    def _add_multi_rest(self, count: int) -> bool:
        if count < 1 or self.bar_len is None:
            return count >= 1
        self.n_elements += 1
        self.prev_element = False
        self.last = None
        self.off_beat_close = False
        if not self._unplayed():
            self.bar = self.bar_len
            self.seg += self.bar_len
        self.barno += count - 1
        self.ctx = "mrest_done"
        return True

    def _mrest_done(self, c: str) -> bool:
        # a multi-bar rest stands alone in its bar
        if c == " " or c == "\t":
            return True
        if c == "|" or c == ":" or c == "[":
            self.ctx = "body"
            return self._step(c)
        return False

    def _broken_start(self, c: str) -> bool:
        if not self.prev_element or self.last is None or self.last[2] or self.chord or self.grace:
            return False
        self.broken_staccato = self.last_staccato  # the right-hand note must match it
        self.broken = 1 if c == ">" else -1
        self.prev_element = False
        self.ctx = "broken"
        return self._can_start_note()  # the right-hand note, as long as the left, must fit and be writable

    def _broken(self, c: str) -> bool:
        sign = 1 if self.broken > 0 else -1
        if c == (">" if sign > 0 else "<"):
            if abs(self.broken) >= 3:
                return False
            self.broken += sign
            return True
        self.ctx = "body"
        if c in "|:]%-<>" or (c == "." and not self.broken_staccato):
            return False
        return self._step(c)

    def _lbracket(self, c: str) -> bool:
        if self.deco_pending and not (c in NOTE_LETTERS or c in ACCIDENTALS):
            return False
        if c == "|":
            self.ctx = "body"
            self.after_thick = True
            return self._bar(THICK_THIN)
        if c in DIGITS:
            if not self.after_bar:  # an ending in mid-bar ("G2 [1 G2:| [2 G ||"): its bar goes on in the ending
                if self.strict or not self._bar_allowed() or self.tie:
                    return False  # (strict mode: its replay is hard to complete -- measured, fuzz test below)
                self._record(("bar", "split", self.seg))
                self.seg = _ZERO
            return self._start_ending(c)
        if c.isascii() and c.isalpha() and c in INLINE_FIELDS and c not in NOTE_LETTERS:
            if not self._clean_for_field(c):
                return False
            self.fletter = c
            self.ctx = "inline_colon"
            return True
        if c in NOTE_LETTERS or c in ACCIDENTALS:
            return self._open_chord() and self._step(c)
        return False

    def _inline_colon(self, c: str) -> bool:
        if c == ":":
            if not self._clean_for_field():
                return False
            self.prev_element = False
            self.ctx = "field"
            self.fbuf = ""
            self.finline = True
            return True
        return False

    def _length_can_fit(self, length: str) -> bool:
        """Whether the note length typed so far can still end as a length that fits.

        Every accepted prefix must have a valid completion. A bare number such as ``A8`` may only be rescued by
        a ``/`` and a denominator (``A3/64``), so it is refused once even that would overflow the bar; the
        right-hand note of a broken rhythm must be able to reach exactly the length of the left-hand one.
        """
        if self.grace or self.el == "mrest" or (self.chord and self.chord_first is not None):
            return True  # grace notes take no time; a chord lasts as long as its first note
        factor = self.tup_factor if self.tup_left else Fraction(1)
        if self.el == "chord":
            factor *= self.chord_first
        plain_pair = (
            self.broken and self.last is not None and self.last[0] and not self.chord and self.el == "note"
        )
        if plain_pair:
            target = self.last[1] / (self.unit * factor)
            return any(spelling.startswith(length) for spelling in _length_spellings(target))
        if self.bar_len is None or not self.strict:
            return True
        room = self._room()
        if self.broken and self.last is not None:
            factor *= self._broken_factors()[1]
        return self.unit * factor * _shortest_completion(length) <= room

    def _shortest_note(self) -> Fraction:
        """The duration of the shortest note that can be written now (``A/64``, in a tuplet if one is open)."""
        return self.unit * (self.tup_factor if self.tup_left else 1) / MAX_LENGTH_NUMBER

    def _broken_factors(self) -> tuple[Fraction, Fraction]:
        left, right = BROKEN_FACTORS[abs(self.broken)]
        return (right, left) if self.broken < 0 else (left, right)

    def _room(self) -> Fraction:
        """Duration left in the bar, after the pending change of a broken rhythm's left-hand note."""
        room = self.bar_len - self.bar
        if self.broken and self.last is not None:
            room -= self.last[1] * (self._broken_factors()[0] - 1)
        if self.tup_left > 1:
            room -= (self.tup_left - 1) * self._shortest_note()  # the tuplet's later notes need room too
        return room

    def _bar_is_full(self) -> bool:
        """No note can start: the bar has no room left (its duration is added only when the note ends)."""
        if self.bar_len is None or not self.strict:
            return False
        room = self._room()
        if self.broken and self.last is not None and self.last[0]:
            return room < self.last[1] * self._broken_factors()[1]  # the right note must match the left
        return room < self._shortest_note()  # (after a tuplet the room may be less than any note: A/64)

    def _can_start_note(self) -> bool:
        if self.chord or self.grace:
            return True
        if self._bar_is_full():
            return False
        if self.broken and self.last is not None and self.last[0]:
            factor = self.tup_factor if self.tup_left else 1
            return bool(_length_spellings(self.last[1] / (self.unit * factor)))
        return True

    def _open_chord(self) -> bool:
        if self.chord or self.grace or self._bar_is_full():
            return False
        self.chord = True
        self.deco_pending = False
        self.chord_first = None
        self.chord_pitches = frozenset()
        self.ctx = "chord"
        self.after_bar = False
        return True

    def _chord(self, c: str) -> bool:
        if c in NOTE_LETTERS or c in ACCIDENTALS:
            return self._pitch_start(c)
        if self.deco_pending:
            return False  # abc2midi: "Malformed note" unless the decorated note follows at once ("[A L c]")
        if c == "]":
            return self._close_chord()
        if c == "-" or c == " ":
            return True
        if c in "()" and not self.strict:
            return self._slur_inside(c)
        if c in DECORATION_SHORTCUTS:
            self.deco_pending = self.strict
            return True
        return False

    def _slur_inside(self, c: str) -> bool:
        """A slur opened or closed between the notes of a chord or a grace group (abc2midi: "[E4(e4]c2)")."""
        if c == ")":
            self.slur = max(0, self.slur - 1)
            return True
        self.slur += 1
        return self.slur <= MAX_SLUR_DEPTH

    def _pitch_start(self, c: str) -> bool:
        """A note letter or an accidental inside a chord or a grace group."""
        if c in NOTE_LETTERS:
            return self._start_note(c, "note")
        self.acc = c
        self.ctx = "acc"
        return True

    def _close_chord(self) -> bool:
        if self.chord_first is None or not self.tie <= self.chord_pitches:
            return False  # (an empty chord; one without the notes a tie waits for)
        self.chord = False
        self.el = "chord"
        self.el_len = ""
        self.el_octave_ok = False
        self.ctx = "note"
        return True

    def _grace_open(self, c: str) -> bool:
        self.ctx = "grace"
        if c == "/":
            return True
        return self._grace(c)

    def _grace(self, c: str) -> bool:
        if c in NOTE_LETTERS or c in ACCIDENTALS:
            return self._pitch_start(c)
        if self.deco_pending:
            return False  # abc2midi: "Malformed note" when no grace note follows the decoration
        if c in "()" and not self.strict:
            return self._slur_inside(c)
        if c in DECORATION_SHORTCUTS and c != "~" and not self.strict:
            self.deco_pending = True  # ("{vB=Bc^c}"; "~" is a roll, a grace group abc2midi cannot nest)
            return True
        if c == "}":
            if self.grace_n == 0:
                return False
            self.grace = False  # abc2midi takes a grace group with no note after it (before a bar line, a ")")
            self.after_grace = True
            self.ctx = "body"
            return True
        return c == " "

    def _quoted(self, c: str) -> bool:
        if c == '"':
            self.ctx = "body"
            return self._quoted_ok(self.fbuf, partial=False)
        if not self.fbuf and c in NOTE_LETTERS:  # a chord symbol
            self.gchords = True
        if c == "\n" or (len(self.fbuf) >= MAX_QUOTED_CHARS and self.strict):
            return False
        self.fbuf += c
        return self._quoted_ok(self.fbuf, partial=True)

    def _deco(self, c: str) -> bool:
        if c == "\n" and self.deco_close == "!" and not self.fbuf.strip():
            self.ctx = "body"  # "!" at the end of a line: the old ABC line break
            return self._end_line()
        if c == self.deco_close:
            self.ctx = "body"
            return DECORATION.fullmatch(self.fbuf) is not None
        self.fbuf += c
        return DECORATION.fullmatch(self.fbuf, partial=True) is not None

    def _paren(self, c: str) -> bool:
        if c in DIGITS:
            if c in "01" or self.tup_left or self.chord or self.grace or self.broken or self.deco_pending:
                return False
            if self._bar_is_full():
                return False
            self.ctx = "tuplet"
            self.fbuf = c
            return True
        if self.slur >= MAX_SLUR_DEPTH:
            return False
        self.slur += 1  # (a slur may open between the notes of a broken rhythm or a tie: "a(<f", "A4(-A4)")
        self.ctx = "body"
        return self._step(c)

    def _tuplet(self, c: str) -> bool:
        if c in DIGITS or c == ":":
            spec = self.fbuf + c
            if _TUPLET_SPEC.fullmatch(spec) is None:
                return False
            self.fbuf = spec
            return True
        parts = self.fbuf.split(":")
        p = int(parts[0])
        q = int(parts[1]) if len(parts) > 1 and parts[1] else DEFAULT_TUPLET_Q.get(p)
        if q is None:
            q = 3 if is_compound(self.meter_num) else 2
        r = int(parts[2]) if len(parts) > 2 and parts[2] else p
        if p < 2 or q < 1 or r < 1:
            return False
        self.tup_left = r
        self.tup_factor = Fraction(q, p)
        if self.bar_len is not None and self.strict:
            if r * self._shortest_note() > self.bar_len - self.bar:
                return False  # its notes could not all fit the bar, however short
        self.prev_element = False
        self.ctx = "body"
        if c == " ":
            return True
        return self._step(c)

    def _start_ending(self, c: str) -> bool:
        """The first digit of a variant ending (``|1``, ``:|2``, ``[1``). Refused where abc2midi would report an
        error whatever the numbers: a second ending before a soft bar line closes the first ("Need || |: :| or ::
        to mark end of variant ending"), and the tune's first ending after a repeat has closed with no new ``|:``
        ("found [1 or like before |:"). Before any repeat sign, abc2midi puts a ``|:`` at the voice's start when
        a ``:|`` follows, so the ending makes that ``:|`` due."""
        if c == "0" or self.in_varend or self.broken:
            return False
        if self.strict and self.pass_no == 1 and c != "1":
            return False  # strict: no ending skipped on the first pass ("|3A" makes a repeat no short text closes)
        if not self.endings_seen and not self.expect_repeat:
            if not self.seen_repeat:
                self.expect_repeat = True
                if self.strict and not self._repeat_can_close():
                    return False  # (the :| it makes due must be able to replay the bars from the start)
            elif self.strict or not self.header_parts:
                return False  # (abc2midi checks this only in a tune without P: parts: store.c runs fixreps when
                # parts == -1)
        self.endings_seen = True
        self.in_varend = True
        self.ctx = "ending"
        self.fbuf = c
        return True

    def _ending(self, c: str) -> bool:
        if c in DIGITS or c in ",-":
            if len(self.fbuf) >= 8 or (c in ",-" and not self.fbuf[-1].isdigit()):
                return False
            if c == "-" and "-" in self.fbuf.rsplit(",", 1)[-1]:
                return False  # one range per part: "1-2-3" is not an ending list
            if self.strict and self.pass_no == 1 and self.fbuf == "1" and c in DIGITS:
                return False  # (an ending played on the first pass: 1, not 12)
            self.fbuf += c
            return True
        if not self.fbuf[-1].isdigit():
            return False
        numbers = _ending_numbers(self.fbuf)
        # an ending not played on this pass is skipped up to the next soft bar line, which must come
        self.skip_open = self.pass_no not in numbers
        self._record(("ending", numbers))
        self.ctx = "body"
        return self._step(c)

    # bar lines
    def _bar_allowed(self) -> bool:
        return not (self.broken or self.tup_left or self.chord or self.grace)

    def _bar_pending(self, c: str) -> bool:
        if c == "|":
            self.ctx = "bar2"
            return not self.strict or self._bar_would_pass(DOUBLE) or self._bar_would_pass(BAR_REP)
        if c == "]":
            self.ctx = "body"
            return self._bar(THIN_THICK)
        if c == ":":
            self.ctx = "body"
            return self._bar(BAR_REP)
        self.ctx = "body"
        if not self._bar(SINGLE):
            return False
        if c in DIGITS:
            return self._start_ending(c)
        return self._step(c)

    def _bar2(self, c: str) -> bool:
        self.ctx = "body"
        if c == ":":  # ||: reads as a start repeat
            return self._bar(BAR_REP)
        return self._bar(DOUBLE) and self._step(c)

    def _bar_would_pass(self, kind: str) -> bool:
        """Every state the tracker accepts must have a legal continuation, so a repeat sign whose replay would
        fail is refused at its first character, not when the character after it arrives."""
        return self.copy()._bar(kind)

    def _colon(self, c: str) -> bool:
        if c == "|":
            self.ctx = "colon_bar"
            return self._bar_would_pass(REP_BAR)
        if c == ":":
            self.ctx = "body"
            return self._bar(DOUBLE_REP)
        if self.strict:
            return False  # a lone ":" does nothing (abc2midi ignores it): strict mode does not write it
        self.ctx = "body"
        return self._step(c)

    def _colon_bar(self, c: str) -> bool:
        self.ctx = "body"
        if not self._bar(REP_BAR):
            return False
        if c == "]":  # :|] is drawn differently but repeats the same way
            return True
        if c == "|":
            self.ctx = "bar2"  # :|| and :||: (end and start of repeats)
            return True
        if c in DIGITS:
            return self._start_ending(c)
        return self._step(c)

    def _record(self, event) -> None:
        self.segs = (self.segs, event)

    def _bar(self, kind: str) -> bool:
        """A bar line of ``kind`` after the current bar: abc2midi's checkbar/softcheckbar, and the repeat replay."""
        if not self._bar_allowed():
            return False
        if kind == BAR_REP and self.expect_repeat:
            return False  # abc2midi: "found another |: after a |:"
        if kind == DOUBLE_REP and self.repeat_closed and not self.expect_repeat:
            return False  # abc2midi: "found :: before |:"
        if self.skip_open and (kind in (BAR_REP, DOUBLE_REP) or (kind == REP_BAR and self.expect_repeat)):
            return False  # abc2midi skips an ending not played on this pass with the bar line that ends it
        if self.in_varend and self.expect_repeat and kind not in (SINGLE, REP_BAR, DOUBLE_REP) and self._mid_bar():
            return False  # the replay skips the ending up to this bar line: the rest of its bar would be short
        self.prev_element = False
        self.last = None
        unplayed = self._unplayed()
        self.off_beat_close = self._off_beat(self.bar)
        if not unplayed and not self._check_bar(kind):
            return False
        self._record(("bar", kind, self.seg))
        self.seg = _ZERO
        self.after_bar = True
        if kind in ENDING_STOPS:
            self.in_varend = self.skip_open = False
        if unplayed:
            return True
        if kind in (SINGLE, DOUBLE, THIN_THICK, THICK_THIN):
            self.after_grace = False  # abc2midi takes "{a}|{b}A" (not across a repeat sign: "{a}|:{b}A")
        if kind == BAR_REP:
            self._start_repeat()
            self.pass_no, self.seen_repeat = 1, True
        elif kind == REP_BAR or kind == DOUBLE_REP:
            second_ending = self._closes_second_ending()
            if not second_ending:
                ok, bar = self._replay_repeat()
                if not ok:
                    return False
                self.bar = bar
            self.pass_no = 1 if kind == DOUBLE_REP else self._pass_after_repeat()
            self.seen_repeat = True
            self._start_repeat()
            self.expect_repeat = kind == DOUBLE_REP
            self.repeat_closed = self.repeat_closed or kind == REP_BAR
        elif kind != SINGLE and not self.expect_repeat and self.seen_repeat:
            # abc2midi turns the last double bar before a :| with no |: into the start of the repeat -- once a
            # repeat sign was written in the voice: before that, it puts a |: at the voice's start (scan_for_
            # missing_repeats), so the first :| goes back there
            self._start_repeat()
            self.expect_repeat = False
        return not (self.strict and self.expect_repeat) or self._repeat_can_close()

    def _pass_after_repeat(self) -> int:
        """The pass abc2midi is in after this :| (genmidi.c): pass 2 replays the section; each ending played on a
        pass allows one more (up to 4), so while the ending before the :| lists the pass, the section is played
        again; the music after the :| then goes on in the last pass."""
        numbers, node = None, self.segs
        while node is not None and numbers is None:
            node, event = node
            if event[0] == "ending":
                numbers = event[1]
        passes = 2 if self.pass_no == 1 else self.pass_no
        while numbers is not None and passes in numbers and passes < 4:
            passes += 1
        return passes

    def _mid_bar(self) -> bool:
        return self.bar_len is not None and 0 < self.bar < self.bar_len

    def _closes_second_ending(self) -> bool:
        """``:|2 ... :|``: the :| ends the second ending, which is played on the second pass; no replay."""
        node, events = self.segs, []
        while node is not None:
            node, event = node
            events.append(event)
        first = next((e for e in reversed(events) if e[1:2] != ("split",)), None)
        return first is not None and first[0] == "ending" and 1 not in first[1]

    def _start_repeat(self) -> None:
        self.segs = None
        self.rep_barno = self.barno
        self.expect_repeat = True

    def _off_beat(self, bar: Fraction) -> bool:
        """A bar of no whole number of eighth notes (of beats, in meters of shorter beats): where the accompaniment
        chords abc2midi plays may be cut. A rule of thumb for strict mode, measured with abc2midi (which accepts some
        of those, "B3/" at the end of a 3/4 tune, and none of the others)."""
        if not self.strict or self.bar_len is None or not bar:
            return False
        return (bar / min(self.bar_len / self.meter_num, _EIGHTH)).denominator != 1

    def _check_bar(self, kind: str) -> bool:
        bar, full = self.bar, self.bar_len
        if full is None:
            self.bar = _ZERO
            return True
        if kind in SOFT_BARS and bar < full and self.barno > 0:
            return True  # a repeat or double bar in mid-bar: the bar continues after it
        if bar != full and bar != 0 and self.barno != 0:
            if kind != SINGLE or bar > full or self.voices or self.expect_repeat or self.tie:
                return False  # (nothing may follow the final bar: not the :| of an open repeat, a tied note...)
            if not self.header_parts <= self.parts:
                return False  # ...nor the P: lines of parts not defined yet
            self.final_bar = True  # the last bar of a tune may be short even when closed with |
        if self.final_bar and self.gchords and self.off_beat_close:  # (set by _bar for this bar)
            return False
        if bar > 0:
            self.barno += 1
        self.bar = _ZERO
        return True

    def _events(self) -> list:
        """The bar lines and endings recorded since the repeat start, oldest first."""
        events, node = [], self.segs
        while node is not None:
            node, event = node
            events.append(event)
        events.reverse()
        return events

    def _replay_repeat(self) -> tuple[bool, Fraction]:
        """abc2midi's second pass over the repeated section, with the short bar left before ``:|`` carried in (the
        last event is the :| itself, recorded just before this call)."""
        return self._replay(self.bar, self._events())

    def _repeat_can_close(self) -> bool:
        """While a ``:|`` is due, whether some short bar before it would let the replay of the bars written so far
        pass: the first bar the replay checks fixes that carry (``full - s``, or none), so two replays tell.
        (``::|b|``, a pickup just after a repeat sign, can never be replayed: strict mode refuses its bar line.)"""
        if self.bar_len is None or self.segs is None or self._closes_second_ending():
            return True
        events = self._events()
        ok, short = self._replay(_ZERO, events)
        return ok or (0 < short < self.bar_len and self._replay(self.bar_len - short, events)[0])

    def _replay(self, carry: Fraction, events: list) -> tuple[bool, Fraction]:
        """Replay ``events`` from a bar holding ``carry``: whether every bar checks, and the bar at the end (at the
        first failing check, the bar there)."""
        full = self.bar_len
        bar, barno = carry, self.rep_barno
        i = 0
        while i < len(events):
            event = events[i]
            if event[0] == "ending":
                if 2 in event[1]:
                    i += 1
                    continue
                # skip the ending not played on pass 2, up to the next soft bar line (not itself processed)
                i += 1
                while i < len(events) and not (events[i][0] == "bar" and events[i][1] in ENDING_STOPS):
                    i += 1
                barno += 1
                i += 1
                continue
            _, kind, seg = event
            bar += seg
            if kind == "split":  # the start of a mid-bar ending: the bar goes on
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
                bar = _ZERO
            i += 1
        return True, bar

    # end of the tune
    def _end_tune(self, reset: bool = True) -> bool:
        """End the tune here (back to prose) if it may end; ``reset=False`` only checks (on a throwaway copy)."""
        if self.ctx == "note":
            self.ctx = "body"
            if not self._finish_element():
                return False
        if self.ctx == "bar":
            if not self._bar(SINGLE):
                return False
        elif self.ctx == "bar2":
            if not self._bar(DOUBLE):
                return False
        elif self.ctx == "colon_bar":
            if not self._bar(REP_BAR):
                return False
        elif self.ctx == "ending":
            return False
        if self.ctx in ("bar", "bar2", "colon_bar"):
            self.ctx = "body"
        if self.ctx not in ("body", "body_ls", "comment", "mrest_done", "continuation", "continued"):
            return False
        if (
            self.broken
            or self.tup_left
            or self.chord
            or self.grace
            or self.deco_pending
            or self.tie
            or (self.after_grace and self.strict)  # abc2midi: "No note found to follow grace notes"
            or not self.n_elements
            or not self.header_parts <= self.parts  # abc2midi: "Part not defined"
            or (self.gchords and (self.off_beat_close or self._off_beat(self.bar)))
        ):
            return False
        if self.expect_repeat or any(saved[_EXPECT_REPEAT] for saved in self.voices.values()):
            return False  # abc2midi: "Missing :| at end of tune"
        if self.skip_open or any(saved[_SKIP_OPEN] for saved in self.voices.values()):
            return False  # abc2midi: "Cannot find :| || [| or |] to close variant ending"
        if reset:
            self._reset()
        return True


def _length_prefix_ok(length: str) -> bool:
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


def _shortest_completion(length: str) -> Fraction:
    top, slashes, bottom = _LENGTH.fullmatch(length).groups()
    numerator = Fraction(int(top) if top else 1)
    if not slashes:
        return numerator / MAX_LENGTH_NUMBER  # A13 may still become A13/64
    if not bottom:
        if len(slashes) == 1:
            return numerator / 64  # A/ may still become A/64
        return numerator / 2 ** min(len(slashes) + 1, MAX_STRICT_SLASHES)
    return numerator / {"1": 16, "3": 32, "6": 64}.get(bottom, int(bottom))


def _length_spellings(multiplier: Fraction) -> list[str]:
    """The ways to write a note length of ``multiplier`` units (``""`` for 1, ``3/2``, ``/``, ``/4``, ``//``)."""
    n, d = multiplier.numerator, multiplier.denominator
    if d & (d - 1) or n > MAX_LENGTH_NUMBER or d > 64:
        return []
    if d == 1:
        return ["" if n == 1 else str(n)]
    spellings = [f"{n}/{d}"]
    if n == 1:
        spellings += [f"/{d}", "/" * (d.bit_length() - 1)]
    if d == 2:
        spellings.append(f"{n}/")
    return spellings


def _length_value(length: str) -> Fraction | None:
    if not length:
        return Fraction(1)
    if "/" not in length:
        return Fraction(int(length))
    top, _, rest = length.partition("/")
    numerator = int(top) if top else 1
    slashes = 1 + len(rest) - len(rest.lstrip("/"))
    digits = rest.lstrip("/")
    denominator = int(digits) if digits else 2**slashes
    if denominator & (denominator - 1):
        return None  # only binary fractions: /3 is not a note length abc2midi plays as written
    return Fraction(numerator, denominator)


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


# Characters tried first by completion(), per context: those that close what is open. Openers (" ! + { [ ( and
# field letters) are never tried where they are not closers, so the greedy completion cannot loop on them.
_BODY_CLOSERS = "\n|:]z"
_CLOSERS = {
    "hdr_ls": "K",
    "field_colon": ":",
    "field": "\n]1/",
    "hdr_comment": "\n",
    "comment": "\n",
    "comment_cont": "\n",
    "continuation": "\n",
    "continued": "\nz|",
    "stars": "\n",
    "body_ls": "\nz:|",
    "body_letter": ":z",
    "quoted": '"B',
    "deco": "!+",
    "grace_open": "B",
    "grace": "}B",
    "chord": "]B",
    "acc": "B",
    "note": "\n|]}/",
    "tuplet": "z",
    "paren": "z",
    "lbracket": "B",
    "inline_colon": ":",
    "broken": "B",
    "ending": " ",
}
_ANY_CLOSER = "".join(chr(code) for code in range(32, 127) if chr(code) not in "\"!+{[(%\\,'" + "".join(BODY_FIELDS))

_HANDLERS = {
    "prose": AbcTracker._prose,
    "prose_letter": AbcTracker._prose_letter,
    "hdr_ls": AbcTracker._hdr_ls,
    "field_colon": AbcTracker._field_colon,
    "hdr_comment": AbcTracker._hdr_comment,
    "field": AbcTracker._field,
    "body_ls": AbcTracker._body_ls,
    "body_letter": AbcTracker._body_letter,
    "comment": AbcTracker._comment,
    "comment_cont": AbcTracker._comment_cont,
    "continuation": AbcTracker._continuation,
    "continued": AbcTracker._continued,
    "stars": AbcTracker._stars,
    "body": AbcTracker._body,
    "acc": AbcTracker._acc,
    "note": AbcTracker._note,
    "mrest_done": AbcTracker._mrest_done,
    "broken": AbcTracker._broken,
    "lbracket": AbcTracker._lbracket,
    "inline_colon": AbcTracker._inline_colon,
    "chord": AbcTracker._chord,
    "grace_open": AbcTracker._grace_open,
    "grace": AbcTracker._grace,
    "quoted": AbcTracker._quoted,
    "deco": AbcTracker._deco,
    "paren": AbcTracker._paren,
    "tuplet": AbcTracker._tuplet,
    "ending": AbcTracker._ending,
    "bar": AbcTracker._bar_pending,
    "bar2": AbcTracker._bar2,
    "colon": AbcTracker._colon,
    "colon_bar": AbcTracker._colon_bar,
}
