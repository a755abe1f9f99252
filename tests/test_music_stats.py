"""The reading of ABC that the statistics and checks rest on: keys, meters, lengths, pitches, similarity."""

from __future__ import annotations

import doctest
from fractions import Fraction

import pytest

from chatmusician_hf.abc.keys import UnknownKey, parse_key
from chatmusician_hf.abc.lengths import note_length
from chatmusician_hf.abc.meters import parse_meter
from chatmusician_hf.music import stats
from chatmusician_hf.music.scan import scan_tune
from chatmusician_hf.music.stats import edit_similarity, header_matches, normalize_header_value


def test_module_doctests():
    failures, tried = doctest.testmod(stats)
    assert tried >= 3 and failures == 0


@pytest.mark.parametrize(
    ("value", "accidentals"),
    [
        ("G", {"F": 1}),
        ("Ador", {"F": 1}),  # A dorian shares G major's signature
        ("E minor", {"F": 1}),
        ("D#m", {"F": 1, "C": 1, "G": 1, "D": 1, "A": 1, "E": 1}),
        ("Ebdor", {"B": -1, "E": -1, "A": -1, "D": -1, "G": -1}),
        ("D exp ^f _b", {"F": 1, "B": -1}),
        ("Gmix clef=bass", {}),
        ("none", {}),
        ("G treble", {"F": 1}),  # a word after the tonic that names no mode is not one (abc2midi)
        ("A#", {"B": -1, "E": -1}),  # past 7 sharps: 12 fifths back, as abc2midi plays it
        ("HP", {"F": 1, "C": 1}),  # highland pipes play F sharp and C sharp, signature written or not
    ],
)
def test_key_signatures(value, accidentals):
    assert parse_key(value).accidentals == accidentals


@pytest.mark.parametrize("value", ["Es", "H", "Dexp", "Xmaj"])
def test_unreadable_keys(value):
    with pytest.raises(UnknownKey):
        parse_key(value)


def test_meters_and_lengths():
    assert parse_meter("C").bar_length == parse_meter("4/4").bar_length == 1
    assert (
        parse_meter("C|").bar_length == 1
        and parse_meter("6/8").bar_length == Fraction(3, 4)
        and parse_meter("2+3/8").bar_length == Fraction(5, 8)
    )
    assert parse_meter("none").bar_length is None
    assert [note_length(s) for s in ("", "2", "/", "//", "3/2", "/4")] == [
        1,
        2,
        Fraction(1, 2),
        Fraction(1, 4),
        Fraction(3, 2),
        Fraction(1, 4),
    ]


def test_pitches_follow_key_signature_and_bar_accidentals():
    tune = scan_tune("X:1\nL:1/4\nK:D\nF ^c c =c | c C, c'|")
    # F# (key), c# explicit, c# (still in the bar), c natural; new bar: c# again (key), C, an octave down, c''
    assert [n.pitch for n in tune.notes] == [66, 73, 73, 72, 73, 49, 85]


def test_rhythm_tuplets_broken_rhythm_chords_and_grace_notes():
    tune = scan_tune("X:1\nM:4/4\nL:1/8\nK:C\n(3ABc d>e {g}f[CEG]2 z|")
    (bar,) = tune.voices["1"]
    assert bar.duration == Fraction(1)  # 2/8 (triplet) + 2/8 (dotted pair) + 1/8 + 2/8 + 1/8


def test_header_normalisation_and_matching():
    assert normalize_header_value("K", "G major") == normalize_header_value("K", "Gmaj") == "G"
    assert normalize_header_value("M", "C|") == "2/2" and normalize_header_value("L", "1/8") == "1/8"
    assert normalize_header_value("M", "(2+3)/8") == normalize_header_value("M", "5/8 % five") == "5/8"
    assert normalize_header_value("L", "2/16") is None  # abc2midi: "Default length must be 1/X", ignored
    assert header_matches({"K": "Em", "M": "C", "L": "1/16"}, "X:1\nM:4/4\nL:1/8\nK:E minor\nE|") == {
        "K": True,
        "M": True,
        "L": False,
    }


def test_edit_similarity_threshold_shortcut_agrees_with_the_full_computation():
    a, b = "abcdefghij" * 5, "abcdefghiX" * 5
    full = edit_similarity(a, b)
    assert full == pytest.approx(0.9)
    assert edit_similarity(a, b, at_least=0.85) == full
    assert edit_similarity(a, "zzzz", at_least=0.85) == 0.0
