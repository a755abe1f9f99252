"""``validate`` and ``render`` over a whole tunebook: a verdict per tune, outputs per tune, a summary, JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from chatmusician_hf.abc.tunebook import read_tunebook
from chatmusician_hf.cli import main as cli_main
from chatmusician_hf.data.corpus import split_tunes
from chatmusician_hf.music import validate_abc

SESSION = Path(__file__).parent / "fixtures" / "tunebooks" / "session.abc"
VALID = [True, True, False, True, True]  # the third tune is the broken one


def run_cli(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "chatmusician_hf.cli", *argv], capture_output=True, text=True, timeout=300
    )


def test_validate_prints_a_verdict_per_tune_and_the_summary(capsys):
    assert cli_main(["validate", str(SESSION)]) == 1  # one tune is invalid
    lines = capsys.readouterr().out.splitlines()
    verdicts = lines[:5]
    starts = [f"{SESSION}:{n} X:{x} " for n, x in zip((12, 23, 33, 46, 50), range(1, 6), strict=True)]
    assert [line.startswith(start) for line, start in zip(verdicts, starts, strict=True)] == [True] * 5
    assert [line.split(": ")[1].split(" ")[0] for line in verdicts] == [
        "valid",
        "valid",
        "INVALID",
        "valid",
        "valid",
    ]
    # the reason of the broken tune, at its line in the file
    assert "line 38:7: Cannot apply broken rhythm" in verdicts[2]
    assert lines[5:8] == ["  tunes   valid invalid", "      5       4       1", "invalid tunes by reason:"]
    assert any(line.split() == ["abc2midi-error", "1"] for line in lines[8:])


def test_json_report_for_scripts(capsys):
    assert cli_main(["validate", str(SESSION), "--json_report"]) == 1
    record = json.loads(capsys.readouterr().out)
    assert [tune["valid"] for tune in record["tunes"]] == VALID
    assert (
        record["summary"]["tunes"] == 5
        and record["summary"]["valid"] == 4
        and record["summary"]["invalid"] == 1
    )
    broken = record["tunes"][2]
    assert broken["x"] == "3" and broken["title"] == "A Broken Jig" and broken["line"] == 33
    assert "abc2midi-error" in broken["reasons"]
    assert {issue["line"] for issue in broken["report"]["errors"]} <= {38}  # the file's line numbers


def test_tune_index_and_x_keep_one_tune(capsys):
    assert cli_main(["validate", str(SESSION), "--x", "3", "--json_report"]) == 1  # the broken jig
    assert [tune["title"] for tune in json.loads(capsys.readouterr().out)["tunes"]] == ["A Broken Jig"]
    assert cli_main(["validate", str(SESSION), "--tune_index", "4"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("valid: 4 bars") and "tunes" not in out  # one tune: its full report, no table


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--x", "9"], "no tune with X:9 in"),
        (["--tune_index", "5"], "--tune_index 5 but"),
        (["--x", "1", "--tune_index", "0"], "give --tune_index or --x, not both"),
    ],
)
def test_a_selection_that_keeps_nothing_is_one_line(argv, message, capsys):
    assert cli_main(["validate", str(SESSION), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_render_writes_each_tunes_outputs(tmp_path, capsys):
    out = tmp_path / "out"
    assert cli_main(["render", str(SESSION), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "A Broken Jig': INVALID" in printed and "      5       4       1" in printed
    names = {path.name for path in out.iterdir()}
    for x in range(1, 6):
        assert {f"session-{x}.{suffix}" for suffix in ("abc", "svg", "mid", "wav")} <= names
    for x in range(1, 6):
        midi = (out / f"session-{x}.mid").read_bytes()
        assert (
            midi[:4] == b"MThd" and b"\xc0\x49" in midi
        )  # the file header's %%MIDI program 73, in every tune
        assert (out / f"session-{x}.svg").read_text().lstrip().startswith("<?xml")
        assert (out / f"session-{x}.wav").read_bytes()[8:12] == b"WAVE"
    tunes = read_tunebook(SESSION).tunes
    assert (out / "session-2.abc").read_text() == tunes[1].abc + "\n"  # the tune as handed to the tools


def test_render_names_tunes_without_or_with_repeated_numbers_by_position(tmp_path, capsys):
    book = tmp_path / "book.abc"
    book.write_text("X:1\nK:C\nCDEF|\n\nX:1\nK:G\nGABc|\n\nT:No Number\nK:D\nDEFG|\n")
    assert cli_main(["render", str(book), "--midi", "--out", str(tmp_path / "out")]) == 0
    assert sorted(p.name for p in (tmp_path / "out").glob("*.mid")) == [
        "book-1.mid",
        "book-n2.mid",
        "book-n3.mid",
    ]
    assert "X:1 is the number of 2 tunes" in capsys.readouterr().err


def test_music21_multi_tune_file_verdicts_match_validating_each_tune(capsys):
    """Each verdict on a music21 tunebook is the validator's verdict on that tune as the corpus module splits it."""
    from music21 import corpus

    path = next(p for p in corpus.getPaths(fileExtensions=["abc"]) if Path(p).as_posix().endswith("erk5.abc"))
    assert cli_main(["validate", str(path), "--json_report"]) == 1  # some of its tunes are invalid
    record = json.loads(capsys.readouterr().out)
    raw = Path(path).read_bytes()
    text = raw.decode("utf-8", errors="strict") if raw.isascii() else raw.decode("latin-1")
    expected = [validate_abc(tune).is_valid for tune in split_tunes(text)]
    assert [tune["valid"] for tune in record["tunes"]] == expected
    assert record["summary"]["tunes"] == len(expected) > 20 and 0 < record["summary"]["valid"] < len(expected)


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "no such file"),
        ("X:1\nK:C\nC|\n".encode("utf-16"), "is UTF-16 text"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "is not text (a NUL byte"),
        (b"Only words, no music.\n", "no ABC tune found in"),
    ],
)
def test_unusable_input_fails_in_one_line_without_a_traceback(tmp_path, content, message):
    path = tmp_path / "input.abc"
    if content is not None:
        path.write_bytes(content)
    for command in ("validate", "render"):
        run = (
            run_cli(command, str(path), "--out", str(tmp_path / "out"))
            if command == "render"
            else run_cli(command, str(path))
        )
        assert run.returncode == 2, run.stderr
        assert message in run.stderr and "Traceback" not in run.stderr
        assert len(run.stderr.strip().splitlines()) == 1


