"""Hostile ABC through the ABC layer: the directive policy, validate, render, transpose, budgets, honest verdicts.

Every fixture of ``fixtures/hostile/`` goes through validate, render and transpose with a planted secret file; no
report, MIDI, WAV or SVG may hold its content or path, no SVG may be active, and a strace of the whole run shows
that no program even opened it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import wave
from pathlib import Path

import pytest
from hostile_corpus import (
    ALL_FIXTURES,
    DIRECTIVE_FIXTURES,
    HOSTILE,
    assert_files_clean,
    assert_inert_svg,
    assert_no_secret,
    directive_line,
    hostile,
    plant_secret,
)

from chatmusician_hf.abc.directives import FORBIDDEN, strip_directives
from chatmusician_hf.music import AbcError, render_abc, transpose_abc, validate_abc
from chatmusician_hf.music.budget import OutputBudget
from chatmusician_hf.music.confinement import DEFAULT_FILE_LIMIT, DEFAULT_MEMORY_LIMIT, tool_environment
from chatmusician_hf.music.runner import MAX_OUTPUT_BYTES, OUTPUT_GAP, TAIL_BYTES, run_tool
from chatmusician_hf.music.svg_safety import UnsafeSvgError, sanitize_svg
from chatmusician_hf.music.validate import validate_prepared

REPO = Path(__file__).resolve().parents[1]
REEL = REPO / "tests" / "fixtures" / "abc" / "reel_32_bars.abc"


@pytest.fixture
def secret(tmp_path):
    return plant_secret(tmp_path)


def ten_thousand_voices() -> str:
    return "X:1\nT:Voices\nM:4/4\nL:1/8\nK:C\n" + "".join(f"V:{v}\nCDEF GABc|\n" for v in range(10_000))


# ---------------------------------------------------------------- the policy


@pytest.mark.parametrize(
    "text, removed, kept",
    [
        ("X:1\n%%abc-include /etc/passwd\nK:C\nC|", ["line 2: %%abc-include"], "X:1\n%\nK:C\nC|"),
        ("X:1\n%%abc-include/etc/passwd\nK:C\nC|", ["line 2: %%abc-include"], "X:1\n%\nK:C\nC|"),
        ("X:1\r%%ABC-INCLUDE x\rK:C\rC|", ["line 2: %%ABC-INCLUDE"], "X:1\r%\rK:C\rC|"),
        ("X:1\r\n  %%  format x\r\nK:C", ["line 2: %%format"], "X:1\r\n%\r\nK:C"),
        ("X:1\nI:abc-include x\nK:C\nC|", ["line 2: I:abc-include"], "X:1\n%\nK:C\nC|"),
        ("X:1\nK:C\nC[I:MIDI ptstress x]D|", ["line 3: [I:MIDI ptstress]"], "X:1\nK:C\nCD|"),
        (
            "X:1\nK:C\n%%MIDI ptstress 2 110 1.2 90 0.8\nC|",
            [],
            "X:1\nK:C\n%%MIDI ptstress 2 110 1.2 90 0.8\nC|",
        ),
        ("X:1\nK:C\n%%MIDI ptstress 0 1\nC|", ["line 3: %%MIDI ptstress"], "X:1\nK:C\n%\nC|"),
        ("%%beginsvg\n<script/>\n%%abc-include x\n%%endsvg\nX:1", ["line 1: %%beginsvg"], "%\n%\n%\n%\nX:1"),
        ("X:1\n%%beginps\nnever ended\nK:C\nC|", ["line 2: %%beginps"], "X:1\n%\n%\n%\n%"),
        ("X:1\n%%abc-version 2.1\n%%MIDI program 1\n% %abc-include x\nK:C", [], None),
        ("X:1\nT:%%abc-include x\nK:C\nC|", [], None),
    ],
)
def test_policy_removes_exactly_the_forbidden_forms(text, removed, kept):
    out, found = strip_directives(text)
    assert [f"line {d.line}: {d.written}" for d in found] == removed
    assert out == (text if kept is None else kept)
    assert len(out.splitlines()) == len(text.splitlines()), "line numbers stay those of the text as given"


def test_the_corpus_exercises_every_directive_of_the_policy(secret):
    seen = set()
    for name in DIRECTIVE_FIXTURES:
        _, found = strip_directives(hostile(name, secret))
        seen |= {d.written.lower().lstrip("%[").removeprefix("i:").rstrip("]") for d in found}
    expected = set(FORBIDDEN) | {"midi ptstress", "mididef ptstress"}
    assert expected <= seen, expected - seen


def test_the_readme_names_every_directive_of_the_policy():
    readme = (REPO / "README.md").read_text()
    security = readme[readme.index("## Security") :]
    for name in [*FORBIDDEN, "ptstress"]:
        assert name.lower() in security.lower(), f"README's Security section does not name {name}"


# ---------------------------------------------------------------- validate, render, transpose


@pytest.mark.parametrize("name", DIRECTIVE_FIXTURES)
def test_validate_reports_the_directive_and_leaks_nothing(name, secret):
    report = validate_abc(hostile(name, secret))
    assert not report.is_valid
    removed = [issue for issue in report.errors if issue.code == "forbidden-directive"]
    assert removed and removed[0].line == directive_line(name)
    assert "removed before the tools ran" in removed[0].message
    assert_no_secret(secret, json.dumps(report.to_dict()), report.summary())


@pytest.mark.parametrize("name", ALL_FIXTURES)
def test_render_writes_no_secret_no_active_svg_and_stays_in_budget(name, secret, tmp_path):
    out = tmp_path / "out"
    result = render_abc(hostile(name, secret), out, formats=("abc", "svg", "mid", "wav"))
    files = assert_files_clean(secret, out)
    assert_no_secret(secret, result.report.summary(), json.dumps(result.messages))
    assert {p.suffix for p in files} <= {".abc", ".svg", ".mid", ".wav"}
    budget = OutputBudget()
    if "wav" in result.paths:
        with wave.open(str(result.paths["wav"])) as wav:
            assert wav.getnframes() / wav.getframerate() <= budget.max_audio_seconds + 10
    if "mid" in result.paths:
        assert result.paths["mid"].stat().st_size <= budget.max_midi_bytes
    assert "svg" in result.paths, result.messages
    if name in DIRECTIVE_FIXTURES:
        assert any(issue.code == "forbidden-directive" for issue in result.report.errors)
        # the .abc written is the tune the tools saw: the directive is gone
        assert "%%abc-include" not in result.paths["abc"].read_text()


def test_markup_written_into_titles_and_fonts_is_made_inert(tmp_path, secret):
    result = render_abc(hostile("markup_in_text", secret), tmp_path, formats=("svg",))
    svg = result.paths["svg"].read_text()
    assert_inert_svg(svg.encode())
    # the title is still shown, as text
    assert "Title --&gt; &lt;script&gt;alert(1)&lt;/script&gt;" in svg
    assert "removed from the sheet music" in result.messages["abcm2ps"]
    assert "url(" not in svg and "attacker.example" not in svg


@pytest.mark.parametrize("name", DIRECTIVE_FIXTURES)
def test_transpose_refuses_the_directive_by_name_and_line(name, secret):
    with pytest.raises(
        AbcError, match=rf"^cannot transpose: line {directive_line(name)}: (%%|I:|\[I:)"
    ) as err:
        transpose_abc(hostile(name, secret), 2)
    assert_no_secret(secret, str(err.value))
    assert "\n" not in str(err.value)


STRACE_SCRIPT = """
import sys, tempfile
sys.path.insert(0, sys.argv[2])
from hostile_corpus import ALL_FIXTURES, Secret, hostile
from chatmusician_hf.music import AbcError, render_abc, transpose_abc, validate_abc
secret = Secret(__import__("pathlib").Path(sys.argv[1]), "unused")
for name in ALL_FIXTURES:
    text = hostile(name, secret)
    validate_abc(text)
    render_abc(text, tempfile.mkdtemp(), formats=("abc", "svg", "mid", "wav"))
    try:
        transpose_abc(text, 3)
    except AbcError:
        pass
