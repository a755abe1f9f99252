"""Helpers for the MusicTheoryBench lm-eval tasks; prompt text and data loading come from chatmusician-hf itself,
so the harness and ``chatmusician-hf eval music-theory-bench --mode ppl`` score the very same strings."""

from __future__ import annotations

import datasets

from chatmusician_hf.eval.bench_data import HUB_ID, load_bench
from chatmusician_hf.eval.prompts import LETTERS, question_block


def load_splits(
    dataset_source: str = HUB_ID, dataset_revision: str | None = None, subject: str | None = None, **_
):
    """``custom_dataset`` hook: the benchmark as ``{"dev", "test"}``, test questions of ``subject`` only.

    Point the tasks at local files with ``--metadata '{"dataset_source": "path/or/file"}'`` (or
    ``TaskManager(metadata=...)``); other metadata keys (model arguments, version) are ignored. The dev exemplars stay
    whole, as in the paper, so the 5-shot context is the same for both subjects.
    """
    bench = load_bench(dataset_source, dataset_revision, subject)
    return datasets.DatasetDict(
        {"dev": datasets.Dataset.from_list(bench.dev), "test": datasets.Dataset.from_list(bench.test)}
    )


def doc_to_text(doc: dict) -> str:
    return question_block(doc)


def doc_to_target(doc: dict) -> int:
    return LETTERS.index(doc["answer"])
