"""Dataset sources: local files, src selection and weights, mixtures, held-out splits, offline failures."""

from __future__ import annotations

import dataclasses
import json
import time
from collections import Counter
from pathlib import Path

import pytest

from chatmusician_hf.data.config import DataArguments
from chatmusician_hf.data.sources import DatasetSourceError, load_rows

FIXTURES = Path(__file__).parent / "fixtures"


def test_data_arguments_share_no_name_with_the_training_dataclasses():
    from transformers import TrainingArguments
    from trl import ModelConfig, SFTConfig

    ours = {f.name for f in dataclasses.fields(DataArguments)}
    for other in (TrainingArguments, SFTConfig, ModelConfig):
        assert not ours & {f.name for f in dataclasses.fields(other)}, other.__name__
    assert all(f.metadata.get("help") for f in dataclasses.fields(DataArguments))


def _write_jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_local_jsonl_rows_and_src_filter():
    args = DataArguments(
        dataset_name=str(FIXTURES / "musicpile_sample.jsonl"),
        validation_fraction=0,
        src_include=["IrishMAN", "KernScores"],
    )
    rows = load_rows(args, "train")
    assert rows.column_names == ["text", "src"]
    assert sorted(rows["src"]) == ["IrishMAN", "IrishMAN", "KernScores"]
    assert all(text.startswith(("Human:", "X:1")) for text in rows["text"])


def test_src_weights_give_the_requested_shares(tmp_path):
    rows = [
        {"text": f"{src} row {i}", "src": src}
        for src, n in (("a", 600), ("b", 300), ("c", 900))
        for i in range(n)
    ]
    path = _write_jsonl(tmp_path / "pile.jsonl", rows)
    args = DataArguments(dataset_name=path, validation_fraction=0, src_weights='{"a": 1, "b": 1, "c": 2}')
    counts = Counter(load_rows(args, "train")["src"])
    # b (300 rows) limits the mixture: 300 : 300 : 600, nothing oversampled.
    assert counts == {"a": 300, "b": 300, "c": 600}


def test_mixture_fractions_give_the_requested_shares(tmp_path):
    first = _write_jsonl(tmp_path / "first.jsonl", [{"text": f"first {i}"} for i in range(1000)])
    second = _write_jsonl(
        tmp_path / "second.jsonl", [{"body": f"second {i}", "src": "s"} for i in range(1000)]
    )
    mixture = [
        {"path": first, "fraction": 0.75},
        {"path": "json", "data_files": second, "fraction": 0.25, "text_column": "body"},
    ]
    rows = load_rows(DataArguments(datasets=mixture, validation_fraction=0), "train")
    counts = Counter(rows["src"])
    assert counts == {first: 1000, "s": 333}  # 1000 / 0.75 = 1333 rows in all
    assert all(t.startswith("second") for t, s in zip(rows["text"], rows["src"], strict=True) if s == "s")

    streamed = load_rows(DataArguments(datasets=mixture, validation_fraction=0, streaming=True), "train")
    counts = Counter(row["src"] for row in streamed.take(800))
    assert abs(counts["s"] / 800 - 0.25) < 0.05


def test_held_out_rows_are_in_exactly_one_split(tmp_path):
    path = _write_jsonl(tmp_path / "rows.jsonl", [{"text": f"row {i}", "src": "x"} for i in range(2000)])
    args = DataArguments(dataset_name=path, validation_fraction=0.1)
    train, validation = set(load_rows(args, "train")["text"]), set(load_rows(args, "validation")["text"])
    assert not train & validation and len(train | validation) == 2000
    assert 150 < len(validation) < 250


def test_sft_rows_keep_musicpile_sft_columns():
    args = DataArguments(dataset_name=str(FIXTURES / "musicpile_sft_sample.jsonl"), validation_fraction=0)
    rows = load_rows(args, "train", kind="sft")
    assert rows.column_names == ["instruction", "input", "output", "src"]
    assert Counter(rows["src"])["IrishMAN"] == 2


def test_uncached_hub_id_fails_fast_with_the_local_files_hint(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(DatasetSourceError) as info:
        load_rows(DataArguments(dataset_name="m-a-p/MusicPile"), "train")
    assert time.perf_counter() - start < 10
    message = str(info.value)
    assert "m-a-p/MusicPile" in message and "not in the local cache" in message
    assert "dataset_name: path/to/data.jsonl" in message and "\n" not in message
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_cli_reports_a_bad_source_on_one_line(tmp_path, tiny_model_dir, capsys):
    from chatmusician_hf.cli import main

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"dataset_name: m-a-p/MusicPile\nmodel_name_or_path: {tiny_model_dir}\n")
    code = main(["preprocess", "--config", str(recipe), "--preprocessed_dir", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith(
        "chatmusician-hf preprocess: error: Dataset 'm-a-p/MusicPile' is not in the local cache"
    )
    assert "Traceback" not in err and len(err.splitlines()) == 1


def test_bad_mixture_key_and_missing_file_are_named():
    with pytest.raises(
        DatasetSourceError, match=r"datasets\[0\]: unknown key 'fractoin'. Did you mean 'fraction'"
    ):
        load_rows(DataArguments(datasets=[{"path": "x.jsonl", "fractoin": 0.5}]), "train")
    with pytest.raises(DatasetSourceError, match=r"missing/rows.jsonl: no such file or folder"):
        load_rows(DataArguments(dataset_name="./missing/rows.jsonl"), "train")
    with pytest.raises(DatasetSourceError, match="no rows with src"):
        load_rows(
            DataArguments(
                dataset_name=str(FIXTURES / "musicpile_sample.jsonl"),
                validation_fraction=0,
                src_weights={"Nope": 1},
            ),
            "train",
        )
