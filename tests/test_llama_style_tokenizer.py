"""The LLaMA-2-style SentencePiece tokenizer fixture: LLaMA-2's structure, lossless text, and the byte table the
music-aware processor reads from it."""

from __future__ import annotations

import json
import random
import re

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast

from chatmusician_hf.chat_format import render_conversation
from chatmusician_hf.constrain import token_bytes_table

ABC_MARKS = set('|[]"!~`()^_=')
NOTE_LETTERS = set("ABCDEFGabcdefg")
TEXTS = [
    "X:1\nT:The Kesh\nR:jig\nM:6/8\nL:1/8\nK:G\n|:\"G\"GAG GAB|\"D\"ABA ABd|!trill!edd gdd|edB dBA:|\n",
    "Using ABC notation, recreate the given text as a musical score.\nMeter C\nKey D\nNote Length 1/8\nRhythm reel",
    'def f(x):\n\t"""Return the list [x] unless x is None."""\n    return [x] if x is not None else []  # done\n',
    "Élan vital, naïve café — 𝄞 ♯♭ 音楽 Ünïcödé\x00\x7f end  with  spaces  ",
]


@pytest.fixture(scope="module")
def tokenizer(sentencepiece_tokenizer_dir):
    return AutoTokenizer.from_pretrained(sentencepiece_tokenizer_dir)


@pytest.fixture(scope="module")
def file_tokenizer(sentencepiece_tokenizer_dir):
    """The same tokenizer read straight from its tokenizer.json, normalizer included (transformers' LlamaTokenizer
    class rebuilds it with a Metaspace pre-tokenizer instead)."""
    return PreTrainedTokenizerFast(
        tokenizer_file=str(sentencepiece_tokenizer_dir / "tokenizer.json"),
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
    )


