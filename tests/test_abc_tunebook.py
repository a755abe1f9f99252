"""The tunebook reader: every tune of an ABC file, as the ABC 2.1 standard lays a file out."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from chatmusician_hf.abc.tunebook import TunebookError, parse_tunebook, read_tunebook
from chatmusician_hf.music import validate_abc

SESSION = Path(__file__).parent / "fixtures" / "tunebooks" / "session.abc"


@pytest.fixture(scope="module")
def session():
    return read_tunebook(SESSION)


def music_lines(abc: str) -> list[str]:
    return abc.split("\n")[
        abc.split("\n").index(next(line for line in abc.split("\n") if line.startswith("K:"))) + 1 :
    ]


def test_every_tune_is_found_with_its_number_title_and_line(session):
    assert [t.x for t in session.tunes] == ["1", "2", "3", "4", "5"]
    assert [t.title for t in session.tunes] == [
        "Ríl an Spéirbhean", "The Continued Reel", "A Broken Jig", "The Header's Waltz", "Written Straight After",
    ]  # fmt: skip
    assert [t.line for t in session.tunes] == [12, 23, 33, 46, 50]
    assert {t.source for t in session.tunes} == {str(SESSION)} and {t.encoding for t in session.tunes} == {
        "utf-8"
    }
    assert session.warnings == []


def test_the_file_header_is_in_every_tune_and_a_tunes_own_field_wins(session):
    for tune in session.tunes:
        lines = tune.abc.split("\n")
        assert lines[0] == f"X:{tune.x}"
        assert "%%MIDI program 73" in lines and "U:W = !fermata!" in lines and "%%scale 0.75" in lines
        assert (
            "%abc-2.1" not in tune.abc and "tests: a file header" not in tune.abc
        )  # header comments stay out
        assert "abc-charset" not in tune.abc  # consumed by decoding
    reel = session.tunes[1]
    assert "M:4/4" in reel.abc and "M:3/4" not in reel.abc  # the tune's own meter, not the header's
    assert [line for line in reel.abc.split("\n") if line.startswith("R:")] == ["R:reel"]
    waltz = session.tunes[3]
    # the header's meter and length make the waltz right: without them its 3/4 bars are short bars of a 4/4 tune
    assert validate_abc(waltz.abc).is_valid
    alone = "\n".join(line for line in waltz.abc.split("\n") if line[:2] not in ("M:", "L:"))
    assert any(issue.code == "bar-duration" for issue in validate_abc(alone).errors)


def test_continuation_lines_are_joined(session):
    first, reel = session.tunes[0], session.tunes[1]
    assert music_lines(first.abc) == ["|:d2 fe dc|B2 A2 F2|G2 B2 e2|d6|d2 fe dc|B2 A2 F2|G2 e2 c2|d4 Wz2:|"]
    assert reel.title == "The Continued Reel"  # T: continued by a +: line
    assert (
        music_lines(reel.abc)[0] == "GABc dedB|dedB dedB|c2ec B2dB|c2A2 A2BA|"
    )  # the remark after \ is gone
    # each line knows where it starts in the file: the joined music line at line 17, the reel's at 29
    assert first.file_line(len(first.abc.split("\n"))) == 17
    assert reel.file_line(reel.abc.split("\n").index(music_lines(reel.abc)[0]) + 1) == 29


def test_free_text_and_comments_are_kept_apart(session):
    assert [block.line for block in session.free_text] == [20, 40]
    assert session.free_text[0].text.startswith("A paragraph of free text")
    assert "It may hold empty lines." in session.free_text[1].text  # a typeset block stays whole
    assert session.header.line == 1 and "%%MIDI program 73" in session.header.text
    assert session.tunes[0].comments == ((16, "% the first part, in the file header's 3/4 and 1/8"),)
    for tune in session.tunes:
        assert (
            "free text" not in tune.abc
            and "Typeset" not in tune.abc
            and "\n%" not in tune.abc.replace("%%", "")
        )


def test_a_tune_written_straight_after_another_is_its_own(session):
    waltz, last = session.tunes[3], session.tunes[4]
    assert "K:A" not in waltz.abc and music_lines(waltz.abc) == ["B2 d2 g2|f2 e2 d2|c2 B2 A2|G6|]"]
    assert music_lines(last.abc) == ["A2 c2 e2|a4 e2|f2 e2 c2|A6|]"]


def test_a_header_before_x1_with_no_empty_line_is_still_the_file_header():
    book = parse_tunebook(
        b"%%MIDI program 40\nU:W = !fermata!\nL:1/8\nX:1\nT:One\nK:C\nCDEF GABc|\n\nX:2\nK:G\nG4|\n"
    )
    assert [t.x for t in book.tunes] == ["1", "2"]
    assert all("%%MIDI program 40" in t.abc and "L:1/8" in t.abc for t in book.tunes)
    assert book.header.line == 1


def test_a_tune_without_x_is_a_tune_without_a_number():
    book = parse_tunebook("T:No N\xfamber\nM:2/4\nK:D\nDEFG|ABcd|\n".encode("latin-1"))
    (tune,) = book.tunes
    assert tune.x is None and tune.number is None and tune.title == "No N\xfamber" and tune.line == 1
    assert len(book.warnings) == 1  # its bytes are decoded once


def test_latin1_declared_in_the_file_header(tmp_path):
    raw = "I:abc-charset iso-8859-1\nL:1/8\n\nX:1\nT:Café Müller\nK:C\nCDEF|\n".encode("latin-1")
    book = parse_tunebook(raw, "latin.abc")
    (tune,) = book.tunes
    assert tune.title == "Café Müller" and tune.encoding == "iso-8859-1" and book.warnings == []
    assert "abc-charset" not in tune.abc


def test_undeclared_latin1_falls_back_with_a_warning():
    raw = "X:1\nT:Ol\xe9\nK:C\nCDEF|\n\nX:2\nT:Plain\nK:C\nC4|\n".encode("latin-1")
    book = parse_tunebook(raw, "old.abc")
    assert [t.title for t in book.tunes] == ["Olé", "Plain"]
    assert [t.encoding for t in book.tunes] == ["iso-8859-1", "utf-8"]  # each tune on its own bytes
    (warning,) = book.warnings
    assert warning.startswith("old.abc:1: byte 0xe9 is not utf-8 (not declared)")


def test_a_tunes_own_declaration_overrides_the_files():
    raw = ("%%abc-charset utf-8\n\nX:1\nT:Sí\nK:C\nC4|\n\n".encode() +
           "X:2\nI:abc-charset iso-8859-1\nT:S\xed\nK:C\nC4|\n".encode("latin-1"))  # fmt: skip
    book = parse_tunebook(raw)
    assert [(t.title, t.encoding) for t in book.tunes] == [("Sí", "utf-8"), ("Sí", "iso-8859-1")]
    assert book.warnings == []


def test_utf8_with_a_byte_order_mark():
    (tune,) = parse_tunebook("\ufeffX:1\nT:Ærø\nK:C\nC4|\n".encode()).tunes
    assert tune.x == "1" and tune.title == "Ærø"


@pytest.mark.parametrize(
    "raw, message",
    [
        ("X:1\nK:C\nC|\n".encode("utf-16"), "is UTF-16 text; ABC files are UTF-8 or ISO-8859"),
        (b"X:1\nK:C\x00\nC|\n", "is not text (a NUL byte at offset 7)"),
    ],
)
def test_files_that_are_not_abc_text_are_refused_in_one_line(raw, message):
    with pytest.raises(TunebookError, match=re.escape(message)) as caught:
        parse_tunebook(raw, "bad.abc")
    assert "\n" not in str(caught.value)


def test_forbidden_directives_are_not_handed_on():
    raw = (
        b"%%abc-include /etc/passwd\nL:1/8\n\nX:1\nT:One\nK:C\nCDEF|\n\n"
        b"X:2\nT:Two\n%%beginsvg\n<script>alert(1)</script>\n\n<g/>\n%%endsvg\nK:C\nC4|\n"
    )
    book = parse_tunebook(raw, "hostile.abc")
    assert [t.x for t in book.tunes] == [
        "1",
        "2",
    ]  # the empty line inside the SVG block does not split tune 2
    for tune in book.tunes:
        assert "abc-include" not in tune.abc and "script" not in tune.abc and "<g/>" not in tune.abc
        assert "L:1/8" in tune.abc
    assert [(d.written, d.line) for d in book.tunes[0].removed] == [("%%abc-include", 1)]
    assert [(d.written, d.line) for d in book.tunes[1].removed] == [("%%abc-include", 1), ("%%beginsvg", 11)]


def test_music21_multi_tune_files_split_as_music21_splits_them():
    """Every tune of music21's multi-tune files, with the reference numbers music21's own ABC reader finds."""
    from music21 import abcFormat, corpus

    for name in ("oneills1850/0001-0050.abc", "josquin/milleRegrets.abc", "essenFolksong/erk5.abc"):
        path = next(
            Path(p) for p in corpus.getPaths(fileExtensions=["abc"]) if Path(p).as_posix().endswith(name)
        )
        book = read_tunebook(path)
        handler = abcFormat.ABCFile()
        handler.open(str(path))
        numbers = list(handler.read().splitByReferenceNumber())
        handler.close()
        assert [tune.number for tune in book.tunes] == numbers, name
        assert all(tune.title and "K:" in tune.abc for tune in book.tunes)


def test_unterminated_blocks_take_linear_time():
    """Each ``%%begin...`` looks for its end line; 20,000 of them with none must not make that quadratic."""
    raw = b"X:1\nK:C\nC|\n\n" + b"%%beginps\n\n" * 20_000 + b"X:2\nK:G\nG|\n"
    start = time.perf_counter()
    book = parse_tunebook(raw)
    assert time.perf_counter() - start < 10
    assert [t.x for t in book.tunes] == ["1", "2"] and len(book.free_text) == 20_000


def test_an_unreadable_file_is_one_line(tmp_path):
    folder = tmp_path / "book.abc"
    folder.mkdir()
    with pytest.raises(TunebookError, match="no such file"):
        read_tunebook(folder)
