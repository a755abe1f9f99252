"""Held-out bits per character: the loss measure the quickstart and the tokenizer ablation compare models by."""

from __future__ import annotations

import math

import pytest


@pytest.fixture(scope="module")
def untrained(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(tiny_model_dir), AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="module")
def tunes():
    from chatmusician_hf.eval.held_out import held_out_tunes

    return held_out_tunes()[:24]


def test_untrained_model_scores_log_vocab_bits_per_predicted_token(untrained, tunes):
    from chatmusician_hf.eval.held_out import bits_per_character

    model, tokenizer = untrained
    # A random model's logits are near zero: each predicted token (all but the first, plus the EOS) costs about
    # log2(vocab) bits, and the characters counted are those of the predicted tokens.
    ids = [tokenizer(t, add_special_tokens=False).input_ids for t in tunes]
    tokens = sum(len(i) for i in ids)
    characters = sum(len(t) - len(tokenizer.decode(i[:1])) for t, i in zip(tunes, ids))
    expected = math.log2(len(tokenizer)) * tokens / characters
    assert bits_per_character(model, tokenizer, tunes) == pytest.approx(expected, rel=0.05)


def test_padding_does_not_change_the_score(untrained, tunes):
    from chatmusician_hf.eval.held_out import bits_per_character

    model, tokenizer = untrained
    # Tunes of different lengths batched together are padded; one at a time they are not.
    batched = bits_per_character(model, tokenizer, tunes, batch_size=12)
    assert bits_per_character(model, tokenizer, tunes, batch_size=1) == pytest.approx(batched, rel=1e-4)


def test_held_out_tunes_are_the_corpus_validation_split_without_long_ones():
    from chatmusician_hf.data.corpus import build_music21_corpus
    from chatmusician_hf.eval.held_out import held_out_tunes

    validation = build_music21_corpus()["validation"]["text"]
    chosen = held_out_tunes(max_characters=800)
    assert chosen and set(chosen) <= set(validation) and all(len(t) <= 800 for t in chosen)
    assert len(chosen) == sum(len(t) <= 800 for t in validation)
