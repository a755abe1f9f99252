"""``chatmusician-hf``: one entry point, one subcommand per stage.

Stage modules are imported only when their subcommand runs, so ``chatmusician-hf --help`` stays instant. Each
stage module exposes ``make_parser(subparsers=None)`` and ``main(...)``; this file only parses argv and dispatches.
A :class:`~chatmusician_hf.errors.ChatMusicianError` becomes one line on stderr and exit status 2, the same under
``chatmusician-hf <stage>``, ``python -m chatmusician_hf.<stage>`` and ``accelerate launch -m ...``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from types import ModuleType

from .errors import ChatMusicianError

# subcommand -> (module, one-line help). A stage joins the CLI by adding one line here.
STAGES: dict[str, tuple[str, str]] = {
    "init-tiny": ("chatmusician_hf.tiny", "Build the tiny embedded-default tokenizer and model (no network)."),
    "preprocess": ("chatmusician_hf.preprocess", "Tokenise, format and pack a stage's data once and save it (--stage cpt|sft)."),
    "cpt": ("chatmusician_hf.cpt", "Continued pretraining: LoRA + trained embeddings on packed music text."),
    "sft": ("chatmusician_hf.sft", "Supervised fine-tuning with TRL's SFTTrainer in the ChatMusician chat format."),
    "eval": ("chatmusician_hf.eval.cli", "Evaluate on MusicTheoryBench (paper protocol) or MMLU via lm-eval."),
    "merge": ("chatmusician_hf.merge", "Merge a LoRA adapter into its base shard by shard, verified against PEFT."),
    "push": ("chatmusician_hf.push", "Publish a model, adapter, Space or metric folder to the Hub in one commit."),
    "chat": ("chatmusician_hf.chat", "Chat with a model in the terminal: multi-line input, streaming, --render DIR."),
    "generate": ("chatmusician_hf.generate", "Answer a JSONL file of prompts in batches; tunes extracted and validated."),
    "quickstart": ("chatmusician_hf.quickstart", "The whole pipeline on the embedded default, no network: train, merge, evaluate, report."),
    "render": ("chatmusician_hf.render", "Render the tunes of an ABC file to SVG sheet music, MIDI and WAV; print their validation."),
    "validate": ("chatmusician_hf.validate", "Check every tune of an ABC file: a verdict per tune and a summary table."),
}


def _top_level_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chatmusician-hf",
        description="Train, evaluate, publish and serve language models that read and write ABC notation.",
        epilog="Run 'chatmusician-hf <command> --help' for a command's options. "
        "Training stages also run as 'accelerate launch -m chatmusician_hf.<stage> --config recipe.yaml'.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="<command>")
    for name, (_, help_text) in STAGES.items():
        subparsers.add_parser(name, help=help_text, add_help=False)
    return parser


class ExitStatus(int):
    """What a checking stage's ``main`` returns when its verdict is the exit status (0 all good, 1 some failed)."""


def run_stage(module: str | ModuleType, argv: list[str]):
    """Parse ``argv`` with the stage's own parser and call its ``main``."""
    if isinstance(module, str):
        module = importlib.import_module(module)
    parser = module.make_parser()
    parsed = parser.parse_args_and_config(argv)
    return module.main(*parsed)


def is_main_process() -> bool:
    """Rank 0 of a distributed launch (``RANK`` is set by torchrun, accelerate and deepspeed), or a lone process."""
    return os.environ.get("RANK", "0") == "0"


def run_command(command: str, argv: list[str], module: str | ModuleType | None = None) -> int:
    """Run one stage; its exit status. A ``ChatMusicianError`` is printed as one line, by rank 0 only (every rank of
    a distributed launch finds the same recipe mistake), and gives status 2."""
    try:
        result = run_stage(module or STAGES[command][0], argv)
    except ChatMusicianError as err:
        if is_main_process():
            print(f"chatmusician-hf {command}: error: {err}", file=sys.stderr)
        return 2
    # a checking stage (validate) answers with its verdict as the exit status; the others return what they made
    return result if isinstance(result, ExitStatus) else 0


def run_as_main(command: str) -> None:
    """The ``python -m chatmusician_hf.<stage>`` entry: the stage already imported as ``__main__``, run, exit."""
    sys.exit(run_command(command, sys.argv[1:], sys.modules["__main__"]))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in STAGES:
        parser = _top_level_parser()
        if argv and argv[0] not in ("-h", "--help"):
            parser.error(f"unknown command {argv[0]!r}; choose from {', '.join(STAGES)}")
        parser.print_help()
        return 0 if argv else 2
    return run_command(argv[0], argv[1:])


if __name__ == "__main__":
    sys.exit(main())
