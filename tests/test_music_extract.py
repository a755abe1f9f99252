"""Finding tunes in free model output."""

from __future__ import annotations

from pathlib import Path

import pytest

from chatmusician_hf.music import extract_tunes
from chatmusician_hf.music.extract import is_prose

ANSWER = (Path(__file__).parent / "fixtures" / "abc" / "prose_answer.txt").read_text()


def test_finds_fenced_unnumbered_and_truncated_tunes_with_offsets():
    tunes = extract_tunes(ANSWER)
    assert [t.abc.splitlines()[0] for t in tunes] == ["X:1", "T:Second", "X:3"]
    assert [t.has_x for t in tunes] == [True, False, True]
    for tune in tunes:
        assert ANSWER[tune.start : tune.end] == tune.abc
    assert tunes[0].abc.endswith("|:GABc dedB|dedB dedB:|")  # stops at the closing fence
    assert tunes[1].abc.endswith('"D"A B c|d3|]')  # stops before the prose after a blank line
    assert tunes[2].abc.endswith("CDEF GABc|cBAG F")  # a truncated answer keeps what was written


def test_prose_right_after_a_tune_ends_it():
    text = "X:1\nK:G\nGABc|d4|\nThis tune is lively.\n"
    (tune,) = extract_tunes(text)
    assert tune.abc == "X:1\nK:G\nGABc|d4|"


def test_consecutive_tunes_split_at_each_x_line():
    text = "X:1\nK:C\nCDEF|\nX:2\nK:D\nDEFG|\n"
    assert [t.abc for t in extract_tunes(text)] == ["X:1\nK:C\nCDEF|", "X:2\nK:D\nDEFG|"]


def test_music_lines_with_chord_symbols_and_decorations_are_not_prose():
    assert not is_prose('"Am"A2B c2d|"G/B"BAG !trill!E3|TBA ~G2 [K:Dmix] %% comment with words')
    assert is_prose("The melody rises to the dominant.")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "No music here, sorry.",
        "X:",
        "X:1",
        "K:G",
        "T:Title only\nSome words here.",
        None,
        42,
        b"X:1\nK:C",
    ],
)
def test_no_tune_gives_an_empty_list(text):
    assert extract_tunes(text) == []


def test_windows_line_endings():
    (tune,) = extract_tunes("Here:\r\nX:1\r\nK:G\r\nGABc|\r\n\r\nBye")
    assert tune.abc == "X:1\r\nK:G\r\nGABc|"