print("done", len(ALL_FIXTURES))
"""


def test_no_program_even_opens_the_secret(secret, tmp_path):
    """strace follows the Python process and every program it starts: the secret file and /dev/zero are never
    opened (the policy removes the directives; the reports could not leak what was never read)."""
    strace = shutil.which("strace")
    if strace is None:
        pytest.skip("strace is not installed (apt-get install strace); the grep tests above still ran")
    probe = subprocess.run([strace, "-o", "/dev/null", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"strace cannot trace here ({probe.stderr.strip()[:100]})")
    log = tmp_path / "strace.log"
    run = subprocess.run(
        [strace, "-f", "-e", "trace=open,openat,openat2,execve", "-o", str(log), sys.executable, "-c",
         STRACE_SCRIPT, str(secret.path), str(Path(__file__).parent)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0 and "done" in run.stdout, run.stderr[-2000:]
    trace = log.read_text()
    assert trace.count("execve(") > 3 * len(ALL_FIXTURES), "the programs ran under the trace"
    assert str(secret.path) not in trace
    assert '"/dev/zero"' not in trace


# ---------------------------------------------------------------- honest verdicts


def test_runaway_parts_are_invalid_in_abc2midis_words():
    report = validate_abc((HOSTILE / "runaway_parts.abc").read_text())
    assert not report.is_valid and not report.parses
    messages = {issue.code: issue.message for issue in report.errors}
    assert messages["abc2midi-message"] == "eputc: aborting because of file runaway (infinite loop)"
    assert messages["abc2midi-failed"] == "abc2midi exited with status 1"
    assert messages["truncated-midi"].startswith(
        "abc2midi's MIDI file is incomplete: track 1 of 1 is cut off"
    )


def test_abc2midis_routine_output_is_not_taken_for_an_abort():
    # a blank line after a tune with named voices makes abc2midi print its voice table
    tune = "X:1\nM:4/4\nL:1/4\nV:S\nV:A\nK:C\n[V:S] CDEF|\n[V:A] CDEF|\n\n\n"
    assert validate_abc(tune).is_valid, validate_abc(tune).summary()
    # an unknown chord name, and abc2midi's hint on how to define it
    chord_hint = validate_abc('X:1\nM:4/4\nL:1/4\nK:C\n"Cadd9"CDEF|\n')
    assert chord_hint.is_valid and [w.code for w in chord_hint.warnings] == ["abc2midi-nonmusical"]


def test_ten_thousand_voices_are_invalid_in_abc2midis_words(tmp_path):
    report = validate_abc(ten_thousand_voices())
    assert not report.is_valid
    assert any("file runaway" in issue.message for issue in report.errors)
    assert any(issue.code == "abc2midi-failed" for issue in report.errors)
    assert len(report.summary().splitlines()[0]) < 200, "the voice list is not printed for 10,000 voices"
    result = render_abc(ten_thousand_voices(), tmp_path, formats=("mid", "wav"))
    assert result.paths == {} and "incomplete" in result.messages["abc2midi"]


def test_dev_zero_never_reaches_abc2midi_and_the_memory_limit_stops_it_if_it_did(tmp_path):
    text = (HOSTILE / "abc_include_dev_zero.abc").read_text()
    start = time.monotonic()
    report = validate_abc(text)
    assert time.monotonic() - start < 10
    assert [i.code for i in report.errors] == ["forbidden-directive"] and report.errors[0].line == 3
    # The backstop, with the policy bypassed: abc2midi reads /dev/zero until the address-space limit stops it,
    # and its own words make the tune invalid (it exits 0 after saying so).
    raw = validate_prepared(text, [], timeout=60, workdir=tmp_path)
    assert not raw.is_valid
    words = [issue.message for issue in raw.errors if issue.source == "abc2midi"]
    assert "Out of memory error - malloc failed!" in words, raw.summary()


def test_a_failing_abcm2ps_makes_the_render_invalid_in_its_own_words(tmp_path):
    tune = "X:1\nT:Unknown decoration\nM:4/4\nL:1/8\nK:C\nCDEF !nosuchdeco!GABc|\n"
    assert validate_abc(tune).is_valid, "abc2midi alone accepts it"
    result = render_abc(tune, tmp_path, formats=("svg",))
    assert not result.report.is_valid
    (issue,) = [i for i in result.report.errors if i.code == "abcm2ps-failed"]
    assert issue.message.startswith("abcm2ps exited with status 1.")
    assert "Decoration !nosuchdeco! not defined" in issue.message


# ---------------------------------------------------------------- budgets


def test_slow_tempo_and_long_repeats_are_refused_before_midi_or_audio_is_written(tmp_path):
    for name in ("slow_tempo", "long_repeats"):
        out = tmp_path / name
        result = render_abc((HOSTILE / f"{name}.abc").read_text(), out, formats=("abc", "svg", "mid", "wav"))
        assert sorted(p.suffix for p in out.iterdir()) == [".abc", ".svg"]
        message = result.messages["abc2midi"]
        assert message.startswith("MIDI and audio not written: with its repeats and parts the tune lasts")
        assert "the limit is 600 s (max_audio_seconds)" in message


def test_each_budget_refuses_at_its_limit_and_not_below(tmp_path):
    reel = REEL.read_text()  # 69.8 s of music, one page, a few kB of MIDI
    cases = [
        (OutputBudget(max_audio_seconds=60), "mid", "(max_audio_seconds)"),
        (OutputBudget(max_midi_bytes=1000), "mid", "(max_midi_bytes)"),
        (OutputBudget(max_svg_bytes=1000), "svg", "(max_svg_bytes)"),
    ]
    for number, (budget, kind, flag) in enumerate(cases):
        out = tmp_path / f"refused{number}"
        result = render_abc(reel, out, formats=("svg", "mid", "wav"), budget=budget)
        assert kind not in result.paths and flag in " ".join(result.messages.values())
        assert not list(out.glob(f"*.{kind}"))
    result = render_abc(
        reel, tmp_path / "ok", formats=("svg", "mid", "wav"), budget=OutputBudget(max_audio_seconds=80)
    )
    assert set(result.paths) == {"svg", "mid", "wav"}
    three_tunes = "\n\n".join(reel.replace("X:1", f"X:{n}") for n in (1, 2, 3))
    refused = render_abc(
        three_tunes, tmp_path / "pages", formats=("svg",), budget=OutputBudget(max_svg_pages=2)
    )
    assert "svg" not in refused.paths and "(max_svg_pages)" in refused.messages["abcm2ps"]
    written = render_abc(
        three_tunes, tmp_path / "pages3", formats=("svg",), budget=OutputBudget(max_svg_pages=3)
    )
    assert len(written.extra_pages) == 2
    with pytest.raises(AbcError, match="max_audio_seconds must be a positive number, got nan"):
        render_abc(reel, tmp_path, budget=OutputBudget(max_audio_seconds=float("nan")))


# ---------------------------------------------------------------- the sanitiser on its own


def test_sanitiser_rebuilds_from_the_allow_list():
    svg = (
        b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink">'
        b'<?xml-stylesheet href="http://attacker.example/x.css"?><!-- comment -->'
        b'<g onload="alert(1)" style="fill:url(http://attacker.example/p)"><path d="M0 0h1" class="stroke"/>'
        b'<script>alert(2)</script><use xlink:href="#hd"/><use xlink:href="file:///etc/passwd#x"/></g>'
        b'<style>@import url(http://attacker.example/x.css);</style><text x="1">a &lt;b&gt;</text></svg>'
    )
    cleaned, removed = sanitize_svg(svg)
    assert_inert_svg(cleaned)
    text = cleaned.decode()
    assert '<path d="M0 0h1" class="stroke"/>' in text and 'xlink:href="#hd"' in text
    assert '<text x="1">a &lt;b&gt;</text>' in text
    assert "stylesheet" not in text and "comment" not in text and "attacker" not in text
    assert "<script>" in removed and "the onload attribute" in removed
    for bad in (
        b"<html/>",
        b"<svg",
        b'<!DOCTYPE svg [<!ENTITY x "y">]><svg xmlns="http://www.w3.org/2000/svg">&x;</svg>',
    ):
        with pytest.raises(UnsafeSvgError):
            sanitize_svg(bad)
    deep = b'<svg xmlns="http://www.w3.org/2000/svg">' + b"<g>" * 50_000 + b"</g>" * 50_000 + b"</svg>"
    assert sanitize_svg(deep)[0].count(b"<g") == 50_000  # no recursion limit to exhaust


# ---------------------------------------------------------------- the runner, with ordinary programs


def test_programs_get_an_environment_of_their_own_and_os_limits(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_do_not_pass_me_on")
    env = run_tool("env", [], cwd=tmp_path, timeout=10)
    assert dict(line.split("=", 1) for line in env.stdout.splitlines()) == tool_environment(tmp_path)
    # dash's ulimit: address space in KiB, file size in 512-byte blocks, CPU in seconds, core in blocks
    limits = run_tool("sh", ["-c", "ulimit -v; ulimit -f; ulimit -t; ulimit -c"], cwd=tmp_path, timeout=10)
    assert limits.stdout.split() == [
        str(DEFAULT_MEMORY_LIMIT // 1024),
        str(DEFAULT_FILE_LIMIT // 512),
        "11",
        "0",
    ]
    big = run_tool(
        "dd", ["if=/dev/zero", "of=big", "bs=4096", "count=4"], cwd=tmp_path, timeout=10, max_file_bytes=8192
    )
    assert big.failure() == "dd was stopped by SIGXFSZ (wrote a file larger than its limit)"
    assert (tmp_path / "big").stat().st_size == 8192


def test_a_flood_of_output_costs_bounded_memory_and_keeps_the_last_words(tmp_path):
    flood = run_tool(
        "sh", ["-c", "yes flood | head -c 20000000; echo; echo last words"], cwd=tmp_path, timeout=60
    )
    assert flood.truncated and flood.failure() is None
    assert len(flood.stdout) < MAX_OUTPUT_BYTES + TAIL_BYTES + 100
    assert flood.stdout.splitlines()[-1] == "last words" and OUTPUT_GAP in flood.stdout
    endless = run_tool("yes", [], cwd=tmp_path, timeout=2)
    assert endless.timed_out and endless.failure() == "yes did not finish within 2 s"
    crash = run_tool("sh", ["-c", "kill -SEGV $$"], cwd=tmp_path, timeout=10)
    assert crash.failure() == "sh was stopped by SIGSEGV (crashed)"
