"""Held-out bits per character: a language model's loss on whole texts, comparable across tokenizers.

Loss per token depends on how much text a token holds, so two tokenizers cannot be compared by it. Bits per
character divides the total loss (in bits) by the characters the predicted tokens spell out. Each text is scored as
the pretraining data presents it (no BOS, EOS at the end, positions from 0); its first token has no context to be
predicted from, so neither its loss nor its characters count, and the EOS counts with no characters.
"""

from __future__ import annotations

import math


def bits_per_character(model, tokenizer, texts: list[str], batch_size: int = 16) -> float:
    """Total cross-entropy in bits over total characters of ``texts`` (see the module docstring)."""
    import torch

    from ..data.encoding import encode_texts

    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    documents = sorted(
        ((ids + [eos], len(text) - len(tokenizer.decode(ids[:1]))) for ids, text in
         zip(encode_texts(tokenizer, texts), texts, strict=True) if ids),
        key=lambda doc: len(doc[0]),
    )
    nats, characters = 0.0, 0
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(documents), batch_size):
            batch = documents[start : start + batch_size]
            width = max(len(ids) for ids, _ in batch)
            input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in batch])
            mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in batch])
            logits = model(input_ids=input_ids, attention_mask=mask, use_cache=False).logits[:, :-1]
            labels = input_ids[:, 1:].masked_fill(mask[:, 1:] == 0, -100)
            nats += torch.nn.functional.cross_entropy(
                logits.flatten(0, 1).float(), labels.flatten(), ignore_index=-100, reduction="sum"
            ).item()
            characters += sum(chars for _, chars in batch)
    return nats / math.log(2) / characters


def held_out_tunes(max_characters: int = 1500, seed: int = 42, validation_fraction: float = 0.05) -> list[str]:
    """The corpus's held-out tunes up to ``max_characters`` long (a choice that does not depend on a tokenizer)."""
    from ..data.corpus import build_music21_corpus

    texts = build_music21_corpus(validation_fraction, seed)["validation"]["text"]
    return [text for text in texts if len(text) <= max_characters]
