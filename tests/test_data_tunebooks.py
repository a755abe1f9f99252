"""Folders and files of .abc tunebooks as dataset sources: CPT rows, abc-tasks, the filter, mixtures, streaming."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from chatmusician_hf.abc.tunebook import read_tunebook
from chatmusician_hf.data.config import DataArguments
from chatmusician_hf.data.sources import DatasetSourceError, load_rows

FIXTURES = Path(__file__).parent / "fixtures"
SESSION = FIXTURES / "tunebooks" / "session.abc"


def music21_file(name: str) -> Path:
    from music21 import corpus

    return next(Path(p) for p in corpus.getPaths(fileExtensions=["abc"]) if Path(p).as_posix().endswith(name))


@pytest.fixture
def folder(tmp_path):
    """my_tunes/: the session tunebook, a copy of it (its tunes repeat), and a music21 tunebook in a subfolder."""
    root = tmp_path / "my_tunes"
    (root / "sub").mkdir(parents=True)
    shutil.copy(SESSION, root / "session.abc")
    shutil.copy(SESSION, root / "sub" / "again.abc")
    shutil.copy(music21_file("essenFolksong/erk5.abc"), root / "sub" / "erk5.abc")
    return root


def arguments(tmp_path, name, **options) -> DataArguments:
    return DataArguments(dataset_name=str(name), data_cache_dir=str(tmp_path / "cache"), **options)


def both_splits(args, kind="text"):
    return [row for split in ("train", "validation") for row in load_rows(args, split, kind=kind)]


def test_one_row_per_tune_with_src_and_repeats_left_out(tmp_path, folder, capsys):
    rows = both_splits(arguments(tmp_path, folder))
    han = read_tunebook(folder / "sub" / "erk5.abc").tunes
    assert len(rows) == 5 + len(han)  # the copy of the session tunebook adds nothing
    assert {row["src"] for row in rows} == {"my_tunes"}
    texts = [row["text"] for row in rows]
    assert all(text.startswith("X:1\n") for text in texts)
    # each row is the tune as the reader hands it on: the file header in it, continuations joined
    assert sum("%%MIDI program 73" in text for text in texts) == 5
    assert any("d6|d2 fe dc|" in text for text in texts)
    printed = capsys.readouterr().out
    assert f"[tunebooks] {folder}: 3 file(s), {10 + len(han)} tune(s); 5 repeated left out; " in printed
    assert f"; {5 + len(han)} kept" in printed


def test_a_single_file_is_a_source_named_after_it(tmp_path):
    rows = load_rows(arguments(tmp_path, SESSION, validation_fraction=0))
    assert rows["src"] == ["session"] * 5


@pytest.mark.parametrize("abc_filter", ["valid", "parses"])
def test_the_filter_leaves_out_broken_tunes_and_says_why(tmp_path, abc_filter, capsys):
    rows = load_rows(arguments(tmp_path, SESSION, abc_filter=abc_filter, validation_fraction=0))
    assert len(rows) == 4 and not any("A Broken Jig" in text for text in rows["text"])
    printed = capsys.readouterr().out
    assert f"1 left out by abc_filter={abc_filter} (abc2midi-error 1" in printed and "; 4 kept" in printed


def test_abc_tasks_build_sft_rows_over_the_same_split_of_tunes(tmp_path, folder):
    args = arguments(tmp_path, folder, validation_fraction=0.3)
    tasks = arguments(tmp_path, f"abc-tasks:{folder}", validation_fraction=0.3)
    held_out = {row["text"] for row in load_rows(args, "validation")}
    trained = {row["text"] for row in load_rows(args, "train")}
    assert held_out and trained
    task_rows = {split: load_rows(tasks, split, kind="sft") for split in ("train", "validation")}
    families = Counter(src.split("/")[1] for src in task_rows["train"]["src"])
    assert set(families) >= {"text_to_abc", "continuation", "question"}
    assert {src.split("/")[0] for src in task_rows["train"]["src"]} == {"my_tunes-tasks"}
    for split, tunes in (("train", trained), ("validation", held_out)):
        written = {row["output"] for row in task_rows[split] if row["src"].endswith(("text_to_abc", "form"))}
        assert written and written <= tunes  # a tune held out of pretraining is held out of the tasks


def test_a_tunebook_too_small_for_the_share_still_holds_one_tune_out(tmp_path):
    from chatmusician_hf.data.corpus import in_validation

    args = arguments(tmp_path, SESSION, validation_fraction=0.01)
    held_out, trained = (list(load_rows(args, split)["text"]) for split in ("validation", "train"))
    assert len(held_out) == 1 and len(trained) == 4 and held_out[0] not in trained
    # the share alone would hold none out; the choice is the same on a fresh build
    assert not any(in_validation(text, 0.01, args.dataset_seed) for text in held_out + trained)
    again = arguments(tmp_path / "again", SESSION, validation_fraction=0.01)
    assert list(load_rows(again, "validation")["text"]) == held_out


def test_in_a_mixture_and_streaming(tmp_path, folder):
    mixture = [
        {"path": str(folder), "fraction": 1.0},
        {"path": str(FIXTURES / "musicpile_sample.jsonl"), "fraction": 1.0},
    ]
    rows = load_rows(
        DataArguments(datasets=mixture, validation_fraction=0, data_cache_dir=str(tmp_path / "c"))
    )
    assert {"my_tunes", "IrishMAN"} <= set(rows["src"])
    streamed = load_rows(arguments(tmp_path, folder, streaming=True, validation_fraction=0))
    first = [row for _, row in zip(range(3), streamed, strict=False)]
    assert [row["src"] for row in first] == ["my_tunes"] * 3 and first[0]["text"].startswith("X:1\n")


def test_editing_a_tune_rebuilds_the_cached_rows(tmp_path, folder, capsys):
    args = arguments(tmp_path, folder, validation_fraction=0)
    before = len(load_rows(args))
    assert len(load_rows(args)) == before  # from the cache, and the counts are printed again
    assert capsys.readouterr().out.count("[tunebooks]") == 2
    (folder / "new.abc").write_text("X:9\nT:New\nM:2/4\nL:1/8\nK:D\nDEFG|ABcd|\n")
    assert len(load_rows(args)) == before + 1


@pytest.mark.parametrize(
    "name, kind, message",
    [
        ("abc-tasks:{tmp}/nowhere", "sft", "no such file or folder"),
        ("{tmp}/missing.abc", "text", "no such file or folder"),
        ("abc-tasks:{tmp}", "sft", "no .abc files in"),
        ("{folder}", "sft", "For SFT tasks built from its tunes, use 'abc-tasks:"),
    ],
)
def test_mistakes_are_one_line(tmp_path, folder, name, kind, message):
    args = arguments(tmp_path, name.format(tmp=tmp_path / "empty", folder=folder))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetSourceError, match=message) as caught:
        load_rows(args, kind=kind)
    assert "\n" not in str(caught.value)


def test_a_folder_mixing_tunebooks_and_data_files_is_refused(tmp_path, folder):
    shutil.copy(FIXTURES / "musicpile_sample.jsonl", folder / "rows.jsonl")
    with pytest.raises(DatasetSourceError, match="holds both .abc tunebooks and data files"):
        load_rows(arguments(tmp_path, folder))


def test_unreadable_files_are_counted_not_fatal(tmp_path, folder, capsys):
    (folder / "broken.abc").write_bytes("X:1\nK:C\nC|\n".encode("utf-16"))
    rows = both_splits(arguments(tmp_path, folder))
    assert rows and "1 file(s) unreadable (" in capsys.readouterr().out
    assert json.loads(next((tmp_path / "cache" / "tunebooks").glob("*/counts.json")).read_text())[
        "unreadable"
    ]


def test_tunes_are_checked_in_worker_processes_in_order():
    from chatmusician_hf.music.batch import check_tunes

    tunes = read_tunebook(SESSION).tunes
    pooled = check_tunes(tunes, workers=2, chunk_size=2)
    assert [verdict.tune.x for verdict in pooled] == ["1", "2", "3", "4", "5"]
    assert [verdict.valid for verdict in pooled] == [True, True, False, True, True]
