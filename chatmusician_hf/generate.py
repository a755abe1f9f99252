"""``chatmusician-hf generate``: answer every prompt of a JSONL file, in batches, and check the tunes in the answers.

Each input line is a JSON object with a ``prompt`` (or MusicPile-sft's ``instruction`` and optional ``input``).
Each output line is that object plus ``response`` (the model's answer) and ``tunes``: every ABC tune found in the
answer with its character span and the ABC validator's report. A prompt longer than ``--max_prompt_tokens`` gets an
``error`` instead of a response; the run goes on. So does an input line that cannot be used (not UTF-8, not a JSON
object, no prompt, a prompt with a NUL or a lone surrogate, a NaN or infinite number): it is reported on standard
error with its line number and written as ``{"line": N, "error": ..., "response": null, "tunes": []}``, and every
good line is answered. Output lines are written in input order as each batch finishes.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .configs import RecipeError, make_stage_parser
from .inference import (
    FittedPrompt,
    GenerationArguments,
    ModelArguments,
    PromptTooLongError,
    fit_prompt,
    generate_batch,
    load_model,
)
from .text_input import TextInputError, check_text, decode_utf8, finite_number


@dataclass
class GenerateArguments:
    input: str | None = field(
        default=None,
        metadata={"help": "JSONL file of prompts (fields 'prompt', or 'instruction' + 'input')."},
    )
    output: str | None = field(
        default=None, metadata={"help": "JSONL file to write: each input row + response + tunes."}
    )
    batch_size: int = field(default=8, metadata={"help": "Prompts per generate call (left-padded together)."})
    prompt_field: str = field(
        default="prompt",
        metadata={"help": "Field holding the prompt; rows without it use 'instruction' + 'input'."},
    )


@dataclass
class PromptRow:
    line: int  # 1-based line of the input file
    row: dict | None  # the JSON object as read; None when the line could not be used
    prompt: str | None
    error: str | None = None


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def read_row(raw: bytes, prompt_field: str) -> tuple[dict, str]:
    """(row, prompt) of one input line; :class:`TextInputError` or ``ValueError`` saying what is wrong."""
    # NaN and Infinity are not JSON; json reads them by default, and would write them back out the same way
    row = json.loads(decode_utf8(raw, "the line"), parse_constant=_no_constant)
    if not isinstance(row, dict):
        raise ValueError(f"expected a JSON object, got {type(row).__name__}")
    # a "\\udcff" escape in any field is a lone surrogate, which the output file could not hold
    check_text(json.dumps(row, ensure_ascii=False), "the line")
    if isinstance(row.get(prompt_field), str):
        text = row[prompt_field]
    elif isinstance(row.get("instruction"), str):
        # MusicPile-sft keeps the separators inside its data; the prompt is instruction + input as stored.
        text = row["instruction"] + (row.get("input") or "")
    else:
        raise ValueError(f"no string field '{prompt_field}' (nor 'instruction')")
    return row, check_text(text, "the prompt")


def read_prompts(path: Path, prompt_field: str) -> list[PromptRow]:
    """Every non-blank line of ``path``, usable or not (``error`` says why not, in one line)."""
    if not path.is_file():
        raise RecipeError(f"--input {path}: file not found")
    rows = []
    for number, raw in enumerate(path.read_bytes().splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            row, text = read_row(raw, prompt_field)
        except json.JSONDecodeError as err:
            rows.append(PromptRow(number, None, None, f"not valid JSON ({err.msg})"))
        except ValueError as err:  # TextInputError included
            rows.append(PromptRow(number, None, None, str(err)))
        else:
            rows.append(PromptRow(number, row, text))
    good = [row for row in rows if row.error is None]
    if not good:
        first = f"; line {rows[0].line}: {rows[0].error}" if rows else ""
        raise RecipeError(f"--input {path}: no usable prompts in the file{first}")
    return rows


def check_generation(generation: GenerationArguments) -> None:
    """:class:`RecipeError` for a sampling number that is NaN or infinite, or an answer prefix that is not text;
    :class:`~.constrain.request.RequestError` for an ``--abc_header`` that cannot be written."""
    try:
        for name in ("temperature", "top_p", "repetition_penalty"):
            finite_number(getattr(generation, name), f"--{name}")
        check_text(generation.answer_prefix, "--answer_prefix")
    except TextInputError as err:
        raise RecipeError(str(err)) from None
    if generation.abc_header:
        from .constrain.request import read_abc_header

        read_abc_header(generation.abc_header)


def tune_records(answer: str) -> list[dict]:
    """Every tune in ``answer`` with its span and validation report (or the reason it could not be validated)."""
    from .music import AbcError, MissingToolError, extract_tunes, validate_abc

    records = []
    for tune in extract_tunes(answer):
        record = {"abc": tune.abc, "start": tune.start, "end": tune.end}
        try:
            record["validation"] = validate_abc(tune.abc).to_dict()
        except (AbcError, MissingToolError) as err:
            record["validation"] = None
            record["error"] = str(err)
        records.append(record)
    return records


def main(model_args: ModelArguments, generation: GenerationArguments, args: GenerateArguments) -> Path:
    from tqdm.auto import tqdm

    if not args.input or not args.output:
        raise RecipeError("generate needs --input prompts.jsonl and --output answers.jsonl")
    if args.batch_size < 1:
        raise RecipeError(f"--batch_size must be at least 1, got {args.batch_size}")
    check_generation(generation)
    rows = read_prompts(Path(args.input), args.prompt_field)
    for bad in (row for row in rows if row.error):
        print(f"[generate] {args.input} line {bad.line}: {bad.error}; no answer for it", file=sys.stderr)
    loaded = load_model(model_args)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    n_tunes = n_valid = 0
    with (
        output.open("w", encoding="utf-8") as sink,
        tqdm(total=len(rows), desc="generate", unit="prompt") as bar,
    ):
        for first in range(0, len(rows), args.batch_size):
            batch = rows[first : first + args.batch_size]
            fitted: list[FittedPrompt | str] = []
            for row in batch:
                if row.error:
                    fitted.append(row.error)
                    continue
                try:
                    fitted.append(
                        fit_prompt(
                            loaded.tokenizer,
                            row.prompt,
                            [],
                            generation.max_prompt_tokens,
                            generation.answer_prefix,
                        )
                    )
                except PromptTooLongError as err:
                    fitted.append(str(err))
            runnable = [p for p in fitted if isinstance(p, FittedPrompt)]
            answers = iter(generate_batch(loaded, runnable, generation) if runnable else [])
            for row, prompt in zip(batch, fitted, strict=True):
                record = dict(row.row) if row.row is not None else {"line": row.line}
                if isinstance(prompt, str):
                    record.update(response=None, tunes=[], error=prompt)
                else:
                    record["response"] = next(answers)
                    record["tunes"] = tune_records(record["response"])
                    n_tunes += len(record["tunes"])
                    n_valid += sum(1 for t in record["tunes"] if (t["validation"] or {}).get("is_valid"))
                sink.write(json.dumps(record, ensure_ascii=False, allow_nan=False) + "\n")
            sink.flush()
            bar.update(len(batch))
    n_bad = sum(1 for row in rows if row.error)
    skipped = f"; {n_bad} unusable line(s) reported" if n_bad else ""
    print(f"[generate] wrote {len(rows)} rows to {output}: {n_tunes} tune(s), {n_valid} valid{skipped}")
    return output


def make_parser(subparsers=None):
    return make_stage_parser(
        subparsers,
        "generate",
        [ModelArguments, GenerationArguments, GenerateArguments],
        help="Answer a JSONL file of prompts in batches; each answer's tunes are extracted and validated.",
        description=__doc__,
    )


if __name__ == "__main__":
    from .cli import run_as_main

    run_as_main("generate")
