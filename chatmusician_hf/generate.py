"""``chatmusician-hf generate``: answer every prompt of a JSONL file, in batches, and check the tunes in the answers.

Each input line is a JSON object with a ``prompt`` (or MusicPile-sft's ``instruction`` and optional ``input``).
Each output line is that object plus ``response`` (the model's answer) and ``tunes``: every ABC tune found in the
answer with its character span and the ABC validator's report. A prompt longer than ``--max_prompt_tokens`` gets an
``error`` instead of a response; the run goes on. Output lines are written in input order as each batch finishes.
"""

from __future__ import annotations

import json
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


def read_prompts(path: Path, prompt_field: str) -> list[tuple[dict, str]]:
    """(row, prompt text) for every line of ``path``; errors name the file, the line and the problem."""
    if not path.is_file():
        raise RecipeError(f"--input {path}: file not found")
    rows = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise RecipeError(f"{path} line {number}: not valid JSON ({err.msg})") from err
            if not isinstance(row, dict):
                raise RecipeError(f"{path} line {number}: expected a JSON object, got {type(row).__name__}")
            if isinstance(row.get(prompt_field), str):
                text = row[prompt_field]
            elif isinstance(row.get("instruction"), str):
                # MusicPile-sft keeps the separators inside its data; the prompt is instruction + input as stored.
                text = row["instruction"] + (row.get("input") or "")
            else:
                raise RecipeError(
                    f"{path} line {number}: no string field '{prompt_field}' (nor 'instruction')"
                )
            rows.append((row, text))
    if not rows:
        raise RecipeError(f"--input {path}: no prompts in the file")
    return rows


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
    rows = read_prompts(Path(args.input), args.prompt_field)
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
            for _, text in batch:
                try:
                    fitted.append(
                        fit_prompt(
                            loaded.tokenizer, text, [], generation.max_prompt_tokens, generation.answer_prefix
                        )
                    )
                except PromptTooLongError as err:
                    fitted.append(str(err))
            runnable = [p for p in fitted if isinstance(p, FittedPrompt)]
            answers = iter(generate_batch(loaded, runnable, generation) if runnable else [])
            for (row, _), prompt in zip(batch, fitted, strict=True):
                record = dict(row)
                if isinstance(prompt, str):
                    record.update(response=None, tunes=[], error=prompt)
                else:
                    record["response"] = next(answers)
                    record["tunes"] = tune_records(record["response"])
                    n_tunes += len(record["tunes"])
                    n_valid += sum(1 for t in record["tunes"] if (t["validation"] or {}).get("is_valid"))
                sink.write(json.dumps(record, ensure_ascii=False) + "\n")
            sink.flush()
            bar.update(len(batch))
    print(f"[generate] wrote {len(rows)} answers to {output}: {n_tunes} tune(s), {n_valid} valid")
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
