"""Validate one ABC tune: header fields, abc2midi's verdict, bar durations per voice, and voice alignment.

What counts against validity (``ValidationReport.errors``; ``is_valid`` is ``not errors``):

* header problems -- no ``K:`` field (``missing-K``), a non-field line inside the header (``broken-header``), an
  unreadable ``M:``/``L:``/``K:`` value (``bad-meter``, ``bad-unit-length``, ``bad-key``), no music (``no-body``);
* abc2midi *musical* errors (``abc2midi-error``): anything abc2midi calls an error that changes or loses notes --
  malformed notes, unclosed or unterminated chords, broken rhythm that cannot apply, ties with no note, bad tuplets,
  unknown characters, repeat structure it cannot follow. Unknown messages count as musical (the safe side);
* bars (``bar-duration``): an inner bar whose duration differs from the meter. The first and last bar of a voice,
  and bars beside a repeat sign, double bar or ending, may be short (pickups and their completions); an overfull
  bar is always wrong. Free meter (``M:none``) is not checked;
* voices (``voice-bar-count``): the voices of a multi-voice tune have different numbers of bars;
* directives (``forbidden-directive``): a directive that reads a file or passes raw code to the tools
  (:mod:`chatmusician_hf.abc.directives`); it is removed before any tool sees the tune, and the tune is invalid;
* abc2midi's own failure, whatever it printed (``abc2midi-failed``): a non-zero exit, a crash signal, a timeout;
  any message it prints that is not one of its usual shapes (``abc2midi-message``: "eputc: aborting because of
  file runaway", "Out of memory error"); more messages than are kept (``abc2midi-flood``); a MIDI file left
  half-written (``truncated-midi``).

Warnings (reported, not counted): a missing ``X:`` line (added for the tools), header fields after ``K:``,
abc2midi's *non-musical* errors -- an ``I:`` instruction it does not know, text in quotes that is not a chord
symbol (an annotation), ``R:hornpipe`` outside 2/4 or 4/4 (it only changes swing playback), a malformed ``Q:``
tempo -- and every abc2midi warning except its bar-length ones (the bar check above replaces them: abc2midi's
count is confused by repeats and pickups). Measured on the 12,945 music21 tunes: 2,260 (17%) draw an abc2midi
error line, 803 (6%) a musical one; 10,912 (84%) are valid (``tests/test_music_corpus.py`` keeps floors).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

from ..abc.directives import Directive, strip_directives
from ..text_input import text_problem
from .errors import AbcError
from .midi import midi_problem
from .runner import MAX_OUTPUT_BYTES, OUTPUT_GAP, ToolResult, run_tool, temporary_workdir
from .scan import FIELD_LINE, ScannedTune, scan_tune

MAX_ABC_CHARS = 200_000  # far beyond any real tune (the largest music21 tune is ~20k characters)
MAX_VOICES_LISTED = 16

_ABC2MIDI_BAR_WARNING = re.compile(r"^Track \d+ Bar \d+ has ")
_ABC2MIDI_LINE = re.compile(r"^(Error|Warning) in line-char (\d+)-(\d+) : (.*)$")
# What abc2midi prints on every run (its version, the file it writes), its chord-name hint, the second line of its
# part-specification error (reported with the first) and the voice table it prints where a blank line ends a tune
# that named voices ("voice mapping:", then labels and numbers): its only lines not shaped like _ABC2MIDI_LINE over
# music21's 12,945 tunes. Any other line is one of its aborts.
_ABC2MIDI_ROUTINE = re.compile(
    r"^(\d+\.\d+ .* abc2midi|writing MIDI file \S+|\(Hint: .*|The P: is ignored\.|voice mapping:|(\S* *\d+ *)+)$"
)

# abc2midi error messages that do not change the notes: reported as warnings.
NON_MUSICAL_ABC2MIDI_ERRORS = [
    (re.compile(r"^I: key '.*' not recognized"), "unknown I: instruction (for other programs)"),
    (re.compile(r"^Unrecognized chord name"), "quoted text that is not a chord symbol (an annotation)"),
    (re.compile(r"^Guitar chord does not start with A-G or a-g"), "quoted text that is not a chord symbol"),
    (re.compile(r"^Hornpipe must be in \d+/\d+ or \d+/\d+ time"), "R:hornpipe only changes swing playback"),
    (re.compile(r"^malformed Q: field ignored"), "tempo only"),
    (re.compile(r"^Q: field .* ignored", re.IGNORECASE), "tempo only"),
]

HEADER_ONLY_FIELDS = set("XCOZAHBDFSG")  # may not appear in the tune body (ABC 2.1 §3)
MUSIC_FIELDS_AFTER_K = set("MLQT")  # legal in the body, but usually a header written in the wrong order


@dataclass(frozen=True)
class AbcIssue:
    code: str
    message: str
    line: int | None = None  # 1-based line in the tune as given
    column: int | None = None  # 0-based column (abc2midi's convention)
    source: str = "header"  # header | abc2midi | bars | voices | body

    def __str__(self) -> str:
        where = (
            f"line {self.line}" + (f":{self.column}" if self.column is not None else "") if self.line else ""
        )
        return f"[{self.source}/{self.code}] {where + ': ' if where else ''}{self.message}"


@dataclass
class ValidationReport:
    is_valid: bool
    parses: bool
    bars_ok: bool
    voices_aligned: bool
    errors: list[AbcIssue] = field(default_factory=list)
    warnings: list[AbcIssue] = field(default_factory=list)
    n_bars: int = 0  # bars with music, all voices together
    n_bad_bars: int = 0  # inner bars whose duration does not fit the meter
    voices: dict[str, int] = field(default_factory=dict)  # voice id -> bar count
    # first value of each header field (X, T, M, L, K, ...)
    header: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        verdict = "valid" if self.is_valid else "INVALID"
        # bar counts per voice, unless there are so many voices that the list would drown the rest
        voices = f" {self.voices}" if len(self.voices) <= MAX_VOICES_LISTED else ""
        lines = [
            f"{verdict}: {self.n_bars} bars in {len(self.voices)} voice(s){voices}, "
            f"{self.n_bad_bars} bad bar(s), {len(self.errors)} error(s), {len(self.warnings)} warning(s)"
        ]
        lines += [f"  error   {issue}" for issue in self.errors]
        lines += [f"  warning {issue}" for issue in self.warnings]
        return "\n".join(lines)


def check_input(abc) -> str:
    """The documented refusal: non-text, empty, binary, undecodable or oversized input raises :class:`AbcError`."""
    if not isinstance(abc, str):
        raise AbcError(f"ABC must be a str, got {type(abc).__name__}")
    if not abc.strip():
        raise AbcError("ABC text is empty")
    if len(abc) > MAX_ABC_CHARS:
        raise AbcError(f"ABC text is {len(abc)} characters; the limit is {MAX_ABC_CHARS}")
    problem = text_problem(abc)
    if problem:
        raise AbcError(f"ABC text {problem}")
    return abc


def prepare(abc) -> tuple[str, list[Directive]]:
    """The one door to the tools: ``abc`` checked (:func:`check_input`) with its forbidden directives replaced by
    comment lines, and the list of what was removed."""
    return strip_directives(check_input(abc))


def directive_issues(removed: list[Directive]) -> list[AbcIssue]:
    return [
        AbcIssue("forbidden-directive", f"{d.written} {d.reason}; removed before the tools ran", d.line, None,
                 "directives")
        for d in removed
    ]  # fmt: skip


def tool_text(abc: str) -> tuple[str, int]:
    """The tune as the reference tools need it (they ignore a tune with no ``X:`` line), and the line offset."""
    first_field = next((line for line in abc.splitlines() if line.strip() and not line.startswith("%")), "")
    if first_field.startswith("X:"):
        return abc, 0
    return "X:1\n" + abc, 1


def header_issues(tune: ScannedTune, abc: str) -> tuple[list[AbcIssue], list[AbcIssue]]:
    errors, warnings = [], []
    letters = [name for name, _, _ in tune.header]
    if "X" not in letters:
        warnings.append(
            AbcIssue("missing-X", "no X: reference number; the tune is given X:1 for the tools", 1, 0)
        )
    elif letters[0] != "X":
        line = next(line for name, _, line in tune.header if name == "X")
        warnings.append(AbcIssue("header-order", "X: should be the first header field", line, 0))
    if tune.body_start_line is None:
        stray = _first_non_field_line(abc, tune)
        if stray is not None and tune.header:
            line_no, text = stray
            errors.append(
                AbcIssue("broken-header", f"line in the header is not a field: {text[:40]!r}", line_no, 0)
            )
        errors.append(AbcIssue("missing-K", "no K: field: the header must end with a K: (key) line"))
    for message, line in tune.key_errors:
        errors.append(AbcIssue("bad-key", message, line, 0))
    for message, line in tune.meter_errors:
        code = "bad-meter" if "meter" in message else "bad-unit-length"
        errors.append(AbcIssue(code, message, line, 0))
    return errors, warnings


def _first_non_field_line(abc: str, tune: ScannedTune) -> tuple[int, str] | None:
    """The first line after the header began that is not a field: where a header with no K: broke off."""
    first_field_line = tune.header[0][2] if tune.header else 0
    for index, line in enumerate(abc.splitlines()[first_field_line:], start=first_field_line + 1):
        if line.strip() and not line.startswith("%") and not FIELD_LINE.match(line):
            return index, line
    return None


def body_field_issues(abc: str, tune: ScannedTune) -> list[AbcIssue]:
    """Header fields written after ``K:`` before any music (``X:1 K:G M:4/4`` instead of ``... M:4/4 K:G``)."""
    warnings = []
    if tune.body_start_line is None:
        return warnings
    lines = abc.splitlines()
    for index in range(tune.body_start_line - 1, len(lines)):
        match = FIELD_LINE.match(lines[index])
        if not match:
            break
        letter = match.group(1)
        if letter in MUSIC_FIELDS_AFTER_K or letter in HEADER_ONLY_FIELDS:
            warnings.append(
                AbcIssue(
                    "field-after-K", f"{letter}: comes after K:; K: should close the header", index + 1, 0
                )
            )
    return warnings


def bar_issues(tune: ScannedTune) -> tuple[list[AbcIssue], int, int]:
    errors = []
    n_bars = n_bad = 0
    for voice, bars in tune.voices.items():
        n_bars += len(bars)
        for position, bar in enumerate(bars):
            if bar.meter is None or bar.full_rests:
                continue
            if bar.duration == bar.meter:
                continue
            edge = position == 0 or position == len(bars) - 1 or bar.is_section_edge
            if bar.duration < bar.meter and edge:
                continue
            n_bad += 1
            errors.append(
                AbcIssue(
                    "bar-duration",
                    f"voice {voice} bar {position + 1} lasts {bar.duration} of a whole note; "
                    f"the meter needs {bar.meter}",
                    bar.line,
                    bar.column,
                    "bars",
                )
            )
    return errors, n_bars, n_bad


def voice_issues(tune: ScannedTune) -> list[AbcIssue]:
    counts = {voice: len(bars) for voice, bars in tune.voices.items() if bars}
    if len(set(counts.values())) > 1:
        listing = ", ".join(f"{voice}={count}" for voice, count in counts.items())
        return [
            AbcIssue("voice-bar-count", f"voices have unequal bar counts: {listing}", None, None, "voices")
        ]
    return []


def classify_abc2midi(output: str, line_offset: int) -> tuple[list[AbcIssue], list[AbcIssue]]:
    """Split abc2midi's messages into musical errors and warnings (see the module docstring)."""
    errors, warnings = [], []
    for raw in output.splitlines():
        match = _ABC2MIDI_LINE.match(raw.strip())
        if not match:
            if raw.strip() not in ("", OUTPUT_GAP) and not _ABC2MIDI_ROUTINE.match(raw.strip()):
                errors.append(AbcIssue("abc2midi-message", raw.strip(), None, None, "abc2midi"))
            continue
        kind, line, column, message = match.groups()
        line_no = int(line) - line_offset
        position = (line_no if line_no >= 1 else None, int(column))
        message = message.strip()
        if kind == "Warning" and _ABC2MIDI_BAR_WARNING.match(message):
            continue  # bar lengths are checked by bar_issues, per voice and with repeat-aware rules
        if kind == "Warning":
            warnings.append(AbcIssue("abc2midi-warning", message, *position, "abc2midi"))
        elif any(pattern.search(message) for pattern, _ in NON_MUSICAL_ABC2MIDI_ERRORS):
            warnings.append(AbcIssue("abc2midi-nonmusical", message, *position, "abc2midi"))
        else:
            errors.append(AbcIssue("abc2midi-error", message, *position, "abc2midi"))
    return errors, warnings


