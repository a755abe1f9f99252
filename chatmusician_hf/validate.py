"""``chatmusician-hf validate``: check every tune of an ABC file; a one-line verdict per tune, then a summary table.

    chatmusician-hf validate BOOK.abc
    chatmusician-hf validate BOOK.abc --x 3 --json_report

The exit status is 0 when every tune checked is valid, 1 when one is not, 2 when the input or options are unusable.

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
    try:
        if source != "-" and Path(source).suffix.lower() == TUNEBOOK_SUFFIX:
            book = read_tunebook(source)
            return book.tunes, book.warnings
        if source == "-":
            return tunes_in_text(decode_utf8(sys.stdin.buffer.read(), "standard input"), "standard input"), []
        if Path(source).is_file():
            return tunes_in_text(decode_utf8(Path(source).read_bytes(), source), source), []
    except (TextInputError, TunebookError) as err:
        raise RecipeError(str(err)) from None
    raise RecipeError(f"input file not found: {source}")


def tunes_in_text(text: str, source: str) -> list[Tune]:
    """The tunes ``extract_tunes`` finds in free text (a model's answer), each read as a one-tune tunebook so that it
    gets the same treatment (directive policy, continuations, comments apart) and the text's line numbers."""
    from .music import extract_tunes

    tunes = []
    for found in extract_tunes(text):
        for tune in parse_tunebook(found.abc.encode(), source).tunes:
            shift = text.count("\n", 0, found.start)
            moved = tuple(n + shift for n in tune.line_map)
            tunes.append(dataclasses.replace(tune, index=len(tunes), line=tune.line + shift, line_map=moved))
    return tunes


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


def run_checks(tunes: list[Tune], check, *, quiet: bool) -> list:
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
        print(json.dumps(record, indent=2))  # ASCII: no control character of a title reaches a terminal
        return
    for warning in warnings:
        print(f"warning: {printable(warning)}", file=sys.stderr)
    if len(verdicts) > 1:
        print(summary_table(verdicts))
        return
    (verdict,) = verdicts
    lines = verdict.report.summary().splitlines() if verdict.report else [verdict.line()]
    print("\n".join(printable(line) for line in lines))


def selected_tunes(args: TuneSelection) -> tuple[list[Tune], list[str]]:
    """The tunes the options name, and the reader's warnings; :class:`RecipeError` for unusable options or input."""
    if not args.tune:
        raise RecipeError("give an ABC file (or '-' for standard input)")
    try:
        finite_number(args.timeout, "--timeout")
    except TextInputError as err:
        raise RecipeError(str(err)) from None
    tunes, warnings = read_tunes(args.tune)
    return select(tunes, args), warnings


def main(args: TuneSelection):
    """Print the verdicts; exit status 1 when a tune is invalid (0 when every one is valid), as linters do."""
    from .cli import ExitStatus
    from .music.verdicts import check_tune

    tunes, warnings = selected_tunes(args)
    verdicts = run_checks(tunes, lambda t: check_tune(t, timeout=args.timeout), quiet=args.json_report)
    print_results(verdicts, warnings, args)
    return ExitStatus(not all(verdict.valid for verdict in verdicts))


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
    from .cli import run_as_main

    run_as_main("validate")
