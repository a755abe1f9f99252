"""Where rows come from: Hub IDs, local folders and files, the embedded music21 data, and mixtures of them.

A source becomes rows in one of two shapes, whatever it looked like on disk:

- pretraining rows ``{text, src}`` (MusicPile's schema without ``id``),
- SFT rows ``{instruction, input, output, src}`` (MusicPile-sft's schema without ``id``).

Mixtures follow TRL's ``datasets:`` format (``path, name, data_dir, data_files, split, columns, fraction``) with the
same meaning of ``fraction`` (each source's share of the mixed rows, normalised, never oversampled). Where this
module goes further, it says so:

- ``src``: a list of ``src`` values to keep, or a mapping ``src -> share`` that also sets their proportions;
- ``text_column``: the column holding the text when it is not ``text``;
- ``fraction`` works in streaming mode too, as interleaving probabilities (TRL refuses it there);
- rows are drawn at random with ``dataset_seed`` (TRL keeps the first rows, which biases sorted corpora);
- a source without an evaluation split gives ``validation_fraction`` of its rows, chosen by a hash of the row, to
  evaluation and removes them from training, so no row is in both.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, fields
from pathlib import Path

from ..configs import unknown_key_message
from ..errors import DatasetSourceError
from .config import ABC_TASKS_PREFIX, MUSIC21_CORPUS, MUSIC21_TASKS, DataArguments, cache_dir
from .corpus import in_validation

TEXT_COLUMNS = ("text", "src")
SFT_COLUMNS = ("instruction", "input", "output", "src")

# datasets' packaged builder for each local file type.
FILE_BUILDERS = {
    ".jsonl": "json",
    ".json": "json",
    ".parquet": "parquet",
    ".csv": "csv",
    ".txt": "text",
    ".arrow": "arrow",
}


@dataclass
class SourceSpec:
    """One entry of a ``datasets:`` mixture (TRL's keys first, then this project's extensions)."""

    path: str
    name: str | None = None
    data_dir: str | None = None
    data_files: str | list | dict | None = None
    split: str = "train"
    columns: list[str] | None = None
    fraction: float | None = None
    src: list[str] | dict[str, float] | None = None
    text_column: str | None = None


MIXTURE_KEYS = tuple(f.name for f in fields(SourceSpec))


def source_specs(data_args: DataArguments) -> list[SourceSpec]:
    """The sources a recipe names: its ``datasets`` mixture, or ``dataset_name`` with its src selection."""
    if not data_args.datasets:
        src = data_args.src_weights or data_args.src_include
        return [
            SourceSpec(
                path=data_args.dataset_name,
                name=data_args.dataset_config,
                split=data_args.dataset_train_split,
                src=src,
                text_column=data_args.text_column,
            )
        ]
    specs = []
    for i, entry in enumerate(data_args.datasets):
        if isinstance(entry, SourceSpec):
            specs.append(entry)
            continue
        if not isinstance(entry, dict) or "path" not in entry:
            raise DatasetSourceError(
                f"datasets[{i}]: each mixture entry needs at least a 'path', got {entry!r}"
            )
        for key in entry:
            if key not in MIXTURE_KEYS:
                raise DatasetSourceError(unknown_key_message(f"datasets[{i}]", key, MIXTURE_KEYS))
        specs.append(SourceSpec(**entry))
    fractions = [spec.fraction for spec in specs]
    if any(f is not None for f in fractions) and any(f is None for f in fractions):
        raise DatasetSourceError("datasets: set 'fraction' on every mixture entry or on none of them.")
    if any(f is not None and f < 0 for f in fractions):
        raise DatasetSourceError(f"datasets: fractions must be >= 0, got {fractions}")
    return specs


# --------------------------------------------------------------------------------------------------------------------
# Loading one source with all its splits


def offline_message(path: str) -> str:
    return (
        f"Dataset '{path}' is not in the local cache and the Hugging Face Hub cannot be reached "
        "(offline mode or no network). Point the recipe at local files instead: "
        "'dataset_name: path/to/data.jsonl' (or a .parquet/.csv/.txt file, a folder of them, or a save_to_disk "
        "folder), or a mixture entry '{path: json, data_files: path/to/data.jsonl}'; "
        f"'dataset_name: {MUSIC21_CORPUS}' uses the embedded tunes. To cache the Hub dataset, run "
        f"'hf download {path} --repo-type dataset' while online."
    )


def _looks_local(path: str) -> bool:
    """A path the user meant as a file or folder (Hub IDs are 'name' or 'owner/name' without a file suffix)."""
    return path.startswith((".", "/", "~")) or path.count("/") > 1 or Path(path).suffix in FILE_BUILDERS


def _is_offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def _load_splits(spec: SourceSpec, data_args: DataArguments, streaming: bool):
    """Every split of one source, as a DatasetDict (or IterableDatasetDict when streaming)."""
    import datasets

    from .tunebooks import load_tunebook_source, tunebook_source

    path = spec.path
    if path == MUSIC21_CORPUS:
        from .corpus import build_music21_corpus

        splits = build_music21_corpus(data_args.validation_fraction or 0.05, data_args.dataset_seed)
    elif path == MUSIC21_TASKS:
        from .tasks import cached_music21_tasks

        splits = cached_music21_tasks(
            cache_dir(data_args),
            seed=data_args.dataset_seed,
            validation_fraction=data_args.validation_fraction or 0.05,
        )
    elif (tunebooks := tunebook_source(path)) is not None:
        splits = load_tunebook_source(path, *tunebooks, data_args)
    elif Path(path).expanduser().is_dir() and (
        (Path(path).expanduser() / "dataset_dict.json").is_file()
        or (Path(path).expanduser() / "state.json").is_file()
    ):
        loaded = datasets.load_from_disk(str(Path(path).expanduser()))
        splits = (
            loaded if isinstance(loaded, datasets.DatasetDict) else datasets.DatasetDict({"train": loaded})
        )
    else:
        kwargs = dict(name=spec.name, data_dir=spec.data_dir, data_files=spec.data_files, streaming=streaming)
        local = Path(path).expanduser()
        if local.is_file():
            builder = FILE_BUILDERS.get("".join(local.suffixes[-1:]))
            if builder is None:
                raise DatasetSourceError(
                    f"{path}: unknown file type; use one of {', '.join(sorted(FILE_BUILDERS))} or a folder."
                )
            if not local.read_bytes().strip():
                raise DatasetSourceError(f"{spec.path}: the file is empty; it holds no rows.")
            kwargs.update(name=None, data_files=str(local))
            path = builder
        elif local.is_dir():
            path = str(local)
        elif _looks_local(path) and spec.data_files is None:
            raise DatasetSourceError(f"{path}: no such file or folder.")
        try:
            return datasets.load_dataset(path, **kwargs)
        except DatasetSourceError:
            raise
        except Exception as err:  # noqa: BLE001 - every failure becomes one readable line naming the source
            from_hub = not local.exists() and spec.path not in FILE_BUILDERS.values()
            if from_hub and (_is_offline() or isinstance(err, (ConnectionError, OSError)) and "Hub" in str(err)):
                raise DatasetSourceError(offline_message(spec.path)) from None
            raise DatasetSourceError(
                f"Could not load dataset '{spec.path}': {type(err).__name__}: {err}"
            ) from None
    if streaming:
        splits = datasets.IterableDatasetDict({k: v.to_iterable_dataset() for k, v in splits.items()})
    return splits


# --------------------------------------------------------------------------------------------------------------------
# Rows of one split


def row_key(row: dict) -> str:
    """What identifies a row for the held-out split: its text, or its instruction/input/output."""
    if row.get("text") is not None:
        return row["text"]
    return "\0".join(str(row.get(c) or "") for c in ("instruction", "input", "output"))


def _held_out_mask(batch: dict, fraction: float, seed: int, text_column: str) -> list[bool]:
    n = len(next(iter(batch.values())))
    rows = [{k: batch[k][i] for k in batch} for i in range(n)]
    if text_column in batch and text_column != "text":
        for row in rows:
            row["text"] = row[text_column]
    return [in_validation(row_key(row), fraction, seed) for row in rows]


def _column_names(ds) -> list[str]:
    names = ds.column_names
    if names is None:  # a streaming source whose features are only known after reading a row
        names = list(next(iter(ds)).keys())
    return names


def select_split(splits, spec: SourceSpec, split: str, data_args: DataArguments):
    """The rows of ``split`` from one source's splits, carving a held-out share where the source has no eval split."""
    test = data_args.dataset_test_split
    evaluating = split == test
    if not evaluating and split != data_args.dataset_train_split:
        if split in splits:  # a split asked for by name, e.g. a benchmark's "dev"
            return splits[split]
        raise DatasetSourceError(f"{spec.path}: no split '{split}'; it has {', '.join(splits)}.")
    if evaluating and test in splits:
        return splits[test]
    if spec.split not in splits:
        raise DatasetSourceError(f"{spec.path}: no split '{spec.split}'; it has {', '.join(splits)}.")
    ds = splits[spec.split]
    if test in splits or data_args.validation_fraction <= 0:
        if evaluating:
            raise DatasetSourceError(
                f"{spec.path}: no '{split}' split and validation_fraction is 0, so there is nothing to evaluate on."
            )
        return ds
    text_column = spec.text_column or data_args.text_column
    fraction, seed = data_args.validation_fraction, data_args.dataset_seed

    def keep(batch):
        held_out = _held_out_mask(batch, fraction, seed, text_column)
        return held_out if evaluating else [not h for h in held_out]

    return ds.filter(keep, batched=True)


