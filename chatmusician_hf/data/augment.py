"""Transposition augmentation: every whole ABC tune of the pretraining rows, plus ``k`` transpositions of it.

Shifts are drawn per tune from its text and the seed, so a rerun (and every worker process) makes the same choice.
"""

from __future__ import annotations

import hashlib
import logging

import numpy as np

from ..errors import DatasetSourceError

logger = logging.getLogger(__name__)


def is_abc_tune(text: str) -> bool:
    """Rows that are one whole ABC tune (the only rows transposition can rewrite safely)."""
    return text.lstrip().startswith("X:") and "\nK:" in text


def transposition_choices(text: str, k: int, seed: int) -> list[int]:
    """``k`` distinct non-zero shifts in [-5, 6] semitones, fixed by the tune's text and the seed."""
    rng = np.random.default_rng(
        int.from_bytes(hashlib.sha256(f"{seed}\0{text}".encode()).digest()[:8], "big")
    )
    shifts = [s for s in range(-5, 7) if s != 0]
    return [int(s) for s in rng.choice(shifts, size=min(k, len(shifts)), replace=False)]


def load_transpose_abc():
    try:
        from ..music import transpose_abc
    except ImportError as err:
        raise DatasetSourceError(
            "transpose_augment needs chatmusician_hf.music.transpose_abc, which is not available "
            f"({err}); set transpose_augment: 0."
        ) from None
    return transpose_abc


def add_transpositions(batch: dict, k: int, seed: int, transpose_abc) -> dict:
    """A ``datasets.map`` batch function: every ABC tune, then ``k`` transpositions of it (src + '/transposed')."""
    out: dict[str, list] = {"text": [], "src": []}
    for text, src in zip(batch["text"], batch["src"], strict=True):
        out["text"].append(text)
        out["src"].append(src)
        if not text or not is_abc_tune(text):
            continue
        for shift in transposition_choices(text, k, seed):
            try:
                transposed = transpose_abc(text, shift)
            except Exception as err:  # noqa: BLE001 - a tune the ABC layer cannot read keeps only its original
                logger.debug("skipping transposition %+d: %s", shift, err)
                continue
            out["text"].append(transposed)
            out["src"].append(f"{src}/transposed")
    return out
