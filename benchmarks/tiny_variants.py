"""The variants ``tiny_ablation.py`` trains: each one lever away from the embedded default or from another variant.

``init`` overrides ``InitTinyArguments``, ``cpt``/``sft`` override keys of ``recipes/tiny/*.yaml``, ``data`` picks the
tune text ("default": the corpus as the project builds it; "bookkeeping": the same tunes and split with their
transcriber, source, book and note lines kept; "other-keys": SFT rows that also ask for each train tune in two other
keys),
``same_cpt_as`` starts a variant that changes only SFT from another
variant's finished CPT.
"""

from __future__ import annotations

from pathlib import Path

WHITESPACE_BPE = {"pretokenizer": "whitespace", "vocab_size": 2048}
ATOMS = {"pretokenizer": "abc-atoms", "vocab_size": 1024}
SFT_100 = {"max_steps": 100, "learning_rate": 1.0e-3}  # the embedded default's SFT before the step ablation
CPT_240 = {"max_steps": 240}  # the embedded default's CPT before the learning curve (one pass over the corpus)
SFT_MIX = {"music21-tasks/text_to_abc": 3, "music21-tasks/continuation": 1, "music21-tasks/form": 1,
           "music21-tasks/transpose": 1, "music21-tasks/question": 1}

VARIANTS: dict[str, dict] = {
    "whitespace-bpe": {
        "about": "2,048-piece BPE split at whitespace, bookkeeping lines kept",
        "init": WHITESPACE_BPE, "data": "bookkeeping", "cpt": CPT_240, "sft": SFT_100,
    },
    "atoms": {
        "about": "ABC-atom pieces, 1,024 tokens, bookkeeping lines kept",
        "init": ATOMS, "data": "bookkeeping", "cpt": CPT_240, "sft": SFT_100,
    },
    "atoms-music-only": {
        "about": "ABC-atom pieces, 1,024 tokens, bookkeeping lines dropped; CPT 240 steps; SFT 100 steps at 1e-3",
        "init": ATOMS, "cpt": CPT_240, "sft": SFT_100,
    },
    "sft-mixed": {
        "about": "SFT rows drawn across all collections, text-to-ABC weighted 3:1 (was: the split's first 4,000 rows)",
        "init": ATOMS, "sft": {**SFT_100, "src_weights": SFT_MIX, "max_rows": None}, "same_cpt_as": "atoms-music-only",
    },
    "sft-longer": {
        "about": "SFT 300 steps at learning rate 2e-3 (was 100 at 1e-3)",
        "init": ATOMS, "sft": {"max_steps": 300, "learning_rate": 2.0e-3}, "same_cpt_as": "atoms-music-only",
    },
    "sft-400": {
        "about": "SFT 400 steps at learning rate 3e-3 (the embedded default's SFT)",
        "init": ATOMS, "same_cpt_as": "atoms-music-only",
    },
    "sft-800": {
        "about": "SFT 800 steps at learning rate 3e-3",
        "init": ATOMS, "sft": {"max_steps": 800}, "same_cpt_as": "atoms-music-only",
    },
    "cpt-480": {
        "about": "CPT 480 steps (two passes over the corpus), then the default SFT: the embedded default",
        "init": ATOMS,
    },
    "other-keys": {
        "about": "sft-400, each train tune also asked for in two other keys",
        "init": ATOMS, "same_cpt_as": "atoms-music-only", "data": "other-keys",
    },
}


def variant_data(kind: str, folder: Path) -> dict[str, Path]:
    """The datasets a data variant trains on, per stage (``cpt``, ``sft``), built once; {} for the project's own."""
    if kind == "default":
        return {}
    if kind not in ("bookkeeping", "other-keys"):
        raise ValueError(f"unknown data variant {kind!r}")
    folder = folder / kind
    from chatmusician_hf.data.corpus import build_music21_corpus
    from chatmusician_hf.data.tasks import build_tasks

    if kind == "other-keys":
        if not (folder / "sft" / "dataset_dict.json").is_file():
            build_tasks(build_music21_corpus(), key_transpositions=2).save_to_disk(str(folder / "sft"))
        return {"sft": folder / "sft"}
    if not (folder / "sft" / "dataset_dict.json").is_file():
        corpus = build_music21_corpus(keep_bookkeeping=True)
        corpus.save_to_disk(str(folder / "cpt"))
        build_tasks(corpus).save_to_disk(str(folder / "sft"))
    return {"cpt": folder / "cpt", "sft": folder / "sft"}