def normalize_columns(ds, spec: SourceSpec, kind: str, default_text_column: str = "text"):
    """Rename/select so that every source has exactly the columns of ``kind`` ('text' or 'sft')."""
    if spec.columns:
        ds = ds.select_columns(spec.columns)
    names = _column_names(ds)
    wanted = TEXT_COLUMNS if kind == "text" else SFT_COLUMNS
    if kind == "text":
        text_column = spec.text_column or default_text_column
        if text_column not in names:
            raise DatasetSourceError(
                f"{spec.path}: no text column '{text_column}' (columns: {', '.join(names)}); set text_column."
            )
        if text_column != "text":
            if "text" in names:
                ds = ds.remove_columns(["text"])
            ds = ds.rename_column(text_column, "text")
    else:
        missing = [c for c in ("instruction", "output") if c not in names]
        if missing:
            from .tunebooks import tunebook_source

            tasks = tunebook_source(spec.path) and f" For SFT tasks built from its tunes, use '{ABC_TASKS_PREFIX}{spec.path}'."
            raise DatasetSourceError(
                f"{spec.path}: SFT rows need instruction/input/output columns (MusicPile-sft's schema); missing "
                f"{', '.join(missing)} (columns: {', '.join(names)}).{tasks or ''}"
            )
    names = _column_names(ds)
    fill = {c: (spec.path if c == "src" else "") for c in wanted if c not in names}
    if fill:
        ds = ds.map(
            lambda batch: {c: [v] * len(next(iter(batch.values()))) for c, v in fill.items()}, batched=True
        )
    return ds.select_columns(list(wanted))


