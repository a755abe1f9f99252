"""``chatmusician-hf render``: turn one ABC tune into sheet music (SVG), MIDI and audio (WAV), and print its
validation report.

    chatmusician-hf render TUNE.abc --svg --midi --wav --out DIR
    some-model-output | chatmusician-hf render - --out DIR

The input may be a bare tune or free text (a model's answer) in UTF-8: the first tune found in it is rendered. With
no format flag, all three formats are written. Directives that read files or pass raw code are removed first (the
report names them), and every output is held to the limits below (``--max_audio_seconds`` and the others): what
goes over one is not written, and the message says which limit. The Python API is
:func:`chatmusician_hf.music.render_abc`.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .configs import RecipeError, make_stage_parser
from .music.budget import OutputBudget
from .text_input import TextInputError, decode_utf8, finite_number


@dataclass
class RenderArguments:
    tune: str = field(
        default=None,
        metadata={
            "help": "ABC file to render, or '-' to read standard input (also accepted as the first positional "
            "argument). Free text is searched for the first tune."
        },
    )
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
            "help": "File name stem for the outputs; default: the input file's stem ('tune' for stdin)."
        },
    )
    tune_index: int = field(
        default=0, metadata={"help": "Which tune to render when the input holds several (0 = first)."}
    )
    timeout: float = field(default=20.0, metadata={"help": "Seconds each external program may run."})
    json_report: bool = field(
        default=False, metadata={"help": "Print the validation report as JSON instead of text."}
    )


def read_input(source: str) -> str:
    """The text of ``source`` (a file, or '-' for standard input), decoded as UTF-8 and checked."""
    if source == "-":
        raw, what = sys.stdin.buffer.read(), "standard input"
    else:
        path = Path(source)
        if not path.is_file():
            raise RecipeError(f"render: input file not found: {path}")
        raw, what = path.read_bytes(), str(path)
    try:
        return decode_utf8(raw, what)
    except TextInputError as err:
        raise RecipeError(f"render: {err}") from None


def main(args: RenderArguments, budget: OutputBudget | None = None):
    from .music import AbcError, extract_tunes, render_abc

    if not args.tune:
        raise RecipeError("render: give an ABC file (or '-' for standard input)")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise RecipeError(f"render: --out {out} is a file; give a folder to write into")
    try:
        finite_number(args.timeout, "--timeout")
    except TextInputError as err:
        raise RecipeError(f"render: {err}") from None
    text = read_input(args.tune)
    tunes = extract_tunes(text)
    if not tunes:
        raise RecipeError(
            f"render: no ABC tune found in {'standard input' if args.tune == '-' else args.tune}"
        )
    if not 0 <= args.tune_index < len(tunes):
        raise RecipeError(f"render: --tune_index {args.tune_index} but the input holds {len(tunes)} tune(s)")
    formats = ["abc"] + [
        name for name, wanted in (("svg", args.svg), ("mid", args.midi), ("wav", args.wav)) if wanted
    ]
    if formats == ["abc"]:
        formats += ["svg", "mid", "wav"]
    stem = args.stem or ("tune" if args.tune == "-" else Path(args.tune).stem)
    try:
        result = render_abc(
            tunes[args.tune_index].abc, out, formats=formats, stem=stem, timeout=args.timeout, budget=budget
        )
    except AbcError as err:
        raise RecipeError(f"render: {err}") from err
    except OSError as err:
        raise RecipeError(f"render: cannot write to {out}: {err.strerror}") from err
    if args.json_report:
        print(
            json.dumps(
                {"paths": {k: str(v) for k, v in result.paths.items()}, **result.report.to_dict()}, indent=2
            )
        )
    else:
        print(result.report.summary())
        for name, path in result.paths.items():
            print(f"wrote {name}: {path}")
        for tool, message in result.messages.items():
            print(f"{tool}: {message}", file=sys.stderr)
    return result


def make_parser(subparsers=None):
    parser = make_stage_parser(
        subparsers,
        "render",
        [RenderArguments, OutputBudget],
        help="Render an ABC tune to SVG sheet music, MIDI and WAV, and print its validation report.",
        description=__doc__.split("\n\n")[0],
    )
    # the input may also be given positionally: `render TUNE.abc`; it fills the same `tune` field
    parser.add_argument(
        "tune", nargs="?", default=None, metavar="TUNE", help="ABC file, or '-' for standard input."
    )
    return parser


if __name__ == "__main__":
    main(*make_parser().parse_args_and_config())
