"""Rendering to SVG/MIDI/WAV, and the ``chatmusician-hf render`` command."""

from __future__ import annotations

import io
import re
import struct
import subprocess
import sys
import wave
from pathlib import Path

import pytest

from chatmusician_hf.cli import main as cli_main
from chatmusician_hf.music import AbcError, render_abc
from chatmusician_hf.music.midi import read_midi
from chatmusician_hf.music.rendering import safe_stem

FIXTURES = Path(__file__).parent / "fixtures" / "abc"
# abcm2ps draws each staff as one path of five horizontal lines
STAFF = re.compile(r'<path d="m[\d.]+ [\d.]+\s*h[\d.]+(?:\s*M[\d.]+ [\d.]+\s*h[\d.]+){4}\s*"')


def wav_peak(path: Path) -> int:
    with wave.open(str(path)) as wav:
        assert wav.getsampwidth() == 2
        frames = wav.readframes(wav.getnframes())
    samples = struct.unpack(f"<{len(frames) // 2}h", frames)
    return max(abs(s) for s in samples)


def test_multivoice_tune_renders_one_staff_per_voice_midi_and_audible_wav(tmp_path):
    result = render_abc(
        (FIXTURES / "multivoice.abc").read_text(), tmp_path / "out", formats=("abc", "svg", "mid", "wav")
    )
    assert set(result.paths) == {"abc", "svg", "mid", "wav"}
    assert result.report.is_valid
    svg = result.paths["svg"].read_text()
    assert len(STAFF.findall(svg)) == 2  # melody and bass on separate staves, not folded into one
    midi = read_midi(result.paths["mid"])
    # the 25 melody notes and 15 bass notes as written, one channel per voice
    per_channel = {
        channel: sum(n.channel == channel for n in midi.notes) for channel in {n.channel for n in midi.notes}
    }
    assert per_channel == {0: 25, 1: 15}
    assert wav_peak(result.paths["wav"]) > 1000  # not silent (16-bit full scale is 32767)
    assert all(path.parent == tmp_path / "out" for path in result.paths.values())


def test_single_voice_tune_has_one_staff(tmp_path):
    result = render_abc((FIXTURES / "overfull_bar.abc").read_text(), tmp_path, formats=("svg",))
    assert len(STAFF.findall(result.paths["svg"].read_text())) == 1
    assert result.report.n_bad_bars == 1  # rendered anyway, and the report says what is wrong


@pytest.mark.parametrize(
    "stem", ["../../etc/passwd", "/abs/path", "..", "a/b\\c", "T\u00edtulo: <script>", ""]
)
def test_hostile_stems_stay_inside_out_dir(stem, tmp_path):
    out = tmp_path / "out"
    result = render_abc("X:1\nK:C\nCDEF|", out, formats=("abc", "mid"), stem=stem)
    for path in result.paths.values():
        assert path.resolve().parent == out.resolve()
    assert safe_stem(stem) and "/" not in safe_stem(stem) and not safe_stem(stem).startswith(".")


def test_unplayable_text_gives_no_midi_and_says_why(tmp_path):
    result = render_abc("X:1\nT:only a title\n", tmp_path, formats=("mid", "wav"))
    assert "mid" not in result.paths and "wav" not in result.paths
    assert "abc2midi" in result.messages and not result.report.is_valid


def test_a_flood_of_tool_warnings_is_folded_into_a_short_message(tmp_path):
    # an unclosed grace group over one very long line: abcm2ps writes no SVG and prints its line-split warning
    # tens of thousands of times; the message keeps the first error and folds the repeats
    abc = (
        "X:1\nT:Flood\nM:4/4\nL:1/8\nK:G\nGABc dedB| AF agf Bb>A\"0\")({e2d2c2 agf BbB2G2 B6e2d2c2 B6 "
        "B2B2B2efgFEDB2G2B2G2efg ABcB2G2B2G2 d6e2d2c2 _B4 agffgBAG F2A2 agf AF agffa G3AFED22_Bc/efg\n"
    )
    result = render_abc(abc, tmp_path, formats=("svg",))
    assert "svg" not in result.paths
    message = result.messages["abcm2ps"]
    assert "EOLN in grace note sequence" in message
    assert re.search(r"Line split problem .*\(x\d{3,}\)", message)
    assert len(message.splitlines()) <= 21


def test_unknown_format_raises_abc_error(tmp_path):
    with pytest.raises(AbcError, match="unknown render format"):
        render_abc("X:1\nK:C\nC|", tmp_path, formats=("pdf",))


def test_cli_renders_a_file_and_prints_the_report(tmp_path, capsys):
    out = tmp_path / "cli"
    assert (
        cli_main(["render", str(FIXTURES / "unequal_voices.abc"), "--svg", "--midi", "--out", str(out)]) == 0
    )
    printed = capsys.readouterr().out
    assert "INVALID" in printed and "voices have unequal bar counts: 1=3, 2=2" in printed
    assert sorted(p.name for p in out.iterdir()) == [
        "unequal_voices.abc",
        "unequal_voices.mid",
        "unequal_voices.svg",
    ]


def test_cli_reads_free_text_from_stdin(tmp_path, monkeypatch, capsys):
    # a real standard input: text over bytes, which render reads as bytes and decodes itself
    stdin = io.TextIOWrapper(io.BytesIO((FIXTURES / "prose_answer.txt").read_bytes()), encoding="utf-8")
    monkeypatch.setattr(sys, "stdin", stdin)
    out = tmp_path / "stdin"
    assert cli_main(["render", "-", "--wav", "--out", str(out), "--tune_index", "1"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["tune.abc", "tune.wav"]
    assert (out / "tune.abc").read_text().startswith("T:Second")
    assert "valid" in capsys.readouterr().out


def test_cli_as_a_subprocess_with_no_tune_fails_clearly(tmp_path):
    prose = tmp_path / "prose.txt"
    prose.write_text("No music in here.\n")
    run = subprocess.run(
        [sys.executable, "-m", "chatmusician_hf.cli", "render", str(prose), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2
    assert f"no ABC tune found in {prose}" in run.stderr