# --------------------------------------------------------------------------------------------------------------------
# src selection and mixtures


def _shares(weights: dict[str, float]) -> dict[str, float]:
    total = sum(weights.values())
    if total <= 0:
        raise DatasetSourceError(f"src weights must not all be zero: {weights}")
    return {k: v / total for k, v in weights.items()}


def _sample_to_shares(sizes: list[int], shares: list[float], seed: int) -> list[int]:
    """Rows to take from each part so that the parts have ``shares`` of the result and none is oversampled."""
    total = min(size / share for size, share in zip(sizes, shares, strict=False) if share > 0)
    return [min(size, round(share * total)) for size, share in zip(sizes, shares, strict=False)]


def _random_subset(ds, n: int, seed: int):
    import numpy as np

    if n >= len(ds):
        return ds
    rng = np.random.default_rng(seed)
    # Sorted indices keep reads sequential; the trainer shuffles anyway.
    return ds.select(np.sort(rng.choice(len(ds), size=n, replace=False)))


def select_src(ds, spec: SourceSpec, seed: int, streaming: bool):
    """Keep the rows whose ``src`` the spec names, in the proportions it asks for."""
    import datasets

    if not spec.src:
        return ds
    if "src" not in _column_names(ds):
        raise DatasetSourceError(f"{spec.path}: selecting rows by 'src' needs a 'src' column.")
    weights = dict(spec.src) if isinstance(spec.src, dict) else None
    keep = set(weights or spec.src)
    if weights is None:
        return ds.filter(lambda batch: [s in keep for s in batch["src"]], batched=True)
    shares = _shares({k: float(v) for k, v in weights.items() if v > 0})
    names = list(shares)
    if streaming:
        parts = [
            ds.filter(lambda batch, name=name: [s == name for s in batch["src"]], batched=True)
            for name in names
        ]
        return datasets.interleave_datasets(
            parts, probabilities=[shares[n] for n in names], seed=seed, stopping_strategy="first_exhausted"
        )
    import numpy as np

    src = np.asarray(ds["src"], dtype=object)
    indices = [np.flatnonzero(src == name) for name in names]
    missing = [name for name, idx in zip(names, indices, strict=False) if len(idx) == 0]
    if missing:
        present = sorted(set(src.tolist()))[:20]
        raise DatasetSourceError(f"{spec.path}: no rows with src {missing}; src values present: {present}")
    counts = _sample_to_shares([len(i) for i in indices], [shares[n] for n in names], seed)
    rng = np.random.default_rng(seed)
    chosen = np.sort(
        np.concatenate(
            [rng.choice(idx, size=c, replace=False) for idx, c in zip(indices, counts, strict=False)]
        )
    )
    return ds.select(chosen)