def run_abc2midi(text: str, timeout: float, workdir) -> ToolResult:
    """abc2midi on ``text`` (a tune with X:), writing ``tune.abc`` and ``tune.mid`` in ``workdir``."""
    (workdir / "tune.abc").write_text(text, encoding="utf-8")
    return run_tool("abc2midi", ["tune.abc", "-o", "tune.mid"], cwd=workdir, timeout=timeout)


def tool_failure_issues(result: ToolResult, midi) -> list[AbcIssue]:
    """What makes abc2midi's run a failure whatever its messages said: how it ended, a flood, a cut MIDI."""
    issues = []
    failure = result.failure()
    if failure:
        code = "timeout" if result.timed_out else "abc2midi-failed"
        issues.append(AbcIssue(code, failure, None, None, "abc2midi"))
    if result.truncated:
        issues.append(
            AbcIssue("abc2midi-flood", f"abc2midi printed more than {MAX_OUTPUT_BYTES:,} bytes of messages; "
                     "all but the last were dropped", None, None, "abc2midi")
        )  # fmt: skip
    problem = midi_problem(midi.read_bytes()) if midi.is_file() and midi.stat().st_size else None
    if problem:
        issues.append(AbcIssue("truncated-midi", f"abc2midi's MIDI file is incomplete: {problem}", None, None,
                               "abc2midi"))  # fmt: skip
    return issues


