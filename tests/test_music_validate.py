"""Validation of hand-written tunes: one test per error class, with the exact codes, messages and positions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chatmusician_hf.music import AbcError, AbcIssue, MissingToolError, validate_abc

FIXTURES = Path(__file__).parent / "fixtures" / "abc"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def codes(issues: list[AbcIssue]) -> list[str]:
    return [issue.code for issue in issues]


def test_valid_multivoice_tune_has_no_errors_and_counts_bars_per_voice():
    report = validate_abc(fixture("multivoice.abc"))
    assert report.is_valid and report.parses and report.bars_ok and report.voices_aligned
    assert report.errors == []
    assert report.voices == {"1": 4, "2": 4}
    assert (report.n_bars, report.n_bad_bars) == (8, 0)
    assert report.header["K"] == "G" and report.header["M"] == "4/4"


def test_missing_key_field():
    report = validate_abc(fixture("missing_k.abc"))
    assert not report.is_valid and not report.parses
    assert AbcIssue("missing-K", "no K: field: the header must end with a K: (key) line") in report.errors
    broken = next(i for i in report.errors if i.code == "broken-header")
    assert (broken.line, broken.message) == (5, "line in the header is not a field: 'GABc dedB|dedB dedB|'")
    midi = next(i for i in report.errors if i.source == "abc2midi")
    assert (midi.code, midi.message) == ("abc2midi-error", "No valid K: field found at start of tune")


def test_overfull_bar_is_the_only_error():
    report = validate_abc(fixture("overfull_bar.abc"))
    assert report.parses and not report.bars_ok and not report.is_valid
    assert report.errors == [
        AbcIssue("bar-duration", "voice 1 bar 3 lasts 1 of a whole note; the meter needs 3/4", 6, 12, "bars")
    ]
    assert (report.n_bars, report.n_bad_bars) == (4, 1)


def test_short_final_bar_and_pickup_are_allowed():
    report = validate_abc("X:1\nM:3/4\nL:1/4\nK:D\nA|dfa|d2A|d2|]\n")
    assert report.is_valid, report.summary()
    # the same short bar in the middle of a voice is an error
    inner = validate_abc("X:1\nM:3/4\nL:1/4\nK:D\nA|dfa|d2|dfa|d3|]\n")
    assert codes(inner.errors) == ["bar-duration"] and inner.n_bad_bars == 1


def test_partial_bars_around_repeats_are_allowed():
    report = validate_abc("X:1\nM:4/4\nL:1/4\nK:G\nD|:GABc|dBG:|\n|:B|cBAG|1FGA:|2FG2|]\n")
    assert report.bars_ok, report.summary()


def test_voices_with_unequal_bar_counts():
    report = validate_abc(fixture("unequal_voices.abc"))
    assert report.parses and report.bars_ok and not report.voices_aligned and not report.is_valid
    assert report.errors == [
        AbcIssue("voice-bar-count", "voices have unequal bar counts: 1=3, 2=2", None, None, "voices")
    ]
    assert report.voices == {"1": 3, "2": 2}


def test_unknown_character():
    report = validate_abc(fixture("unknown_character.abc"))
    assert report.errors == [AbcIssue("abc2midi-error", "Unrecognized character: @", 6, 8, "abc2midi")]
    assert not report.parses and report.bars_ok


def test_broken_header_field():
    report = validate_abc(fixture("broken_header.abc"))
    assert AbcIssue("bad-meter", "unreadable meter '4/x'", 3, 0, "header") in report.errors
    assert AbcIssue("abc2midi-error", "Expecting fraction in form A/B", 3, 0, "abc2midi") in report.errors
    assert not report.is_valid


def test_unknown_key_is_a_header_error():
    report = validate_abc("X:1\nM:4/4\nL:1/4\nK:H minor\nABcd|\n")
    assert "bad-key" in codes(report.errors)


def test_non_musical_abc2midi_error_is_only_a_warning():
    report = validate_abc(fixture("nonmusical_error.abc"))
    assert report.is_valid and report.parses
    assert report.warnings == [
        AbcIssue("abc2midi-nonmusical", "I: key ' papersize' not recognized", 5, 0, "abc2midi")
    ]


def test_missing_x_is_a_warning_and_lines_keep_the_callers_numbering():
    report = validate_abc("T:No X\nM:4/4\nL:1/4\nK:C\nAB@c d|\n")
    assert codes(report.warnings)[:1] == ["missing-X"]
    # the tools saw an added "X:1" line; positions still refer to the text as given
    assert AbcIssue("abc2midi-error", "Unrecognized character: @", 5, 2, "abc2midi") in report.errors


def test_header_field_after_key_is_a_warning():
    report = validate_abc("X:1\nK:G\nM:3/4\nGAB|cBA|\n")
    assert AbcIssue("field-after-K", "M: comes after K:; K: should close the header", 3, 0) in report.warnings


def test_report_is_json_serialisable():
    report = validate_abc(fixture("overfull_bar.abc"))
    data = json.loads(json.dumps(report.to_dict()))
    assert data["errors"][0]["code"] == "bar-duration" and data["n_bad_bars"] == 1


@pytest.mark.parametrize("bad", ["", "   \n", None, b"X:1", "X:1\x00K:C", "X:1\nK:C\n" + "A" * 300_000])
def test_unusable_input_raises_abc_error(bad):
    with pytest.raises(AbcError):
        validate_abc(bad)


def test_missing_program_names_the_debian_package(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no abc2midi on PATH
    with pytest.raises(MissingToolError, match=r"^abc2midi not found: apt-get install abcmidi$"):
        validate_abc(fixture("multivoice.abc"))
