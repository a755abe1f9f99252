"""Validate many texts or tunes at once, in a small process pool: texts are searched for their first tune, the tunes
of a tunebook are checked as they are.

Reading a tune is pure Python and abc2midi is a subprocess, so processes (not threads) keep both cores busy;
results come back in input order.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from .errors import AbcError
from .extract import extract_tunes
from .validate import ValidationReport, validate_abc
from .verdicts import check_tune


@dataclass
class TextCheck:
    n_tunes: int  # tunes found in the text
    report: ValidationReport | None  # the first tune's report; None when there is no (usable) tune


def check_text(text: str, timeout: float = 10.0) -> TextCheck:
    tunes = extract_tunes(text)
    if not tunes:
        return TextCheck(0, None)
    try:
        return TextCheck(len(tunes), validate_abc(tunes[0].abc, timeout=timeout))
    except AbcError:
        return TextCheck(len(tunes), None)


def _check_chunk(args: tuple) -> list:
    check, items, timeout = args
    return [check(item, timeout=timeout) for item in items]


def check_texts(texts: list[str], **options) -> list[TextCheck]:
    """:func:`check_text` for every text, in parallel (options: see :func:`check_all`)."""
    return check_all(check_text, texts, **options)


def check_tunes(tunes: list, **options) -> list:
    """:func:`~.verdicts.check_tune` (validation only) for every tune of a tunebook, in parallel."""
    return check_all(check_tune, tunes, **options)


def check_all(
    check,
    items: list,
    *,
    workers: int | None = None,
    timeout: float = 10.0,
    progress: bool = False,
    chunk_size: int = 64,
) -> list:
    """``check(item, timeout=timeout)`` for every item, ``workers`` processes (default: the CPU count) in parallel."""
    workers = workers or os.cpu_count() or 1
    chunks = [(check, items[i : i + chunk_size], timeout) for i in range(0, len(items), chunk_size)]
    results: list = []
    if workers == 1 or len(chunks) <= 1:
        iterator = map(_check_chunk, chunks)
        return [result for chunk in _progress(iterator, len(chunks), progress) for result in chunk]
    with ProcessPoolExecutor(workers) as pool:
        for chunk in _progress(pool.map(_check_chunk, chunks), len(chunks), progress):
            results.extend(chunk)
    return results


def _progress(iterator, total: int, enabled: bool):
    if not enabled:
        return iterator
    from tqdm.auto import tqdm

    return tqdm(iterator, total=total, desc="validating", unit="chunk")