def validate_abc(abc: str, *, timeout: float = 10.0) -> ValidationReport:
    """Check one tune and return the full report; raises only :class:`AbcError` (unusable input) and
    :class:`MissingToolError` (abc2midi absent)."""
    text, removed = prepare(abc)
    with temporary_workdir() as work:
        return validate_prepared(text, removed, timeout=timeout, workdir=work)


def validate_prepared(abc: str, removed: list[Directive], *, timeout: float, workdir) -> ValidationReport:
    """The report for a tune that went through :func:`prepare`; abc2midi writes ``tune.abc`` and ``tune.mid`` into
    ``workdir``, where a renderer reuses them."""
    tune = scan_tune(abc)
    errors, warnings = header_issues(tune, abc)
    errors += directive_issues(removed)
    warnings += body_field_issues(abc, tune)
    text, offset = tool_text(abc)
    result = run_abc2midi(text, timeout, workdir)
    midi_errors, midi_warnings = classify_abc2midi(result.output, offset)
    midi_errors += tool_failure_issues(result, workdir / "tune.mid")
    errors += midi_errors
    warnings += midi_warnings
    if tune.body_start_line is not None and not any(tune.voices.values()):
        errors.append(
            AbcIssue("no-body", "the tune has a header but no music", tune.body_start_line, 0, "body")
        )
    bar_errors, n_bars, n_bad = bar_issues(tune)
    errors += bar_errors
    voice_errors = voice_issues(tune)
    errors += voice_errors
    header = {}
    for name, value, _ in tune.header:
        header.setdefault(name, value)
    return ValidationReport(
        is_valid=not errors,
        parses=not midi_errors,
        bars_ok=not bar_errors,
        voices_aligned=not voice_errors,
        errors=errors,
        warnings=warnings,
        n_bars=n_bars,
        n_bad_bars=n_bad,
        voices={voice: len(bars) for voice, bars in tune.voices.items() if bars},
        header=header,
    )
