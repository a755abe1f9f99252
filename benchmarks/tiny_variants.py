"""The variants ``tiny_ablation.py`` trains: each one lever away from the embedded default or from another variant.

``init`` overrides ``InitTinyArguments``, ``cpt``/``sft`` override keys of ``recipes/tiny/*.yaml``, ``data`` picks the
tune text ("default": the corpus as the project builds it; "bookkeeping": the same tunes and split with their
transcriber, source, book and note lines kept).
"""

from __future__ import annotations

from pathlib import Path

WHITESPACE_BPE = {"pretokenizer": "whitespace", "vocab_size": 2048}

VARIANTS: dict[str, dict] = {
    "whitespace-bpe": {
        "about": "2,048-piece BPE split at whitespace, bookkeeping lines kept",
        "init": WHITESPACE_BPE, "data": "bookkeeping",
    },
    "atoms": {
        "about": "ABC-atom pieces, 1,024 tokens, bookkeeping lines kept",
        "init": {"pretokenizer": "abc-atoms", "vocab_size": 1024}, "data": "bookkeeping",
    },
    "atoms-music-only": {
        "about": "ABC-atom pieces, 1,024 tokens, bookkeeping lines dropped",
        "init": {"pretokenizer": "abc-atoms", "vocab_size": 1024},
    },
}


def variant_data(kind: str, folder: Path) -> Path | None:
    """A folder with ``cpt`` and ``sft`` datasets for a data variant, built once; None for the project's own data."""
    if kind == "default":
        return None
    if kind != "bookkeeping":
        raise ValueError(f"unknown data variant {kind!r}")
    folder = folder / kind
    if not (folder / "sft" / "dataset_dict.json").is_file():
        from chatmusician_hf.data.corpus import build_music21_corpus
        from chatmusician_hf.data.tasks import build_tasks

        corpus = build_music21_corpus(keep_bookkeeping=True)
        corpus.save_to_disk(str(folder / "cpt"))
        build_tasks(corpus).save_to_disk(str(folder / "sft"))
    return folder
