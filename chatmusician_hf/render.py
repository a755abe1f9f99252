"""``chatmusician-hf render``: turn one ABC tune into sheet music (SVG), MIDI and audio (WAV), and print its
validation report.

    chatmusician-hf render TUNE.abc --svg --midi --wav --out DIR
    some-model-output | chatmusician-hf render - --out DIR

The input may be a bare tune or free text (a model's answer): the first tune found in it is rendered. With no
format flag, all three formats are written. The Python API is :func:`chatmusician_hf.music.render_abc`.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .configs import RecipeError, make_stage_parser


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
    if source == "-":
        return sys.stdin.read()
    path = Path(source)
    if not path.is_file():
        raise RecipeError(f"render: input file not found: {path}")
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def main(args: RenderArguments):
    from .music import AbcError, extract_tunes, render_abc

    if not args.tune:
        raise RecipeError("render: give an ABC file (or '-' for standard input)")
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
            tunes[args.tune_index].abc, args.out, formats=formats, stem=stem, timeout=args.timeout
        )
    except AbcError as err:
        raise RecipeError(f"render: {err}") from err
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
        [RenderArguments],
        help="Render an ABC tune to SVG sheet music, MIDI and WAV, and print its validation report.",
        description=__doc__.split("\n\n")[0],
    )
    # the input may also be given positionally: `render TUNE.abc`; it fills the same `tune` field
    parser.add_argument(
        "tune", nargs="?", default=None, metavar="TUNE", help="ABC file, or '-' for standard input."
    )
    return parser


if __name__ == "__main__":
    from .cli import run_as_main

    run_as_main("render")