def test_the_files_have_llama2s_structure(sentencepiece_tokenizer_dir):
    spec = json.loads((sentencepiece_tokenizer_dir / "tokenizer.json").read_text())
    model, vocab = spec["model"], spec["model"]["vocab"]
    assert model["type"] == "BPE" and model["byte_fallback"] and model["fuse_unk"] and model["unk_token"] == "<unk>"
    assert len(vocab) == 32_000 and sorted(vocab.values()) == list(range(32_000))
    assert [vocab["<unk>"], vocab["<s>"], vocab["</s>"]] == [0, 1, 2]
    assert all(vocab[f"<0x{byte:02X}>"] == 3 + byte for byte in range(256))
    assert spec["normalizer"] == {
        "type": "Sequence",
        "normalizers": [
            {"type": "Prepend", "prepend": "▁"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "▁"},
        ],
    }
    assert spec["pre_tokenizer"] is None
    assert [step["type"] for step in spec["decoder"]["decoders"]] == ["Replace", "ByteFallback", "Fuse", "Strip"]
    assert spec["decoder"]["decoders"][3] == {"type": "Strip", "content": " ", "start": 1, "stop": 0}
    assert [token["content"] for token in spec["added_tokens"]] == ["<unk>", "<s>", "</s>"]
    config = json.loads((sentencepiece_tokenizer_dir / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "LlamaTokenizer" and config["pad_token"] is None


def test_loaded_as_llama2_users_meet_it(tokenizer):
    assert type(tokenizer).__name__ == "LlamaTokenizer" and len(tokenizer) == 32_000
    assert (tokenizer.unk_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id) == (0, 1, 2)
    assert tokenizer.pad_token is None and tokenizer.padding_side == "right", "LLaMA-2 ships no pad token"
    assert tokenizer("Key D")["input_ids"][0] == 1, "BOS is added, EOS is not"
    assert tokenizer("Key D")["input_ids"][-1] != 2
    assert tokenizer.tokenize("A\nB\tc") == ["▁A", "<0x0A>", "B", "<0x09>", "c"], "newline and tab are bytes"
    messages = [{"role": "user", "content": "a jig in D"}, {"role": "assistant", "content": "X:1\nK:D\nDFA|"}]
    assert tokenizer.apply_chat_template(messages, tokenize=False) == render_conversation(messages)


def test_pieces_mix_note_letters_with_abc_marks(tokenizer):
    pieces = [piece for piece in tokenizer.get_vocab() if not re.fullmatch(r"<0x[0-9A-F]{2}>|<unk>|<s>|</s>", piece)]
    mixed = [piece for piece in pieces if set(piece) & NOTE_LETTERS and set(piece) & ABC_MARKS]
    assert len(mixed) > 2_000, len(mixed)
    for mark in ABC_MARKS - set("^_="):
        assert sum(mark in piece for piece in mixed) >= 10, mark
    assert {"▁|", "|]", ":|", "|:"} <= set(pieces)


@pytest.mark.parametrize("text", TEXTS)
def test_text_round_trips(tokenizer, file_tokenizer, text):
    for loaded in (tokenizer, file_tokenizer):
        ids = loaded(text)["input_ids"]
        assert loaded.decode(ids, skip_special_tokens=True) == text
    assert file_tokenizer.decode(file_tokenizer(" " + text)["input_ids"], skip_special_tokens=True) == " " + text


def test_non_ascii_goes_through_byte_pieces(tokenizer):
    assert tokenizer.tokenize("𝄞") == ["▁", "<0xF0>", "<0x9D>", "<0x84>", "<0x9E>"]


def test_music21_tunes_round_trip(tokenizer):
    from chatmusician_hf.data.corpus import iter_music21_tunes

    tunes = [tune.text for _, tune in zip(range(300), iter_music21_tunes(), strict=False)]
    for text in tunes:
        assert tokenizer.decode(tokenizer(text)["input_ids"], skip_special_tokens=True) == text


def test_token_bytes_table_matches_decode(tokenizer, file_tokenizer):
    """Every id's bytes decode to what ``decode`` shows for it after a fixed piece, and random sequences of ids to
    ``decode`` of the sequence (which drops one leading space)."""
    for loaded in (tokenizer, file_tokenizer):
        table = token_bytes_table(loaded)
        assert table[:3] == [b"", b"", b""]
        assert table[3:259] == [bytes([byte]) for byte in range(256)]
        anchor = loaded.convert_tokens_to_ids("A")
        for token_id in range(259, len(loaded)):
            assert loaded.decode([anchor, token_id]) == "A" + table[token_id].decode("utf-8"), token_id
        rng = random.Random(0)
        # whole pieces, and whole characters spelt in byte pieces
        units = [[i] for i in range(259, len(loaded))] + [loaded.encode(c, add_special_tokens=False) for c in "é𝄞音"]
        for _ in range(2_000):
            ids = [i for _ in range(rng.randint(1, 12)) for i in rng.choice(units)]
            text = b"".join(table[i] for i in ids).decode("utf-8")
            assert loaded.decode(ids) == (text[1:] if text.startswith(" ") else text), ids


def test_training_is_deterministic_and_cached(sentencepiece_tokenizer_dir, tmp_path):
    from llama_style_tokenizer import cached_tokenizer_dir, inputs_key, train, training_texts

    texts = training_texts()
    assert sentencepiece_tokenizer_dir.name.endswith(inputs_key(texts))
    assert inputs_key(texts + ["X:1\nK:D\nD|"]) != inputs_key(texts), "the key covers the training text"
    retrained = json.loads(train(texts).to_str())
    assert retrained == json.loads((sentencepiece_tokenizer_dir / "tokenizer.json").read_text())
    assert cached_tokenizer_dir(sentencepiece_tokenizer_dir.parent) == sentencepiece_tokenizer_dir


def test_untrained_model_generates_batched_as_one_by_one(sentencepiece_model_dir):
    """With the pad token LLaMA-2 users set (EOS) and left padding, a batch decodes as each prompt alone."""
    tokenizer = AutoTokenizer.from_pretrained(sentencepiece_model_dir)
    model = AutoModelForCausalLM.from_pretrained(sentencepiece_model_dir)
    assert model.config.vocab_size == len(tokenizer) == 32_000
    tokenizer.pad_token, tokenizer.padding_side = tokenizer.eos_token, "left"
    prompts = ["Human: a jig in D </s> Assistant: ", "Human: a reel </s> Assistant: X:1\nM:4/4\nK:G\n"]
    greedy = dict(max_new_tokens=8, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    batch = tokenizer(prompts, return_tensors="pt", padding=True)
    with torch.no_grad():
        together = model.generate(**batch, **greedy)[:, batch["input_ids"].shape[1] :]
        for row, prompt in zip(together, prompts, strict=True):
            alone = tokenizer(prompt, return_tensors="pt")
            assert row.tolist() == model.generate(**alone, **greedy)[0, alone["input_ids"].shape[1] :].tolist()
