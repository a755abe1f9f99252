"""``chatmusician-hf eval <benchmark>``: one stage, one sub-command per benchmark.

- ``music-theory-bench``: the paper's MusicTheoryBench protocol (``music_theory_bench.py``);
- ``mmlu``: lm-evaluation-harness tasks, MMLU 5-shot by default (``harness.py``).

Each benchmark has its own dataclass and its own recipe parser, so ``--config recipe.yaml`` and unknown-option
errors work as in every other stage.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from ..configs import RecipeError, make_stage_parser

# benchmark -> (module, arguments dataclass, one-line help); modules load only when their benchmark runs.
BENCHMARKS: dict[str, tuple[str, str, str]] = {
    "music-theory-bench": (
        "chatmusician_hf.eval.music_theory_bench",
        "MusicTheoryBenchArguments",
        "MusicTheoryBench: perplexity (paper) or generation mode, 0- or 5-shot; JSON report + eval_results.json.",
    ),
    "mmlu": (
        "chatmusician_hf.eval.harness",
        "HarnessArguments",
        "MMLU 5-shot (or other --tasks) through lm-evaluation-harness; JSON report + eval_results.json.",
    ),
}
DESCRIPTION = (
    "Evaluate a model: MusicTheoryBench (the paper's protocol) or lm-evaluation-harness tasks such as MMLU."
)


def benchmark_parser(name: str, subparsers=None):
    module_name, dataclass_name, help_text = BENCHMARKS[name]
    arguments = getattr(importlib.import_module(module_name), dataclass_name)
    return make_stage_parser(
        subparsers, f"eval {name}" if subparsers is None else name, [arguments], help=help_text
    )


class EvalParser:
    """Reads the benchmark name, then hands the remaining arguments to that benchmark's recipe parser."""

    def format_help(self) -> str:
        overview = argparse.ArgumentParser(prog="chatmusician-hf eval", description=DESCRIPTION)
        commands = overview.add_subparsers(metavar="<benchmark>")
        for name, (_, _, help_text) in BENCHMARKS.items():
            commands.add_parser(name, help=help_text)
        return overview.format_help() + "\nRun 'chatmusician-hf eval <benchmark> --help' for its options.\n"

    def parse_args_and_config(self, args=None):
        args = list(sys.argv[1:] if args is None else args)
        if not args or args[0] in ("-h", "--help"):
            print(self.format_help())
            raise SystemExit(0 if args else 2)
        name, rest = args[0], args[1:]
        if name not in BENCHMARKS:
            raise RecipeError(f"unknown benchmark {name!r}; choose from {', '.join(BENCHMARKS)}")
        (parsed,) = benchmark_parser(name).parse_args_and_config(rest)
        return name, parsed


def make_parser(subparsers=None):
    """The stage's parser; with ``subparsers`` the benchmarks become nested sub-commands of an ``eval`` parser."""
    if subparsers is None:
        return EvalParser()
    parser = subparsers.add_parser("eval", help=DESCRIPTION, description=DESCRIPTION)
    nested = parser.add_subparsers(dest="benchmark", metavar="<benchmark>", parser_class=type(parser))
    for name in BENCHMARKS:
        benchmark_parser(name, nested)
    return parser


def main(benchmark: str, args) -> dict:
    module_name = BENCHMARKS[benchmark][0]
    return importlib.import_module(module_name).main(args)


if __name__ == "__main__":
    from ..cli import run_as_main

    run_as_main("eval")
