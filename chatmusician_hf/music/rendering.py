"""Render one tune to sheet music (SVG, abcm2ps), MIDI (abc2midi) and audio (WAV, fluidsynth + General MIDI).

abcm2ps draws every ``V:`` voice on its own staff (checked: two staves for a two-voice tune) and with ``-g``
writes one SVG per tune. verovio is not used: it folds voices onto one staff and crashes its host process on bad
input. The tune goes through :func:`~chatmusician_hf.music.validate.prepare` first (directives that read files or
pass raw code are removed, and the report says so), abcm2ps runs in its secure mode (``-S``: no ``%%EPS``, no
PostScript) as a second guard, and all work happens in a private temporary directory. Each output is checked there
-- the SVG made inert (:mod:`.svg_safety`), every size and the music's length held to an :class:`OutputBudget` --
and only then copied into ``out_dir``; an output that fails is not written, and ``messages`` says why.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from .budget import OutputBudget
from .errors import AbcError
from .midi import MidiFormatError, midi_seconds
from .runner import run_tool, soundfont_path, temporary_workdir
from .svg_safety import UnsafeSvgError, sanitize_svg
from .validate import AbcIssue, ValidationReport, prepare, validate_prepared

FORMATS = ("abc", "svg", "mid", "wav")
MAX_STEM_CHARS = 80
# 22.05 kHz without reverb and chorus, samples loaded on demand: a 32-bar tune synthesises in about a third of
# the CPU time of fluidsynth's defaults (benchmarks/abc_layer.py), and a General MIDI preview loses nothing audible.
SAMPLE_RATE = 22050
FLUIDSYNTH_SETTINGS = ["-R", "0", "-C", "0", "-o", "synth.dynamic-sample-loading=1"]


@dataclass
class RenderResult:
    paths: dict[str, Path]  # format -> file written in out_dir ("abc", "svg", "mid", "wav")
    report: ValidationReport
    # SVG pages after the first (one per further tune in the text)
    extra_pages: list[Path] = field(default_factory=list)
    # tool -> why a requested format was not written (its output, or the limit it went over)
    messages: dict[str, str] = field(default_factory=dict)


def safe_stem(stem: str) -> str:
    """A file name stem that stays inside ``out_dir``: no separators, no leading dots, limited length."""
    cleaned = re.sub(r"[^A-Za-z0-9_-]+", "_", str(stem)).strip("_")[:MAX_STEM_CHARS]
    return cleaned or "tune"


def render_abc(
    abc: str,
    out_dir,
    *,
    formats=("svg", "mid", "wav"),
    stem: str = "tune",
    timeout: float = 20.0,
    sample_rate: int = SAMPLE_RATE,
    budget: OutputBudget | None = None,
) -> RenderResult:
    """Validate ``abc`` and write ``out_dir/<stem>.{abc,svg,mid,wav}`` for the requested formats.

    A format the tools cannot produce (an unparseable tune has no MIDI, hence no WAV) or that goes over the
    ``budget`` is left out of ``paths`` and the reason is kept in ``messages``; a tool that fails makes the report
    invalid, in its own words. The ``.abc`` written is the tune as the tools saw it (forbidden directives replaced
    by comments). Raises :class:`AbcError` for unusable input, an unknown format or a bad budget,
    :class:`MissingToolError` when a needed program is absent.
    """
    budget = (budget or OutputBudget()).check()
    text, removed = prepare(abc)
    formats = tuple(formats)
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise AbcError(f"unknown render format(s) {unknown}; choose from {FORMATS}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = safe_stem(stem)
    with temporary_workdir() as work:
        # validation writes tune.abc and tune.mid in the work dir; the MIDI is reused below
        result = RenderResult({}, validate_prepared(text, removed, timeout=timeout, workdir=work))
        if "abc" in formats:
            result.paths["abc"] = _copy_text(text, out / f"{stem}.abc")
        if "svg" in formats:
            _render_svg(work, out, stem, timeout, budget, result)
        if "mid" in formats or "wav" in formats:
            fits = _midi_fits(work / "tune.mid", budget, result)
            if fits and "mid" in formats:
                result.paths["mid"] = Path(shutil.copyfile(work / "tune.mid", out / f"{stem}.mid"))
            if fits and "wav" in formats:
                _render_wav(work, out, stem, timeout, sample_rate, budget, result)
    return result


def _copy_text(abc: str, path: Path) -> Path:
    path.write_text(abc if abc.endswith("\n") else abc + "\n", encoding="utf-8")
    return path


def _tool_failed(result: RenderResult, run) -> None:
    """A tool that exited non-zero or was stopped makes the tune invalid, in its own words."""
    failure = run.failure()
    if failure:
        issue = AbcIssue(f"{run.program}-failed", run.brief(), None, None, run.program)
        result.report.errors.append(issue)
        result.report.is_valid = False


def _render_svg(
    work: Path, out: Path, stem: str, timeout: float, budget: OutputBudget, result: RenderResult
) -> None:
    # -g: one SVG per tune, named page001.svg, page002.svg, ...; -S: secure mode (no %%EPS, no PostScript)
    run = run_tool("abcm2ps", ["-S", "-g", "-O", "page", "tune.abc"], cwd=work, timeout=timeout)
    _tool_failed(result, run)
    pages = sorted(work.glob("page*.svg"))
    if not pages:
        result.messages["abcm2ps"] = run.brief() or "abcm2ps wrote no SVG"
        return
    size = sum(page.stat().st_size for page in pages)
    if len(pages) > budget.max_svg_pages or size > budget.max_svg_bytes:
        result.messages["abcm2ps"] = (
            f"sheet music not written: {len(pages)} page(s), {size:,} bytes; the limits are "
            f"{budget.max_svg_pages} page(s) (max_svg_pages) and {budget.max_svg_bytes:,} bytes (max_svg_bytes)"
        )
        return
    cleaned, dropped = [], set()
    for page in pages:
        try:
            svg, removed = sanitize_svg(page.read_bytes())
        except UnsafeSvgError as err:
            result.messages["abcm2ps"] = f"sheet music not written: {err}"
            return
        cleaned.append(svg)
        dropped.update(removed)
    if dropped:
        result.messages["abcm2ps"] = "removed from the sheet music: " + ", ".join(sorted(dropped))
    names = [f"{stem}.svg"] + [f"{stem}-page{number}.svg" for number in range(2, len(pages) + 1)]
    written = [out / name for name in names]
    for path, svg in zip(written, cleaned, strict=True):
        path.write_bytes(svg)
    result.paths["svg"], result.extra_pages = written[0], written[1:]


def _midi_fits(midi: Path, budget: OutputBudget, result: RenderResult) -> bool:
    """Whether abc2midi's MIDI exists, is complete and is within budget (the music's length included); if not,
    ``result.messages`` says why."""
    data = midi.read_bytes() if midi.is_file() else b""
    if not data:
        result.messages["abc2midi"] = "abc2midi wrote no MIDI file (no playable notes?)"
        return False
    try:
        seconds = midi_seconds(data)
    except MidiFormatError as err:
        result.messages["abc2midi"] = (
            f"MIDI and audio not written: abc2midi's MIDI file is incomplete ({err})"
        )
        return False
    if len(data) > budget.max_midi_bytes:
        result.messages["abc2midi"] = (
            f"MIDI and audio not written: the MIDI file is {len(data):,} bytes; the limit is "
            f"{budget.max_midi_bytes:,} (max_midi_bytes)"
        )
        return False
    if seconds > budget.max_audio_seconds:
        result.messages["abc2midi"] = (
            f"MIDI and audio not written: with its repeats and parts the tune lasts {seconds:,.0f} s; the limit is "
            f"{budget.max_audio_seconds:g} s (max_audio_seconds)"
        )
        return False
    return True


def _render_wav(
    work: Path,
    out: Path,
    stem: str,
    timeout: float,
    sample_rate: int,
    budget: OutputBudget,
    result: RenderResult,
) -> None:
    soundfont = soundfont_path()
    args = [
        "-ni",
        "-q",
        *FLUIDSYNTH_SETTINGS,
        "-r",
        str(sample_rate),
        "-F",
        "tune.wav",
        str(soundfont),
        "tune.mid",
    ]
    limit = budget.wav_bytes(sample_rate)
    run = run_tool("fluidsynth", args, cwd=work, timeout=timeout, max_file_bytes=limit)
    _tool_failed(result, run)
    wav = work / "tune.wav"
    if run.failure() or not wav.is_file() or wav.stat().st_size <= 44:
        result.messages["fluidsynth"] = run.brief() or "fluidsynth wrote no audio"
        return
    result.paths["wav"] = Path(shutil.copyfile(wav, out / f"{stem}.wav"))
