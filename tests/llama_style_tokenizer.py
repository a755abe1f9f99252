"""A tokenizer built like LLaMA-2's (the one ``m-a-p/ChatMusician`` uses), trained here with no download.

LLaMA-2's ``tokenizer.json``: 32,000 pieces, ``<unk>`` 0, ``<s>`` 1, ``</s>`` 2, then the 256 byte pieces
``<0x00>``..``<0xFF>``, then SentencePiece BPE pieces; normalizer Prepend("▁") + Replace(" ", "▁"), no
pre-tokenizer, BPE with byte fallback and fused unknowns, decoder Replace("▁", " ") + ByteFallback + Fuse + Strip(1
leading space), and a ``<s>`` added in front of every encoded text. This one is trained with ``tokenizers`` on
Python's standard library sources (English docstrings and comments, and code, as in LLaMA-2's data) plus every ABC
tune music21 ships, so its pieces mix note letters, decoration letters, quotes, brackets and bar lines
(``"D``, ``|!``, ``▁dAA``, ``]+``) the way LLaMA-2's do.

Training takes about 20 s, so the folder is cached under the datasets cache, keyed by a hash of everything that
goes into it (the training text, this file, the ``tokenizers`` version); the same inputs give the same files.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sysconfig
from pathlib import Path

SPACE = "\u2581"  # SentencePiece's visible space
VOCAB_SIZE = 32_000
SPECIAL_TOKENS = ("<unk>", "<s>", "</s>")
BYTE_PIECES = tuple(f"<0x{byte:02X}>" for byte in range(256))
# Characters outside the most frequent ones reach the text through byte pieces, as SentencePiece's character
# coverage does for LLaMA-2 (rare accents, symbols, other scripts).
ALPHABET_LIMIT = 200

# How the Hub's LLaMA-2 folder describes the tokenizer: no pad token (users set one), BOS added, EOS not.
TOKENIZER_CONFIG = {
    "tokenizer_class": "LlamaTokenizer",
    "add_bos_token": True,
    "add_eos_token": False,
    "bos_token": "<s>",
    "eos_token": "</s>",
    "unk_token": "<unk>",
    "pad_token": None,
    "padding_side": "right",
    "clean_up_tokenization_spaces": False,
    "legacy": False,
    "model_max_length": 2048,
}


def training_texts() -> list[str]:
    """Python's top-level standard library modules, then music21's tunes: about 4.7 MB of each, in a fixed order."""
    from chatmusician_hf.data.corpus import iter_music21_tunes

    stdlib = Path(sysconfig.get_paths()["stdlib"])
    texts = [path.read_text(encoding="utf-8", errors="replace") for path in sorted(stdlib.glob("*.py"))]
    return texts + [tune.text for tune in iter_music21_tunes()]


def _training_lines(texts: list[str]):
    # SentencePiece trains on lines, so no piece holds a newline and "\n" is always the byte piece <0x0A>, as in
    # LLaMA-2; tabs are bytes there too.
    for text in texts:
        for line in text.split("\n"):
            line = line.replace("\t", " ").rstrip()
            if line.strip():
                yield line


def train(texts: list[str]):
    """A ``tokenizers.Tokenizer`` with LLaMA-2's structure, trained on ``texts``."""
    from tokenizers import (
        AddedToken,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )

    # Training splits at spaces (a piece may start with "▁" but never holds one inside), as SentencePiece does.
    learner = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    learner.pre_tokenizer = pre_tokenizers.Metaspace(replacement=SPACE, prepend_scheme="always", split=True)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=[*SPECIAL_TOKENS, *BYTE_PIECES],
        limit_alphabet=ALPHABET_LIMIT,
        show_progress=False,
    )
    learner.train_from_iterator(_training_lines(texts), trainer=trainer)
    learned = json.loads(learner.to_str())["model"]

    tokenizer = Tokenizer(
        models.BPE(
            vocab=learned["vocab"],
            merges=[tuple(pair) for pair in learned["merges"]],
            unk_token="<unk>",
            byte_fallback=True,
            fuse_unk=True,
        )
    )
    tokenizer.normalizer = normalizers.Sequence([normalizers.Prepend(SPACE), normalizers.Replace(" ", SPACE)])
    tokenizer.decoder = decoders.Sequence(
        [decoders.Replace(SPACE, " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s>:0 $A:0", pair="<s>:0 $A:0 <s>:1 $B:1", special_tokens=[("<s>", 1)]
    )
    tokenizer.add_special_tokens([AddedToken(token, normalized=False, special=True) for token in SPECIAL_TOKENS])
    return tokenizer


def write_folder(tokenizer, folder: Path) -> None:
    """The files a Hub LLaMA-2 folder holds, with ChatMusician's chat template."""
    from chatmusician_hf.chat_format import CHAT_TEMPLATE

    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(folder / "tokenizer.json"))
    config = {**TOKENIZER_CONFIG, "chat_template": CHAT_TEMPLATE}
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    special = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}
    (folder / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n")


def inputs_key(texts: list[str]) -> str:
    import tokenizers

    digest = hashlib.sha256()
    digest.update(Path(__file__).read_bytes())
    digest.update(tokenizers.__version__.encode())
    for text in texts:
        digest.update(hashlib.sha256(text.encode()).digest())
    return digest.hexdigest()[:16]


def cached_tokenizer_dir(cache_root: Path | None = None) -> Path:
    """The tokenizer folder, trained on first use and read from ``cache_root`` after."""
    if cache_root is None:
        from chatmusician_hf.data.config import default_cache_dir

        cache_root = default_cache_dir() / "test-tokenizers"
    texts = training_texts()
    folder = Path(cache_root) / f"llama-style-{inputs_key(texts)}"
    if (folder / "tokenizer_config.json").is_file():
        return folder
    partial = folder.with_name(f"{folder.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    write_folder(train(texts), partial)
    if folder.exists():  # another session finished first; its files are the same
        shutil.rmtree(partial, ignore_errors=True)
    else:
        os.replace(partial, folder)
    return folder


def build_untrained_model(tokenizer_dir: Path, output_dir: Path, seed: int = 0) -> Path:
    """A tiny randomly initialised ``LlamaForCausalLM`` over the tokenizer's 32,000 ids, saved with the tokenizer."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=176,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=2048,
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(output_dir)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy2(tokenizer_dir / name, output_dir / name)
    return output_dir
