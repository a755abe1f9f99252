"""``chatmusician-hf render``: turn ABC tunes into sheet music (SVG), MIDI and audio (WAV), and print their
validation.

    chatmusician-hf render BOOK.abc --svg --midi --wav --out DIR
    some-model-output | chatmusician-hf render - --out DIR

Every tune of the input is rendered: an ``.abc`` file is read as a tunebook (see ``validate``), other input (a model's
answer) is searched for tunes; ``--tune_index`` or ``--x`` keeps one. One tune's files are ``<stem>.<format>``; with
several, each tune's are ``<stem>-<X>.<format>``, each gets a one-line verdict and a summary table ends the output.
With no format flag, all three formats are written. Directives that read files or pass raw code are removed first
(the report names them), and every output is held to the limits below (``--max_audio_seconds`` and the others): what
goes over one is not written, and the message says which limit. The Python API is
:func:`chatmusician_hf.music.render_abc`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from .configs import RecipeError, make_stage_parser
from .music.budget import OutputBudget
from .music.errors import AbcError
from .validate import TuneSelection, add_positional_input, print_results, run_checks, selected_tunes


@dataclass
class RenderArguments(TuneSelection):
    out: str = field(
        default="rendered", metadata={"help": "Folder to write the files to (created if missing)."}
    )
    svg: bool = field(
        default=False, metadata={"help": "Write sheet music as SVG (abcm2ps; one staff per voice)."}
    )
    midi: bool = field(default=False, metadata={"help": "Write a MIDI file (abc2midi)."})
    wav: bool = field(
        default=False, metadata={"help": "Write a WAV file (fluidsynth with the General MIDI soundfont)."}
    )
    stem: str = field(
        default=None,
        metadata={
            "help": "File name stem for the outputs; default: the input file's stem ('tune' for stdin). With "
            "several tunes, each tune's files are <stem>-<X>."
        },
    )


def main(args: RenderArguments, budget: OutputBudget | None = None):
    from .music.verdicts import check_tune, output_stems

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise RecipeError(f"--out {out} is a file; give a folder to write into")
    try:
        budget = (budget or OutputBudget()).check()
    except AbcError as err:
        raise RecipeError(str(err)) from None
    tunes, warnings = selected_tunes(args)
    formats = ["abc"] + [
        name for name, wanted in (("svg", args.svg), ("mid", args.midi), ("wav", args.wav)) if wanted
    ]
    if formats == ["abc"]:
        formats += ["svg", "mid", "wav"]
    stems = dict(
        zip((t.index for t in tunes), output_stems(tunes, args.stem or _default_stem(args.tune)), strict=True)
    )

    def render(tune):
        try:
            return check_tune(tune, out_dir=out, formats=formats, stem=stems[tune.index], timeout=args.timeout,
                              budget=budget)  # fmt: skip
        except OSError as err:
            raise RecipeError(f"cannot write to {out}: {err.strerror}") from err

    verdicts = run_checks(tunes, render, quiet=args.json_report)
    print_results(verdicts, warnings, args)
    if not args.json_report:
        _print_outputs(verdicts, out)
    return verdicts


def _default_stem(source: str) -> str:
    return "tune" if source == "-" else Path(source).stem


def _print_outputs(verdicts, out: Path) -> None:
    """Which files were written (each one, for a single tune) and why a requested one was not."""
    from .music.verdicts import printable

    for verdict in verdicts:
        prefix = f"{verdict.label}: " if len(verdicts) > 1 else ""
        for tool, message in verdict.messages.items():
            print(f"{prefix}{tool}: {printable(message)}", file=sys.stderr)
    if len(verdicts) == 1:
        for name, path in verdicts[0].paths.items():
            print(f"wrote {name}: {path}")
    else:
        files = sum(len(verdict.paths) for verdict in verdicts)
        print(f"wrote {files} files for {len(verdicts)} tunes to {out}")


def make_parser(subparsers=None):
    parser = make_stage_parser(
        subparsers,
        "render",
        [RenderArguments, OutputBudget],
        help="Render ABC tunes to SVG sheet music, MIDI and WAV, and print their validation.",
        description=__doc__.split("\n\n")[0],
    )
    return add_positional_input(parser)


if __name__ == "__main__":
    from .cli import run_as_main

    run_as_main("render")
