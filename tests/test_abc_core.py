"""The ABC core against abc2midi, and the project's two readers of ABC against each other.

Every reading of a meter, unit length, note length, key and tuplet ratio in ``chatmusician_hf.abc`` is checked by
running the real abc2midi on a tune built from it: what the core refuses, abc2midi reports as an error; what it
reads, abc2midi plays the same way (bars of the length the core computes draw no bar warning; keys give the same
MIDI pitches). The strict readings (what the decoding tracker writes) are a subset of the lenient ones, with the
same values. Last, the validator's scanner and the tracker read the music21 corpus alike.
"""

from __future__ import annotations

import pytest

from chatmusician_hf.abc.keys import UnknownKey, parse_key
from chatmusician_hf.abc.lengths import LengthError, note_length, parse_unit_length
from chatmusician_hf.abc.meters import MeterError, parse_meter, tuplet_ratio
from chatmusician_hf.constrain import AbcTracker
from chatmusician_hf.music.midi import read_midi
from chatmusician_hf.music.runner import run_tool, temporary_workdir
from chatmusician_hf.music.scan import scan_tune


def abc2midi(tune: str, midi: bool = False):
    """abc2midi's messages for ``tune`` (``-c``: check only), or its messages and the MIDI pitches it plays."""
    with temporary_workdir() as work:
        (work / "tune.abc").write_text(tune + "\n", encoding="utf-8")
        args = ["tune.abc", "-o", "tune.mid"] + ([] if midi else ["-c"])
        result = run_tool("abc2midi", args, cwd=work, timeout=10)
        messages = [line.strip() for line in result.output.splitlines() if "line-char" in line]
        if not midi:
            return messages
        notes = sorted(read_midi(work / "tune.mid").notes, key=lambda note: note.start)
        return messages, [note.pitch for note in notes]


def errors_on(messages: list[str], line: int) -> list[str]:
    return [m for m in messages if m.startswith(f"Error in line-char {line}-")]


def bar_warnings(messages: list[str]) -> list[str]:
    return [m for m in messages if " Bar " in m and "time units" in m]


def header_reading(header: str, strict: bool):
    """The tracker after ``header``, or None where it refuses it."""
    tracker = AbcTracker(strict=strict)
    return tracker if tracker.feed(header) else None


METERS = [
    "3/4", "6/8", "C", "c", "C|", "c|", "C |", "none", "None", "(2+3)/8", "2+3/8", "2 + 3/8", "3 / 4", "3/ 4",
    "(3/4)", "3/4 abc", "3", "2 3/8", "12/8", "9/8 % bars of 6/8", "3/3", "0/4", "NONE", "FREI4/4", "", "3/0",
    "5/6", "3/4s",
]  # fmt: skip


def rests(eighths) -> str:
    """Rests lasting ``eighths`` eighth notes, each of a length abcm2ps draws (``z8 z`` for nine)."""
    return " ".join(f"z{1 << bit}" for bit in reversed(range(int(eighths).bit_length())) if int(eighths) >> bit & 1)


@pytest.mark.parametrize("meter", ["2/4", "3/4", "3/8", "6/8", "9/8", "12/8", "C", "C|", "2+3/8"])
def test_tuplet_ratios_are_abc2midi_s(meter):
    """A bar of ``(p`` eighth notes and the rest that completes it, for every p: abc2midi finds every bar full,
    and so do the scanner and the strict tracker."""
    numerator, bar_eighths = parse_meter(meter).numerator, parse_meter(meter).bar_length * 8
    bars = []
    for p in range(2, 10):
        rest = bar_eighths - tuplet_ratio(p, None, numerator) * p
        assert rest >= 0 and rest.denominator == 1
        bars.append(f"({p}" + "c" * p + (f" {rests(rest)}" if rest else "") + "|")
    tune = f"X:1\nM:{meter}\nL:1/8\nK:C\n{rests(bar_eighths)}|" + "".join(bars) + "\n"
    messages = abc2midi(tune)
    assert not bar_warnings(messages), messages
    scanned = scan_tune(tune)
    assert all(bar.duration == bar.meter for bar in scanned.voices["1"]), scanned.voices["1"]
    assert header_reading(tune, strict=True) is not None


UNIT_LENGTHS = [
    "1/8", "1/16", "1/1", "1/ 8", "/8", "0/8", "1/8 x", "1/128", "1", "3", "2/4", "2/16", "1 / 8", "1/3", "1/",
]  # fmt: skip
# per field: its reading, the error it raises, what the tracker read, the field's line in the tune, a full bar
FIELDS = {
    "M": (parse_meter, MeterError, lambda t: t.meter, 2, lambda m: f"C{int((m.bar_length or 1) * 16)}|"),
    "L": (parse_unit_length, LengthError, lambda t: t.unit_length, 3, lambda unit: f"C{int(1 / unit)}|"),
}


