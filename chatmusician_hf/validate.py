"""``chatmusician-hf validate``: check every tune of an ABC file; a one-line verdict per tune, then a summary table.

    chatmusician-hf validate BOOK.abc
    chatmusician-hf validate BOOK.abc --x 3 --json_report

An ``.abc`` file is read as a tunebook (:mod:`chatmusician_hf.abc.tunebook`: the file header applied to every tune,
free text and comments set apart, continuation lines joined, its character set as declared, else UTF-8 or latin-1).
Other input -- a model's answer in a text file, or ``-`` for standard input, in UTF-8 -- is searched for tunes as in
``chat`` and ``generate``. Line numbers in verdicts are the file's. ``render`` does the same and also writes each
tune's sheet music, MIDI and audio. The Python API is :func:`chatmusician_hf.music.verdicts.check_tune`.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .abc.tunebook import Tune, TunebookError, parse_tunebook, read_tunebook
from .configs import RecipeError, make_stage_parser
from .text_input import TextInputError, decode_utf8, finite_number

TUNEBOOK_SUFFIX = ".abc"
PROGRESS_FROM = 20  # tunes: a progress bar from this many on


@dataclass
class TuneSelection:
    tune: str = field(
        default=None,
        metadata={
            "help": "ABC file, or '-' for standard input (also accepted as the first positional argument). An .abc "
            "file is read as a tunebook, every tune of it; other text is searched for tunes."
        },
    )
    tune_index: int | None = field(
        default=None, metadata={"help": "Keep only the tune at this position in the input (0 = the first)."}
    )
    x: int | None = field(
        default=None, metadata={"help": "Keep only the tune with this X: number (X:0003 is 3)."}
    )
    timeout: float = field(
        default=20.0, metadata={"help": "Seconds each external program may run, per tune."}
    )
    json_report: bool = field(
        default=False,
        metadata={
            "help": "Print one JSON object instead of text: every tune's verdict, report and files, the summary "
            "and the reader's warnings."
        },
    )


def read_tunes(source: str) -> tuple[list[Tune], list[str]]:
    """The tunes of ``source`` and the reader's warnings; :class:`RecipeError` (one line) when it is unusable."""
    from .music import extract_tunes

    try:
        if source != "-" and Path(source).suffix.lower() == TUNEBOOK_SUFFIX:
            book = read_tunebook(source)
            return book.tunes, book.warnings
        if source == "-":
            text = decode_utf8(sys.stdin.buffer.read(), "standard input")
        elif Path(source).is_file():
            text = decode_utf8(Path(source).read_bytes(), source)
        else:
            raise RecipeError(f"input file not found: {source}")
    except (TextInputError, TunebookError) as err:
        raise RecipeError(str(err)) from None
    name = "standard input" if source == "-" else source
    tunes = []
    for found in extract_tunes(text):
        # each tune found goes through the tunebook reader too (directive policy, continuations, comments)
        (tune,) = parse_tunebook(found.abc.encode(), name).tunes or (None,)
        if tune is not None:
            shift = text.count("\n", 0, found.start)
            tunes.append(dataclasses.replace(tune, index=len(tunes), line=tune.line + shift,
                                             line_map=tuple(n + shift for n in tune.line_map)))  # fmt: skip
    return tunes, []


def select(tunes: list[Tune], args: TuneSelection) -> list[Tune]:
    """The tunes ``--tune_index`` or ``--x`` keep (all without either)."""
    where = "standard input" if args.tune == "-" else args.tune
    if not tunes:
        raise RecipeError(f"no ABC tune found in {where}")
    if args.tune_index is not None and args.x is not None:
        raise RecipeError("give --tune_index or --x, not both")
    if args.tune_index is not None:
        if not 0 <= args.tune_index < len(tunes):
            raise RecipeError(f"--tune_index {args.tune_index} but {where} holds {len(tunes)} tune(s)")
        return [tunes[args.tune_index]]
    if args.x is not None:
        kept = [tune for tune in tunes if tune.number == args.x]
        if not kept:
            numbers = ", ".join(dict.fromkeys(t.x for t in tunes if t.x is not None)) or "none"
            raise RecipeError(f"no tune with X:{args.x} in {where} (its X numbers: {numbers[:200]})")
        return kept
    return tunes


def check_tunes(tunes: list[Tune], args: TuneSelection, check, *, quiet: bool) -> list:
    """``check(tune)`` for each tune with a progress bar on long tunebooks, printing each verdict line as it comes
    (``quiet``: none, as for a JSON report)."""
    from tqdm.auto import tqdm

    verdicts = []
    # on a terminal only (disable=None), so a log or a pipe gets the verdicts alone
    disable = True if len(tunes) < PROGRESS_FROM else None
    with tqdm(total=len(tunes), unit="tune", file=sys.stderr, disable=disable) as bar:
        for tune in tunes:
            verdicts.append(check(tune))
            if not quiet and len(tunes) > 1:
                bar.write(verdicts[-1].line(), file=sys.stdout)
            bar.update()
    return verdicts


def print_results(verdicts: list, warnings: list[str], args: TuneSelection) -> None:
    """The JSON report, or for text: one tune's full report, or the summary table of several."""
    from .music.verdicts import printable, summary, summary_table

    if args.json_report:
        record = {"input": args.tune, "tunes": [v.to_dict() for v in verdicts], "summary": summary(verdicts),
                  "warnings": warnings}  # fmt: skip
        print(json.dumps(record, indent=2, ensure_ascii=False))
        return
    for warning in warnings:
        print(f"warning: {printable(warning)}", file=sys.stderr)
    if len(verdicts) > 1:
        print(summary_table(verdicts))
        return
    (verdict,) = verdicts
    lines = verdict.report.summary().splitlines() if verdict.report else [verdict.line()]
    print("\n".join(printable(line) for line in lines))


def main(args: TuneSelection):
    from .music.verdicts import check_tune

    if not args.tune:
        raise RecipeError("give an ABC file (or '-' for standard input)")
    try:
        finite_number(args.timeout, "--timeout")
    except TextInputError as err:
        raise RecipeError(str(err)) from None
    tunes, warnings = read_tunes(args.tune)
    tunes = select(tunes, args)
    verdicts = check_tunes(tunes, args, lambda t: check_tune(t, timeout=args.timeout), quiet=args.json_report)
    print_results(verdicts, warnings, args)
    return verdicts


def add_positional_input(parser):
    """``validate BOOK.abc``: the input may be given positionally; it fills the same ``tune`` field."""
    parser.add_argument(
        "tune", nargs="?", default=None, metavar="TUNE", help="ABC file, or '-' for standard input."
    )
    return parser


def make_parser(subparsers=None):
    parser = make_stage_parser(
        subparsers,
        "validate",
        [TuneSelection],
        help="Check every tune of an ABC file: a verdict per tune and a summary table.",
        description=__doc__.split("\n\n")[0],
    )
    return add_positional_input(parser)


if __name__ == "__main__":
    main(*make_parser().parse_args_and_config())