def test_a_long_tunebook_shows_a_progress_bar_on_a_terminal(tmp_path):
    pexpect = pytest.importorskip("pexpect")
    book = tmp_path / "long.abc"
    book.write_text("\n".join(f"X:{n}\nT:Tune {n}\nM:2/4\nL:1/8\nK:G\nGABc|dBAG|\n" for n in range(1, 26)))
    output = pexpect.run(
        f"{sys.executable} -m chatmusician_hf.cli validate {book}", timeout=300, encoding="utf-8"
    )
    assert "25/25" in output and "long.abc:169 X:25 'Tune 25': valid" in output
    piped = run_cli("validate", str(book))
    assert "25/25" not in piped.stderr + piped.stdout  # a pipe gets the verdicts alone


def test_output_stems_never_share_a_file_name():
    from chatmusician_hf.abc.tunebook import parse_tunebook
    from chatmusician_hf.music.verdicts import output_stems

    book = parse_tunebook(b"X:1/2\nK:C\nC|\n\nX:1_2\nK:C\nC|\n\nX:7\nK:C\nC|\n\nT:None\nK:C\nC|\n")
    assert output_stems(book.tunes, "b") == ["b-1_2", "b-n2", "b-7", "b-n4"]
    assert output_stems(book.tunes[:1], "b") == ["b"]


def test_render_writes_every_tune_of_a_music21_tunebook(tmp_path, capsys):
    from music21 import corpus

    path = next(p for p in corpus.getPaths(fileExtensions=["abc"]) if Path(p).as_posix().endswith("erk5.abc"))
    tunes = read_tunebook(path).tunes
    assert cli_main(["render", str(path), "--midi", "--out", str(tmp_path), "--json_report"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert len(record["tunes"]) == len(tunes) == 27
    for tune, verdict in zip(tunes, record["tunes"], strict=True):
        assert verdict["paths"]["abc"] == str(tmp_path / f"erk5-{tune.x}.abc")
        assert Path(verdict["paths"]["mid"]).read_bytes()[:4] == b"MThd"
    assert len(list(tmp_path.glob("erk5-*.mid"))) == 27