def mix(parts: list, specs: list[SourceSpec], seed: int, streaming: bool):
    """Combine sources: concatenated, or drawn to their ``fraction`` shares."""
    import datasets

    if len(parts) == 1 and specs[0].fraction is None:
        return parts[0]
    if specs[0].fraction is None:
        return datasets.concatenate_datasets(parts)
    shares = list(_shares({str(i): float(s.fraction) for i, s in enumerate(specs)}).values())
    if streaming:
        kept = [(p, s) for p, s in zip(parts, shares, strict=False) if s > 0]
        return datasets.interleave_datasets(
            [p for p, _ in kept],
            probabilities=[s for _, s in kept],
            seed=seed,
            stopping_strategy="first_exhausted",
        )
    counts = _sample_to_shares([len(p) for p in parts], shares, seed)
    chosen = [
        _random_subset(p, c, seed + i) for i, (p, c) in enumerate(zip(parts, counts, strict=False)) if c > 0
    ]
    return datasets.concatenate_datasets(chosen)


def load_rows(data_args: DataArguments, split: str = "train", kind: str = "text"):
    """Rows of ``split`` from every source the recipe names, mixed, with columns :data:`TEXT_COLUMNS` (``kind=
    'text'``) or :data:`SFT_COLUMNS` (``kind='sft'``). A ``Dataset``, or an ``IterableDataset`` when streaming."""
    specs = source_specs(data_args)
    parts = []
    for spec in specs:
        splits = _load_splits(spec, data_args, data_args.streaming)
        ds = select_split(splits, spec, split, data_args)
        ds = normalize_columns(ds, spec, kind, data_args.text_column)
        ds = select_src(ds, spec, data_args.dataset_seed, data_args.streaming)
        parts.append(ds)
    rows = mix(parts, specs, data_args.dataset_seed, data_args.streaming)
    if not data_args.streaming and len(rows) == 0:
        names = ", ".join(spec.path for spec in specs)
        raise DatasetSourceError(f"{names}: no rows in split '{split}' (after the src selection and held-out share).")
    if data_args.max_rows is not None:
        rows = (
            rows.take(data_args.max_rows)
            if data_args.streaming
            else rows.select(range(min(len(rows), data_args.max_rows)))
        )
    return rows


def describe_sources(data_args: DataArguments, split: str) -> str:
    """A stable description of what :func:`load_rows` reads, for cache keys and logs."""
    specs = source_specs(data_args)
    parts = [repr(spec) for spec in specs]
    settings = (
        split,
        data_args.dataset_test_split,
        data_args.validation_fraction,
        data_args.dataset_seed,
        data_args.max_rows,
    )
    return hashlib.sha256(("|".join(parts) + repr(settings)).encode()).hexdigest()[:16]


def load_preprocessed(data_args: DataArguments, split: str, columns: tuple[str, ...], max_length: int):
    """The split of a ``chatmusician-hf preprocess`` folder named by ``dataset_name``, or None when ``dataset_name``
    is not such a folder; an error when the folder was prepared for another stage or another ``max_length``."""
    import json

    import datasets

    if data_args.datasets or not data_args.dataset_name:
        return None
    folder = Path(data_args.dataset_name).expanduser()
    summary_path = folder / "preprocess_summary.json"
    if not summary_path.is_file():
        return None
    summary = json.loads(summary_path.read_text())
    splits = datasets.load_from_disk(str(folder))
    if split not in splits:
        raise DatasetSourceError(
            f"{folder}: preprocessed without a '{split}' split (it has {', '.join(splits)})."
        )
    ds = splits[split]
    missing = [c for c in columns if c not in ds.column_names]
    if missing:
        raise DatasetSourceError(
            f"{folder}: preprocessed for stage '{summary.get('stage')}', which has no {', '.join(missing)} column."
        )
    if summary.get("max_length") != max_length:
        raise DatasetSourceError(
            f"{folder}: preprocessed for max_length {summary.get('max_length')}, not {max_length}; "
            "preprocess again with this max_length."
        )
    return ds
