"""Files and folders of ABC tunebooks as dataset sources: one pretraining row per tune, and SFT tasks over them.

``dataset_name: my_tunes/`` (a folder; its ``.abc`` files are found in every subfolder) or ``dataset_name: book.abc``
gives rows in MusicPile's schema (``id``, ``text``, ``src``), one per tune as the tunebook reader hands it on
(:mod:`chatmusician_hf.abc.tunebook`: the file header in every tune, continuation lines joined, comments and free
text left out, forbidden directives removed), numbered ``X:1`` like the music21 corpus. ``src`` is the folder's or
the file's name. A tune whose normalised text (number, blanks and empty lines aside) came earlier is left out.
``abc-tasks:my_tunes/`` gives the SFT tasks of :mod:`.tasks` built over the same tunes, as ``music21-tasks`` is over
music21's. ``abc_filter`` keeps every tune, those abc2midi reads without a musical error (``parses``), or the valid
ones; every load prints what was kept and what was left out, and why.

Both come with ``train`` and ``validation`` splits, split by tune with the music21 corpus's hash, so a tune held out
of pretraining is held out of the tasks too. They are built once and cached, keyed by the files' bytes, the options
and the code, so editing a tune rebuilds them and nothing else does.
"""

from __future__ import annotations

import hashlib
import re
import sys
from collections import Counter
from pathlib import Path

from ..abc import charsets, tunebook
from ..errors import DatasetSourceError
from .config import ABC_TASKS_PREFIX, DataArguments, cache_dir, cached_dataset
from .corpus import CorpusTune, in_validation, normalize_tune
from .sources import FILE_BUILDERS

TUNEBOOK_SUFFIX = ".abc"
_BLANKS = re.compile(r"[ \t]+")


def tunebook_files(path: Path) -> list[Path]:
    """``path`` itself when it is an .abc file; for a folder, its .abc files at any depth, in a stable order."""
    if path.is_file():
        return [path] if path.suffix.lower() == TUNEBOOK_SUFFIX else []
    if not path.is_dir():
        return []
    return sorted(p for p in path.rglob("*") if p.suffix.lower() == TUNEBOOK_SUFFIX and p.is_file())


def tunebook_source(name: str) -> tuple[Path, bool] | None:
    """(the file or folder, whether SFT tasks are asked for) when ``name`` is a tunebook source, else None."""
    tasks = name.startswith(ABC_TASKS_PREFIX)
    path = Path(name.removeprefix(ABC_TASKS_PREFIX)).expanduser()
    files = tunebook_files(path)
    if not (files or tasks or path.suffix.lower() == TUNEBOOK_SUFFIX):
        return None
    if not path.exists():
        raise DatasetSourceError(f"{name}: no such file or folder.")
    if not files:
        raise DatasetSourceError(f"{name}: no .abc files in {path}.")
    data_files = [p for p in path.rglob("*") if p.suffix in FILE_BUILDERS] if path.is_dir() else []
    if data_files:
        raise DatasetSourceError(
            f"{name}: holds both .abc tunebooks and data files ({data_files[0].name}); point at a folder of one kind."
        )
    return path, tasks


def normalized(text: str) -> str:
    """What two copies of a tune share: the text without its X number, line-end blanks, blank runs or empty lines."""
    lines = (_BLANKS.sub(" ", line).strip() for line in normalize_tune(text).split("\n"))
    return "\n".join(line for line in lines if line)


