"""Render one tune to sheet music (SVG, abcm2ps), MIDI (abc2midi) and audio (WAV, fluidsynth + General MIDI).

abcm2ps draws every ``V:`` voice on its own staff, with ``-g`` (one SVG per page, used here) as with ``-v``
(checked: both give two staves for a two-voice tune). verovio is not used: it folds voices onto one staff and
crashes its host process on bad input. All work happens in a private temporary directory; only the
finished files are copied into ``out_dir``.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from .errors import AbcError
from .runner import run_tool, soundfont_path, temporary_workdir
from .validate import ValidationReport, check_input, validate_abc

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
    # SVG pages after the first, for long scores
    extra_pages: list[Path] = field(default_factory=list)
    # tool -> its output, for each requested format that was not produced
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
) -> RenderResult:
    """Validate ``abc`` and write ``out_dir/<stem>.{abc,svg,mid,wav}`` for the requested formats.

    A format the tools cannot produce (an unparseable tune has no MIDI, hence no WAV) is left out of ``paths``
    and the tool's output is kept in ``messages``; the validation report says why. Raises :class:`AbcError` for
    unusable input or an unknown format, :class:`MissingToolError` when a needed program is absent.
    """
    abc = check_input(abc)
    formats = tuple(formats)
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise AbcError(f"unknown render format(s) {unknown}; choose from {FORMATS}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = safe_stem(stem)
    paths: dict[str, Path] = {}
    result = RenderResult(paths, report=None)  # type: ignore[arg-type]
    with temporary_workdir() as work:
        # validation writes tune.abc and tune.mid in the work dir; the MIDI is reused below
        result.report = validate_abc(abc, timeout=timeout, _workdir=work)
        if "abc" in formats:
            paths["abc"] = _copy_text(abc, out / f"{stem}.abc")
        if "svg" in formats:
            _render_svg(work, out, stem, timeout, result)
        midi = work / "tune.mid"
        if ("mid" in formats or "wav" in formats) and not (midi.is_file() and midi.stat().st_size > 0):
            result.messages["abc2midi"] = "abc2midi wrote no MIDI file (no playable notes?)"
        elif "mid" in formats or "wav" in formats:
            if "mid" in formats:
                paths["mid"] = Path(shutil.copyfile(midi, out / f"{stem}.mid"))
            if "wav" in formats:
                _render_wav(work, out, stem, timeout, sample_rate, result)
    return result


def _copy_text(abc: str, path: Path) -> Path:
    path.write_text(abc if abc.endswith("\n") else abc + "\n", encoding="utf-8")
    return path


def _render_svg(work: Path, out: Path, stem: str, timeout: float, result: RenderResult) -> None:
    # -g: one SVG per page, named page001.svg, page002.svg, ...
    run = run_tool("abcm2ps", ["-g", "-O", "page", "tune.abc"], cwd=work, timeout=timeout)
    pages = sorted(work.glob("page*.svg"))
    if not pages:
        result.messages["abcm2ps"] = run.brief() or "abcm2ps wrote no SVG"
        return
    result.paths["svg"] = Path(shutil.copyfile(pages[0], out / f"{stem}.svg"))
    for number, page in enumerate(pages[1:], start=2):
        result.extra_pages.append(Path(shutil.copyfile(page, out / f"{stem}-page{number}.svg")))


def _render_wav(
    work: Path, out: Path, stem: str, timeout: float, sample_rate: int, result: RenderResult
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
    run = run_tool("fluidsynth", args, cwd=work, timeout=timeout)
    wav = work / "tune.wav"
    if run.timed_out or not wav.is_file() or wav.stat().st_size <= 44:
        result.messages["fluidsynth"] = run.brief() or "fluidsynth wrote no audio"
        return
    result.paths["wav"] = Path(shutil.copyfile(wav, out / f"{stem}.wav"))
