"""``chatmusician-hf preprocess``: the saved dataset, its summary, and training stages reading it back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chatmusician_hf.cli import main as cli
from chatmusician_hf.errors import DatasetSourceError

FIXTURES = Path(__file__).parent / "fixtures"


def _recipe(tmp_path: Path, text: str) -> str:
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    return str(path)


def test_cpt_preprocess_writes_blocks_that_cpt_reads_back(tmp_path, tiny_model_dir, capsys):
    from transformers import AutoTokenizer

    from chatmusician_hf.data.config import DataArguments
    from chatmusician_hf.data.pretraining import build_pretraining_dataset

    # A training recipe, training keys included: preprocess parses it with the stage's own dataclasses.
    recipe = _recipe(
        tmp_path,
        f"model_name_or_path: {tiny_model_dir}\ndataset_name: {FIXTURES / 'musicpile_sample.jsonl'}\n"
        "validation_fraction: 0.2\nmax_length: 64\nlearning_rate: 3.0e-3\nper_device_train_batch_size: 4\n",
    )
    out = tmp_path / "packed"
    args = [
        "preprocess",
        "--config",
        recipe,
        "--preprocessed_dir",
        str(out),
        "--data_cache_dir",
        str(tmp_path / "c"),
    ]
    assert cli(args) == 0
    printed = capsys.readouterr().out
    assert "[preprocess] train: rows " in printed and "IrishMAN:" in printed
    summary = json.loads((out / "preprocess_summary.json").read_text())
    assert summary["stage"] == "cpt" and summary["max_length"] == 64
    train, validation = summary["splits"]["train"], summary["splits"]["validation"]
    assert train["rows"] + validation["rows"] == 10
    assert 0 <= train["padding_fraction"] < 1 and sum(train["tokens_per_src"].values()) == train["tokens"]

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    saved = build_pretraining_dataset(DataArguments(dataset_name=str(out)), tokenizer, 64)
    fresh = build_pretraining_dataset(
        DataArguments(
            dataset_name=str(FIXTURES / "musicpile_sample.jsonl"),
            validation_fraction=0.2,
            data_cache_dir=str(tmp_path / "c2"),
        ),
        tokenizer,
        64,
    )
    assert saved["input_ids"] == fresh["input_ids"] and len(saved) == train["blocks"]
    with pytest.raises(DatasetSourceError, match="preprocessed for max_length 64, not 128; preprocess again"):
        build_pretraining_dataset(DataArguments(dataset_name=str(out)), tokenizer, 128)
    assert cli(args) == 2  # an existing folder is not replaced without --overwrite


def test_sft_preprocess_reports_tokens_and_bfd_packing(tmp_path, tiny_model_dir):
    recipe = _recipe(
        tmp_path,
        f"model_name_or_path: {tiny_model_dir}\ndataset_name: {FIXTURES / 'musicpile_sft_sample.jsonl'}\n"
        "validation_fraction: 0\nmax_length: 512\nmax_prompt_length: 256\npacking: true\nuse_cpu: true\nbf16: false\n",
    )
    out = tmp_path / "sft"
    code = cli(
        [
            "preprocess",
            "--stage",
            "sft",
            "--config",
            recipe,
            "--preprocessed_dir",
            str(out),
            "--include_validation",
            "false",
        ]
    )
    assert code == 0
    from datasets import load_from_disk

    saved = load_from_disk(str(out))["train"]
    assert saved.column_names == ["input_ids", "assistant_masks", "messages"]
    summary = json.loads((out / "preprocess_summary.json").read_text())["splits"]["train"]
    assert summary["rows"] == 6 and summary["tokens"] == sum(len(ids) for ids in saved["input_ids"])
    assert summary["loss_tokens"] == sum(sum(m) for m in saved["assistant_masks"])
    assert summary["blocks"] == 2  # the six rows (about 600 tokens) need two 512-token BFD blocks
    assert set(summary["tokens_per_src"]) == {
        "IrishMAN",
        "KernScores",
        "JSB Chorales",
        "music knowledge",
        "music summary",
    }


def test_help_explains_the_options(capsys):
    import pytest

    with pytest.raises(SystemExit):
        cli(["preprocess", "--help"])
    text = capsys.readouterr().out
    for option in ("--stage", "--preprocessed_dir", "--dataset_name", "--src_weights", "--transpose_augment"):
        assert option in text