def read_tunes(path: Path, abc_filter: str) -> tuple[list[CorpusTune], dict]:
    """The tunes of every tunebook under ``path`` (repeats and, per ``abc_filter``, invalid ones left out) and the
    counts of what was read, kept and left out."""
    from ..music.batch import check_tunes

    src = path.resolve().stem if path.is_file() else path.resolve().name
    root = path.parent if path.is_file() else path
    counts = {"files": 0, "tunes": 0, "repeated": 0, "unreadable": {}, "left_out": {}, "warnings": 0}
    seen: set[str] = set()
    candidates = []
    for file in tunebook_files(path):
        counts["files"] += 1
        try:
            book = tunebook.read_tunebook(file)
        except tunebook.TunebookError as err:
            counts["unreadable"][file.relative_to(root).as_posix()] = str(err)
            continue
        counts["warnings"] += len(book.warnings)
        for tune in book.tunes:
            counts["tunes"] += 1
            text = tune.abc if tune.x is not None else f"X:1\n{tune.abc}"
            key = hashlib.sha1(normalized(text).encode()).hexdigest()
            if key in seen:
                counts["repeated"] += 1
                continue
            seen.add(key)
            row = CorpusTune(
                f"{src}/{file.relative_to(root).as_posix()}#{tune.index}", normalize_tune(text), src
            )
            candidates.append((tune, row))
    kept = [row for _, row in candidates]
    if abc_filter != "all":
        verdicts = check_tunes([tune for tune, _ in candidates], progress=len(candidates) > 200)
        good = [
            v.valid if abc_filter == "valid" else v.report is not None and v.report.parses for v in verdicts
        ]
        kept = [row for (_, row), ok in zip(candidates, good, strict=True) if ok]
        reasons = Counter(
            reason for v, ok in zip(verdicts, good, strict=True) if not ok for reason in v.reasons()
        )
        counts["left_out"] = dict(reasons.most_common())
        counts["not_kept"] = len(candidates) - len(kept)
    counts["kept"] = len(kept)
    return kept, counts


def describe_counts(name: str, counts: dict, abc_filter: str) -> str:
    """One line: files and tunes read, what was left out and why, and how many tunes remain."""
    parts = [
        f"{counts['files']} file(s), {counts['tunes']} tune(s)",
        f"{counts['repeated']} repeated left out",
    ]
    if counts["unreadable"]:
        first = next(iter(counts["unreadable"].values()))
        parts.append(f"{len(counts['unreadable'])} file(s) unreadable ({first})")
    if abc_filter != "all":
        reasons = ", ".join(f"{reason} {n}" for reason, n in counts["left_out"].items())
        parts.append(
            f"{counts['not_kept']} left out by abc_filter={abc_filter}" + (f" ({reasons})" if reasons else "")
        )
    if counts["warnings"]:
        parts.append(f"{counts['warnings']} reading warning(s) (run 'chatmusician-hf validate' on the files)")
    return f"[tunebooks] {name}: " + "; ".join(parts) + f"; {counts['kept']} kept"


def load_tunebook_source(name: str, path: Path, tasks: bool, data_args: DataArguments):
    """The ``train``/``validation`` splits of a tunebook source: tune rows, or with ``tasks`` the SFT tasks."""
    import json

    from datasets import Dataset, DatasetDict

    from ..abc import directives, standalone
    from ..music import validate
    from . import corpus
    from . import tasks as task_module
    from .config import source_digest

    fraction, seed = data_args.validation_fraction, data_args.dataset_seed
    digest = hashlib.sha256(f"{fraction}|{seed}|{data_args.abc_filter}|{tasks}".encode())
    code = (sys.modules[__name__], tunebook, standalone, charsets, directives, corpus, task_module, validate)
    digest.update(source_digest(*code).encode())
    for file in tunebook_files(path):
        digest.update(
            f"{file.relative_to(path if path.is_dir() else path.parent)}\0".encode() + file.read_bytes()
        )
    folder = cache_dir(data_args) / "tunebooks" / digest.hexdigest()[:20]
    counts: dict = {}

    def build():
        tunes, found = read_tunes(path, data_args.abc_filter)
        counts.update(found)
        if not tunes:
            raise DatasetSourceError(
                describe_counts(name, found, data_args.abc_filter) + ": no tunes to train on."
            )
        splits = {"train": [], **({"validation": []} if fraction > 0 else {})}
        for tune in tunes:
            splits["validation" if in_validation(tune.text, fraction, seed) else "train"].append(tune)
        if not splits["train"]:
            raise DatasetSourceError(
                f"{name}: every tune fell in the validation share; set validation_fraction: 0."
            )
        columns = ("id", "text", "src")
        rows = DatasetDict({split: Dataset.from_dict({c: [getattr(t, c) for t in kept] for c in columns})
                            for split, kept in splits.items() if kept})  # fmt: skip
        return task_module.build_tasks(rows, seed) if tasks else rows

    splits = cached_dataset(folder / "dataset", build)
    counts_file = folder / "counts.json"
    if counts:
        counts_file.write_text(json.dumps(counts, indent=2) + "\n")
    print(describe_counts(name, json.loads(counts_file.read_text()), data_args.abc_filter), flush=True)
    return splits
