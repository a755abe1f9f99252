"""A lenient, never-failing reader of one ABC tune: header fields, and per voice the bars with their durations
and the notes with their MIDI pitches.

It is not a full ABC parser (abc2midi is the reference for that); it reads exactly what the layer measures: bar
durations against the meter, bar counts per voice, pitches for statistics. Anything it does not understand is
skipped (abc2midi reports it), so a model's garbage output still yields a (poor) reading.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

from quicktions import Fraction

from ..abc.keys import ACCIDENTAL_SEMITONES, C_MAJOR, NATURAL_SEMITONES, Key, parse_key
from ..abc.lengths import BROKEN_FACTORS, NOTE_LENGTH, note_length, parse_unit_length
from ..abc.lexicon import ACCIDENTALS, BAR_LINE, ENDING_NUMBERS, FIELD_LINE, NOTE_LETTERS
from ..abc.meters import COMMON_TIME, Meter, default_unit_length, parse_meter, tuplet_ratio

_ONE = Fraction(1)
_NOTE_START = NOTE_LETTERS | ACCIDENTALS
_NOTE = re.compile(rf"(\^\^|\^|__|_|=)?([A-Ga-g])([,']*)({NOTE_LENGTH})")
_REST = re.compile(rf"([zx])({NOTE_LENGTH})")
_LENGTH = re.compile(NOTE_LENGTH)
_MULTI_REST = re.compile(r"([ZX])(\d*)")
# a bar line, with the numbers of the ending it starts ("|1", ":|2", "[1")
_BARLINE = re.compile(rf":*\[?\|+\]?:*(?:\s*\[?{ENDING_NUMBERS})?|{BAR_LINE}|\[{ENDING_NUMBERS}")
_TUPLET = re.compile(r"\((\d)(?::(\d?))?(?::(\d?))?")
_INLINE_FIELD = re.compile(r"\[([A-Za-z]):([^\]\n]*)\]")
_DECORATION = re.compile(r"![^!\n]*!|\+[^+\n]*\+")
_ANNOTATION = re.compile(r'"[^"\n]*"?')
_GRACE = re.compile(r"\{[^}\n]*\}?")


@dataclass
class Note:
    pitch: int  # MIDI number with key signature and bar accidentals applied
    duration: Fraction  # fraction of a whole note (tuplets and broken rhythm applied)
    line: int
    column: int


@dataclass
class Bar:
    voice: str
    duration: Fraction
    meter: Fraction | None
    line: int  # position of the barline that closes it (1-based line, 0-based column, like abc2midi)
    column: int
    left: str  # barline that opens the bar ("" at the start of a voice)
    right: str  # barline that closes it ("" when the voice ends without one)
    text: str  # the bar's music as written, whitespace-normalised (used for repetition measures)
    notes: int = 0
    full_rests: int = 0  # bars of multi-measure rest (Z4 counts 4)

    @property
    def is_section_edge(self) -> bool:
        """Bars next to repeat signs, double bars or endings may be partial (pickup continued elsewhere)."""
        return any(s and s != "|" for s in (self.left, self.right))


@dataclass
class ScannedTune:
    header: list[tuple[str, str, int]] = field(default_factory=list)  # (letter, value, 1-based line)
    body_start_line: int | None = None  # line after K:, None when K: is missing
    key: Key = C_MAJOR
    meter: Meter = COMMON_TIME
    unit: Fraction = Fraction(1, 8)
    voices: dict[str, list[Bar]] = field(default_factory=dict)
    notes: list[Note] = field(default_factory=list)
    key_errors: list[tuple[str, int]] = field(default_factory=list)
    meter_errors: list[tuple[str, int]] = field(default_factory=list)

    def field_values(self, letter: str) -> list[str]:
        return [value for name, value, _ in self.header if name == letter]


@functools.lru_cache(maxsize=4096)
def _note_length(suffix: str, unit: Fraction) -> Fraction:
    # (a length abc2midi cannot read, which it reports as an error, counts as the unit)
    return (note_length(suffix) or _ONE) * unit


class _VoiceState:
    def __init__(self, name: str, meter, unit, key):
        self.name = name
        self.meter = meter
        self.unit = unit
        self.key = key
        self.bar_accidentals: dict[tuple[str, int], int] = {}
        self.duration = Fraction(0)
        self.overlay_max = Fraction(0)
        self.left = ""
        self.text: list[str] = []
        self.notes = 0
        self.full_rests = 0


class _Scanner:
    def __init__(self, abc: str):
        self.tune = ScannedTune()
        self.lines = abc.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        self.states: dict[str, _VoiceState] = {}
        self.current: _VoiceState | None = None
        # rhythm modifiers that apply to the next notes
        self.tuplet_left = 0
        self.tuplet_factor = _ONE
        self.broken_next = _ONE
        self.last_note_duration: Fraction | None = None

    # -- header -------------------------------------------------------------------------------------------
    def read_header(self) -> int:
        tune = self.tune
        meter_text = unit_text = None
        meter_line = unit_line = 0
        continued = False
        for index, line in enumerate(self.lines):
            match = FIELD_LINE.match(line)
            was_continued, continued = continued, line.rstrip().endswith("\\")
            if was_continued or line.startswith("%") or (not line.strip() and not tune.header):
                continue  # comments, directives and their backslash-continued lines
            if not match:
                return index  # music before any K: line -- body without a proper header
            letter, value = match.group(1), match.group(2).strip()
            tune.header.append((letter, value, index + 1))
            if letter == "M":
                meter_text, meter_line = value, index + 1
            elif letter == "L":
                unit_text, unit_line = value, index + 1
            elif letter == "K":
                tune.meter = self._meter(meter_text, meter_line) if meter_text is not None else COMMON_TIME
                tune.unit = self._unit(unit_text, tune.meter, unit_line)
                tune.key = self._key(value, index + 1)
                tune.body_start_line = index + 2
                return index + 1
        return len(self.lines)

    @staticmethod
    def _read(parse, text: str, line: int, errors: list, default):
        """``parse(text)``; where the value is unreadable, ``default``, with the error recorded (never raises)."""
        try:
            return parse(text)
        except ValueError as err:  # (UnknownKey, MeterError, LengthError)
            errors.append((str(err), line))
            return default

    def _meter(self, text: str, line: int) -> Meter:
        return self._read(parse_meter, text, line, self.tune.meter_errors, COMMON_TIME)

    def _unit(self, text: str | None, meter: Meter, line: int) -> Fraction:
        default = default_unit_length(meter.bar_length)
        if text is None:
            return default
        return self._read(parse_unit_length, text, line, self.tune.meter_errors, default)

    def _key(self, text: str, line: int) -> Key:
        return self._read(parse_key, text, line, self.tune.key_errors, C_MAJOR)

    # -- body ---------------------------------------------------------------------------------------------
    def voice(self, name: str) -> _VoiceState:
        if name not in self.states:
            tune = self.tune
            self.states[name] = _VoiceState(name, tune.meter, tune.unit, tune.key)
            tune.voices[name] = []
        return self.states[name]

    def switch_voice(self, value: str) -> None:
        name = value.split()[0] if value.split() else "1"
        state = self.voice(name)
        self.current = state
        self.reset_rhythm()

    def reset_rhythm(self) -> None:
        self.tuplet_left = 0
        self.broken_next = Fraction(1)
        self.last_note_duration = None

    def apply_field(self, letter: str, value: str, line: int) -> None:
        state = self.current or self.voice("1")
        if letter == "V":
            self.switch_voice(value)
        elif letter == "M":
            state.meter = self._meter(value, line)
        elif letter == "L":
            state.unit = self._unit(value, state.meter, line)
        elif letter == "K":
            state.key = self._key(value, line)

    def close_bar(self, barline: str, line: int, column: int) -> None:
        state = self.current or self.voice("1")
        duration = max(state.duration, state.overlay_max)
        text = " ".join("".join(state.text).split())
        if state.notes or state.full_rests or duration:
            self.tune.voices[state.name].append(
                Bar(
                    state.name,
                    duration,
                    state.meter.bar_length,
                    line,
                    column,
                    state.left,
                    barline,
                    text,
                    state.notes,
                    state.full_rests,
                )
            )
            state.left = barline
        else:
            # an empty bar (e.g. "|:" right after "|") merges its barline into the neighbours
            state.left = (state.left + barline) if state.left else barline
        state.duration = Fraction(0)
        state.overlay_max = Fraction(0)
        state.text = []
        state.notes = 0
        state.full_rests = 0
        state.bar_accidentals = {}
        self.reset_rhythm()

    def add_duration(self, base: Fraction) -> Fraction:
        if self.broken_next == 1 and not self.tuplet_left:
            return base  # the common case, without Fraction arithmetic (the scanner's hot path)
        duration = base * self.broken_next
        self.broken_next = _ONE
        if self.tuplet_left > 0:
            duration *= self.tuplet_factor
            self.tuplet_left -= 1
        return duration

    def note_pitch(self, state: _VoiceState, acc: str | None, letter: str, octave_marks: str) -> int:
        upper = letter.upper()
        octave = 5 if letter.islower() else 4  # C = MIDI 60 (octave 4), c = 72
        octave += octave_marks.count("'") - octave_marks.count(",")
        key = (upper, octave)
        if acc is not None:
            shift = ACCIDENTAL_SEMITONES[acc]
            state.bar_accidentals[key] = shift
        else:
            shift = state.bar_accidentals.get(key, state.key.accidentals.get(upper, 0))
        return 12 * (octave + 1) + NATURAL_SEMITONES[upper] + shift

    def scan_body(self, start: int) -> None:
        for index in range(start, len(self.lines)):
            line_no = index + 1
            line = self.lines[index]
            if not line.strip():
                if self.tune.body_start_line is not None:
                    break  # a blank line ends the tune (ABC 2.1 §2.2)
                continue
            if line.startswith("%"):
                continue
            match = FIELD_LINE.match(line)
            if match and not _BARLINE.match(line):
                self.apply_field(match.group(1), match.group(2).strip(), line_no)
                continue
            self.scan_music_line(line, line_no)
        for state in self.states.values():
            if state.notes or state.full_rests or state.duration or state.overlay_max:
                self.current = state
                self.close_bar("", len(self.lines), 0)

    def scan_music_line(self, line: str, line_no: int) -> None:
        self.scan_music(line, line_no)
        state = self.current
        # Many collections (the Essen folksongs among them) end a phrase line on a complete bar without a
        # barline: a line that ends exactly on a full bar closes it; a partial bar continues on the next line.
        full = state.meter.bar_length
        complete = full is not None and state.duration == full and not state.overlay_max
        if complete and not line.split("%", 1)[0].rstrip().endswith("\\"):
            self.close_bar("", line_no, len(line))

    def scan_music(self, line: str, line_no: int) -> None:
        state = self.current or self.voice("1")
        self.current = state
        pos = 0
        n = len(line)
        while pos < n:
            char = line[pos]
            if char == "%":
                break
            if char in _NOTE_START:
                match = _NOTE.match(line, pos)
                if match:
                    acc, letter, marks, length = match.groups()
                    duration = self.add_duration(_note_length(length, state.unit))
                    pitch = self.note_pitch(state, acc, letter, marks)
                    self.tune.notes.append(Note(pitch, duration, line_no, pos))
                    state.duration += duration
                    state.notes += 1
                    self.last_note_duration = duration
                    state.text.append(match.group(0))
                    pos = match.end()
                    continue
            match = _INLINE_FIELD.match(line, pos) if char == "[" else None
            if match:
                self.apply_field(match.group(1), match.group(2).strip(), line_no)
                state = self.current
                pos = match.end()
                continue
            match = _BARLINE.match(line, pos) if char in "|:[" else None
            if match and (char != "[" or match.group(0) != "["):
                self.close_bar(match.group(0).strip(), line_no, pos)
                state = self.current
                pos = match.end()
                continue
            if char == "[":  # chord
                end = line.find("]", pos)
                if end == -1:  # an unclosed chord: abc2midi reports it; read on as single notes
                    pos += 1
                    continue
                inner = line[pos + 1 : end]
                length_match = _LENGTH.match(line, end + 1)
                outer = note_length(length_match.group(0)) or _ONE
                first = None
                for note in _NOTE.finditer(_GRACE.sub("", _DECORATION.sub("", _ANNOTATION.sub("", inner)))):
                    acc, letter, marks, length = note.groups()
                    pitch = self.note_pitch(state, acc, letter, marks)
                    if first is None:
                        first = note_length(length) or _ONE
                    self.tune.notes.append(Note(pitch, Fraction(0), line_no, pos))
                    state.notes += 1
                if first is not None:
                    duration = self.add_duration(first * outer * state.unit)
                    state.duration += duration
                    self.last_note_duration = duration
                    for note_obj in self.tune.notes[len(self.tune.notes) - state.notes :]:
                        if note_obj.duration == 0 and note_obj.line == line_no and note_obj.column == pos:
                            note_obj.duration = duration
                state.text.append(line[pos : length_match.end()])
                pos = length_match.end()
                continue
            match = _REST.match(line, pos)
            if match:
                duration = self.add_duration(_note_length(match.group(2), state.unit))
                state.duration += duration
                state.notes += 1
                self.last_note_duration = duration
                state.text.append(match.group(0))
                pos = match.end()
                continue
            match = _MULTI_REST.match(line, pos)
            if match:
                state.full_rests += int(match.group(2) or 1)
                state.text.append(match.group(0))
                pos = match.end()
                continue
            if char in "<>":
                run = len(line) - len(line[pos:].lstrip(char)) - pos
                run = min(run, 3)
                first, second = BROKEN_FACTORS[run] if char == ">" else BROKEN_FACTORS[run][::-1]
                if self.last_note_duration is not None:
                    state.duration += self.last_note_duration * (first - 1)
                    self.last_note_duration = None
                self.broken_next = second
                state.text.append(char * run)
                pos += run
                continue
            match = _TUPLET.match(line, pos)
            if match:
                p = int(match.group(1))
                q = int(match.group(2)) if match.group(2) else None
                r = int(match.group(3)) if match.group(3) else p
                ratio = tuplet_ratio(p, q, state.meter.numerator)
                if ratio is not None:
                    self.tuplet_factor = ratio
                    self.tuplet_left = r
                pos = match.end()
                continue
            if char == "&":
                state.overlay_max = max(state.overlay_max, state.duration)
                state.duration = Fraction(0)
                pos += 1
                continue
            for pattern in (_DECORATION, _ANNOTATION, _GRACE):
                match = pattern.match(line, pos)
                if match:
                    pos = match.end()
                    break
            else:
                pos += 1  # decorations, slurs, ties, spacing and stray characters carry no duration


def scan_tune(abc: str) -> ScannedTune:
    """Read one tune (``abc`` starting at or before its ``X:`` line). Never raises on a ``str``."""
    scanner = _Scanner(abc)
    start = scanner.read_header()
    scanner.scan_body(start)
    return scanner.tune
