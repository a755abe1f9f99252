"""Load MusicTheoryBench from the Hub or local files, in either split layout, and check its schema.

The current Hub revision has ``dev`` (5 few-shot exemplars) and ``test`` splits; an older revision had a single
split. Every row carries a ``split`` column, so rows are sorted into dev and test by that column when it is present,
and by the name of the split they came from otherwise.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import BenchDataError

HUB_ID = "m-a-p/MusicTheoryBench"
REQUIRED_COLUMNS = ("id", "stem", "options", "subject", "answer")
# The rest of the published schema; optional so that hand-made question files stay short.
OPTIONAL_COLUMNS = ("instruction", "split", "abc_score", "analysis")
LETTERS = ("A", "B", "C", "D")
SUBJECTS = ("knowledge", "reasoning")
DATA_FILE_SUFFIXES = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet"}
DEV_SPLIT_NAMES = {"dev", "validation", "valid", "val"}


@dataclass
class Bench:
    """The benchmark's questions as plain dicts: ``dev`` holds the few-shot exemplars, ``test`` the questions."""

    dev: list[dict]
    test: list[dict]
    source: str


def _offline_help(source: str) -> str:
    return (
        f"Could not load {source!r} from the Hugging Face Hub (offline, or no access). Download it once where there is "
        f"network, e.g. `hf download {HUB_ID} --repo-type dataset --local-dir MusicTheoryBench`, then pass that folder "
        "(or one .jsonl/.json/.csv/.parquet file in the benchmark's schema) as --dataset."
    )


def _load_dataset_dict(source: str, revision: str | None):
    import datasets

    path = Path(source)
    if path.is_file():
        builder = DATA_FILE_SUFFIXES.get(path.suffix.lower())
        if builder is None:
            raise BenchDataError(
                f"{path}: unsupported file type; use one of {', '.join(DATA_FILE_SUFFIXES)}."
            )
        return datasets.load_dataset(builder, data_files=str(path))
    if path.is_dir():
        return datasets.load_dataset(str(path))
    if path.suffix.lower() in DATA_FILE_SUFFIXES or source.startswith((".", "/")):
        raise BenchDataError(f"Dataset file or folder not found: {source}")
    try:
        return datasets.load_dataset(source, revision=revision)
    except Exception as err:  # datasets raises several types for "offline" and "not found"
        raise BenchDataError(f"{_offline_help(source)} ({type(err).__name__}: {err})") from err


def _options(value, where: str) -> dict[str, str]:
    if isinstance(value, str):  # CSV stores the dict as JSON text
        try:
            value = json.loads(value)
        except json.JSONDecodeError as err:
            raise BenchDataError(f"{where}: 'options' is not a JSON object: {value[:60]!r}") from err
    if not isinstance(value, dict) or any(value.get(letter) in (None, "") for letter in LETTERS):
        raise BenchDataError(f"{where}: 'options' must map each of A, B, C, D to a text, got {value!r}")
    return {letter: str(value[letter]) for letter in LETTERS}


def normalise_row(row: dict, where: str) -> dict:
    """A row with every schema column present, options as a plain dict and its answer and subject checked."""
    out = {column: row.get(column) for column in REQUIRED_COLUMNS + OPTIONAL_COLUMNS}
    out["id"] = str(row["id"])
    out["options"] = _options(row["options"], where)
    if out["answer"] not in LETTERS:
        raise BenchDataError(f"{where}: 'answer' must be one of A-D, got {out['answer']!r}")
    if out["subject"] not in SUBJECTS:
        raise BenchDataError(f"{where}: 'subject' must be one of {SUBJECTS}, got {out['subject']!r}")
    for column in ("instruction", "abc_score", "analysis"):
        out[column] = out[column] or ""
    return out


def load_bench(source: str = HUB_ID, revision: str | None = None, subject: str | None = None) -> Bench:
    """Load the benchmark from a Hub dataset ID, a local folder or one data file.

    ``subject`` keeps only the test questions of that subject; the dev exemplars are kept whole, as in the paper.
    """
    dataset_dict = _load_dataset_dict(source, revision)
    dev, test = [], []
    for split_name, split in dataset_dict.items():
        missing = [column for column in REQUIRED_COLUMNS if column not in split.column_names]
        if missing:
            raise BenchDataError(
                f"{source} (split {split_name!r}): missing column(s) {missing}; MusicTheoryBench rows need "
                f"{list(REQUIRED_COLUMNS)} (and may have {list(OPTIONAL_COLUMNS)})."
            )
        for index, row in enumerate(split):
            where = f"{source} (split {split_name!r}, row {index})"
            row = normalise_row(row, where)
            row_split = row["split"] or ("dev" if split_name in DEV_SPLIT_NAMES else "test")
            (dev if row_split in DEV_SPLIT_NAMES else test).append(row)
    if subject is not None:
        if subject not in SUBJECTS:
            raise BenchDataError(f"Unknown subject {subject!r}; choose from {list(SUBJECTS)}.")
        test = [row for row in test if row["subject"] == subject]
    if not test:
        raise BenchDataError(f"{source}: no test questions found.")
    return Bench(dev=dev, test=test, source=source)
