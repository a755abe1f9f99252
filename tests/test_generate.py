"""``chatmusician-hf generate``: batched answers for a JSONL file, each with its tunes and their validation."""

from __future__ import annotations

import json

import pytest

from chatmusician_hf.cli import main as cli_main
from chatmusician_hf.configs import RecipeError
from chatmusician_hf.generate import GenerateArguments, main, read_prompts, tune_records
from chatmusician_hf.inference import GenerationArguments, ModelArguments
from chatmusician_hf.music import validate_abc

VALID = "X:1\nT:Valid\nM:4/4\nL:1/8\nK:G\nGABc dedB|c2A2 B4|"
BROKEN = "X:2\nT:Broken\nM:4/4\nL:1/8\nK:C\nCDEF GABc d|[CEG|z8|"


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_tune_records_carry_span_and_validation():
    answer = f"A reel:\n{VALID}\n\nand another:\n{BROKEN}\nThat is all."
    records = tune_records(answer)
    assert [answer[r["start"] : r["end"]] for r in records] == [VALID, BROKEN]
    assert [r["abc"] for r in records] == [VALID, BROKEN]
    assert records[0]["validation"] == validate_abc(VALID).to_dict()
    assert records[0]["validation"]["is_valid"] is True
    assert records[1]["validation"]["is_valid"] is False and records[1]["validation"]["errors"]
    assert tune_records("no tunes at all") == []


def test_batched_generation_keeps_rows_and_order(tiny_model_dir, tmp_path):
    rows = [
        {"id": "a", "prompt": "Compose a reel in D"},
        {"id": "b", "instruction": "Harmonize this melody. ", "input": VALID},
        {"id": "c", "prompt": "Write a waltz " * 200},  # longer than --max_prompt_tokens below
        {"id": "d", "prompt": "Continue:\n" + VALID},
        {"id": "e", "prompt": "Hi"},
    ]
    prompts = write_jsonl(tmp_path / "prompts.jsonl", rows)
    greedy = dict(do_sample=False, max_new_tokens=12, min_new_tokens=12, max_prompt_tokens=300)

    def run(batch_size, name):
        output = tmp_path / name
        main(
            ModelArguments(model=str(tiny_model_dir)),
            GenerationArguments(**greedy),
            GenerateArguments(input=str(prompts), output=str(output), batch_size=batch_size),
        )
        return [json.loads(line) for line in output.read_text().splitlines()]

    batched, single = run(3, "batched.jsonl"), run(1, "single.jsonl")
    assert [r["id"] for r in batched] == ["a", "b", "c", "d", "e"]
    for row, original in zip(batched, rows, strict=True):
        assert {k: row[k] for k in original} == original  # input fields are kept as they were
    assert batched[2]["response"] is None and "limit is 300" in batched[2]["error"]
    for row in batched[:2] + batched[3:]:
        assert isinstance(row["response"], str) and row["response"]
        assert row["tunes"] == tune_records(row["response"])
    # Left padding with an attention mask: greedy answers do not depend on the batch they were in.
    assert [r["response"] for r in batched] == [r["response"] for r in single]


def test_bad_lines_are_kept_with_their_line_number_and_a_file_without_good_ones_fails(tmp_path):
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text('{"prompt": "ok"}\n\n{not json}\n')
    good, bad = read_prompts(mixed, "prompt")
    assert (good.line, good.prompt, good.error) == (1, "ok", None)
    assert (bad.line, bad.row, bad.error) == (
        3,
        None,
        "not valid JSON (Expecting property name enclosed in double quotes)",
    )
    missing_field = write_jsonl(tmp_path / "fields.jsonl", [{"text": "no prompt here"}])
    with pytest.raises(
        RecipeError, match=r"fields.jsonl: no usable prompts in the file; line 1: no string field 'question'"
    ):
        read_prompts(missing_field, "question")
    code = cli_main(
        ["generate", "--model", "unused", "--input", str(tmp_path / "nope.jsonl"), "--output", "o.jsonl"]
    )
    assert code == 2


def test_help_explains_every_option(capsys):
    with pytest.raises(SystemExit):
        cli_main(["generate", "--help"])
    text = capsys.readouterr().out
    for option in (
        "--input",
        "--output",
        "--batch_size",
        "--temperature",
        "--top_k",
        "--constrain",
        "--adapter",
    ):
        assert option in text
