"""Validate many texts at once: extraction and validation of each text in a small process pool.

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


def _check_chunk(args: tuple[list[str], float]) -> list[TextCheck]:
    texts, timeout = args
    return [check_text(text, timeout) for text in texts]


def check_texts(
    texts: list[str],
    *,
    workers: int | None = None,
    timeout: float = 10.0,
    progress: bool = False,
    chunk_size: int = 64,
) -> list[TextCheck]:
    """:func:`check_text` for every text, ``workers`` processes (default: the CPU count) in parallel."""
    workers = workers or os.cpu_count() or 1
    chunks = [(texts[i : i + chunk_size], timeout) for i in range(0, len(texts), chunk_size)]
    results: list[TextCheck] = []
    if workers == 1 or len(chunks) <= 1:
        iterator = map(_check_chunk, chunks)
        return [check for chunk in _progress(iterator, len(chunks), progress) for check in chunk]
    with ProcessPoolExecutor(workers) as pool:
        for chunk in _progress(pool.map(_check_chunk, chunks), len(chunks), progress):
            results.extend(chunk)
    return results


def _progress(iterator, total: int, enabled: bool):
    if not enabled:
        return iterator
    from tqdm.auto import tqdm

    return tqdm(iterator, total=total, desc="validating", unit="chunk")