@pytest.mark.parametrize("field,value", [("M", m) for m in METERS] + [("L", u) for u in UNIT_LENGTHS])
def test_meters_and_unit_lengths_read_as_abc2midi_reads_them(field, value):
    """abc2midi reports an error for what the core refuses; bars of the length the core reads draw no bar
    warning; the lenient tracker reads the same value, the strict one too where the strict reading takes it."""
    parse, error, read, line, full_bar = FIELDS[field]
    header = f"X:1\nM:{value}\nL:1/16\nK:C\n" if field == "M" else f"X:1\nM:4/4\nL:{value}\nK:C\n"
    try:
        reading = parse(value)
    except error:
        assert errors_on(abc2midi(header + "C8|"), line), f"abc2midi takes {field}:{value}"
        assert header_reading(header, strict=False) is None
        return
    messages = abc2midi(header + full_bar(reading) * 3)
    assert not errors_on(messages, line) and not bar_warnings(messages), messages
    assert read(header_reading(header, strict=False)) == reading
    strict = header_reading(header, strict=True)
    try:
        assert parse(value, strict=True) == reading and read(strict) == reading
    except error:
        assert strict is None


NOTE_LENGTHS = ["", "2", "/", "//", "3/2", "/4", "3//", "0", "/0", "/0/", "16", "/3", "3/6"]


@pytest.mark.parametrize("suffix", NOTE_LENGTHS)
def test_note_lengths_read_as_abc2midi_reads_them(suffix):
    multiplier = note_length(suffix)
    tune = "X:1\nM:4/4\nL:1/64\nK:C\n"
    if multiplier is None:
        assert errors_on(abc2midi(tune + f"C{suffix} z|"), 5), f"abc2midi takes C{suffix}"
        return
    rest = 64 - 4 * multiplier
    bar = f"C{suffix} " * 4 + (f"z{rest}" if rest else "") + "|"
    assert not bar_warnings(abc2midi(tune + bar * 3))
    assert all(b.duration == 1 for b in scan_tune(tune + bar * 3).voices["1"])


KEYS = [
    "G", "Gm", "G minor", "GDorian", "G treble", "G foo", "G mi", "Dmix=c", "Dmix ^f", "D exp ^f _b", "A#", "Fb",
    "G#", "Cb", "HP", "Hp", "none", "Am clef=bass", "Ebdor", "Cfoo", "Es", "Dexp", "Bn", "H",
]  # fmt: skip


@pytest.mark.parametrize("value", KEYS)
def test_keys_read_as_abc2midi_reads_them(value):
    tune = f"X:1\nM:4/4\nL:1/8\nK:{value}\nCDEF GABc|\n"
    try:
        key = parse_key(value)
    except UnknownKey:
        assert errors_on(abc2midi(tune), 4), f"abc2midi takes K:{value}"
        assert header_reading(tune, strict=False) is None
        return
    messages, pitches = abc2midi(tune, midi=True)
    assert not errors_on(messages, 4), messages
    assert [note.pitch for note in scan_tune(tune).notes] == pitches, key
    assert header_reading(tune, strict=False) is not None
    if header_reading(tune, strict=True) is not None:
        assert header_reading(tune, strict=False) is not None


def test_the_scanner_and_the_tracker_read_the_corpus_alike():
    """Over the music21 corpus: where the (lenient) tracker accepts a tune's header, it reads the meter and unit
    length the scanner reads; and at every bar line of the body the two agree on the meter of the bar. Where the
    scanner finds an unreadable K:, M: or L: value in the header, the tracker refuses the header."""
    from chatmusician_hf.data.corpus import iter_music21_tunes

    headers = bars = 0
    for tune in iter_music21_tunes():
        scanned = scan_tune(tune.text)
        if scanned.body_start_line is None:
            continue
        lines = tune.text.split("\n")
        header = "\n".join(lines[: scanned.body_start_line - 1]) + "\n"
        tracker = AbcTracker(strict=False)
        if not tracker.feed(header):
            continue
        header_lines = {line for _, _, line in scanned.header}
        assert not [e for e in scanned.key_errors + scanned.meter_errors if e[1] in header_lines], tune.id
        assert (tracker.meter, tracker.unit_length) == (scanned.meter, scanned.unit), tune.id
        headers += 1
        closes = {(b.line, b.column): b.meter for bs in scanned.voices.values() for b in bs if b.right}
        for number, line in enumerate(lines[scanned.body_start_line - 1 :], start=scanned.body_start_line):
            for column, char in enumerate(line + "\n"):
                if (number, column) in closes:
                    assert tracker.meter.bar_length == closes[number, column], (tune.id, number, column)
                    bars += 1
                if not tracker.feed(char):
                    break
            else:
                continue
            break
    assert headers > 12_900 and bars > 140_000, (headers, bars)
