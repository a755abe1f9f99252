"""Pretraining packing: no token lost or reordered, block limits, per-document positions, streaming, cache."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatmusician_hf.data import encoding
from chatmusician_hf.data.augment import is_abc_tune, transposition_choices
from chatmusician_hf.data.config import DataArguments
from chatmusician_hf.data.encoding import encode_texts
from chatmusician_hf.data.packing import BlockPacker
from chatmusician_hf.data.piece_encoder import PROBES, PieceEncoder, per_text
from chatmusician_hf.data.pretraining import build_pretraining_dataset, pack_pretraining
from chatmusician_hf.data.token_batches import Tokenization, map_token_batches

FIXTURE = Path(__file__).parent / "fixtures" / "musicpile_sample.jsonl"


def _pack(docs: list[list[int]], max_length: int, batch_sizes: list[int]):
    packer, blocks, i = BlockPacker(max_length), [], 0
    for size in batch_sizes + [len(docs)]:
        chunk = docs[i : i + size]
        i += len(chunk)
        if not chunk:
            continue
        flat = np.concatenate([np.asarray(d, dtype=np.int32) for d in chunk])
        ids, positions = packer.add(flat, np.array([len(d) for d in chunk]))
        blocks += list(zip(ids.tolist(), positions.tolist(), strict=True))
    last = packer.flush()
    if last is not None:
        blocks.append((last[0].tolist(), last[1].tolist()))
    return blocks


def _expected_positions(docs: list[list[int]], max_length: int) -> list[int]:
    """Positions from first principles: count from the document start, restart at every block boundary."""
    positions, index = [], 0
    for doc in docs:
        counter = 0
        for _ in doc:
            if index % max_length == 0:
                counter = 0
            positions.append(counter)
            counter += 1
            index += 1
    return positions


@settings(max_examples=60, deadline=None)
@given(
    docs=st.lists(st.lists(st.integers(3, 900), min_size=1, max_size=40), min_size=1, max_size=30),
    max_length=st.integers(1, 64),
    batch_sizes=st.lists(st.integers(1, 7), max_size=6),
)
def test_packer_keeps_every_token_once_in_order(docs, max_length, batch_sizes):
    blocks = _pack(docs, max_length, batch_sizes)
    flat_in = [t for d in docs for t in d]
    assert [t for ids, _ in blocks for t in ids] == flat_in
    assert all(len(ids) == max_length for ids, _ in blocks[:-1])
    assert 0 < len(blocks[-1][0]) <= max_length
    assert [p for _, pos in blocks for p in pos] == _expected_positions(docs, max_length)


def test_packer_positions_restart_at_each_document():
    blocks = _pack([[5, 6, 7], [8, 9], [10, 11, 12, 13, 14, 15]], max_length=4, batch_sizes=[1, 1])
    assert blocks == [
        ([5, 6, 7, 8], [0, 1, 2, 0]),
        ([9, 10, 11, 12], [0, 0, 1, 2]),  # the 2nd document's tail restarts at the block start, the 3rd at 0
        ([13, 14, 15], [0, 1, 2]),  # the 3rd document continues in a new block, counting from 0 again
    ]


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def test_backend_batch_encoding_matches_the_tokenizer_call(tokenizer):
    texts = [json.loads(line)["text"] for line in FIXTURE.read_text().splitlines()]
    assert encode_texts(tokenizer, texts) == tokenizer(texts, add_special_tokens=False)["input_ids"]


# Texts where a Python regex could cut differently from the tokenizers library's Oniguruma one: every White_Space
# character and the four that only Python's \s matches (U+001C..U+001F), control characters, special tokens inside
# and next to text, non-Latin scripts, emoji.
TRICKY_TEXTS = [
    *PROBES,
    *(
        f"a{chr(c)}b {chr(c)}{chr(c)} c{chr(c)}"
        for c in [*range(0, 0x80), 0x85, 0xA0, 0x1680, *range(0x2000, 0x2030), 0x205F, 0x3000, 0xFEFF, 0x180E]
    ),
    "Human: Transcribe the tune. </s> Assistant: X:1\nL:1/8\nK:D\n|:dA FA dA FA:|</s>",
    "</s>",
    "<s></s>",
    "x </s>  <pad>\n<unk>",
]


def test_piece_encoder_gives_the_tokenizers_ids(tokenizer):
    # The tiny tokenizer takes the fast path.
    assert encoding.encoders(tokenizer.backend_tokenizer).pieces is not None
    from chatmusician_hf.data.corpus import build_music21_corpus

    corpus = list(build_music21_corpus()["train"]["text"][:400])
    for texts in (TRICKY_TEXTS, corpus, corpus[::-1] + TRICKY_TEXTS, [""]):
        assert encode_texts(tokenizer, texts) == tokenizer(texts, add_special_tokens=False)["input_ids"]
    assert encode_texts(tokenizer, []) == []


def test_piece_encoder_starts_over_when_its_cache_is_full(tokenizer):
    from chatmusician_hf.data.corpus import build_music21_corpus

    backend = tokenizer.backend_tokenizer
    pieces = PieceEncoder(backend, encoding.encoders(backend).rust, cache_size=300)
    corpus = list(build_music21_corpus()["train"]["text"][:200])
    for start in range(0, 200, 50):
        batch = corpus[start : start + 50]
        ids = [part.tolist() for part in per_text(*pieces.encode(batch))]
        assert ids == tokenizer(batch, add_special_tokens=False)["input_ids"]
    assert pieces._size <= 300 + 50 * 400


def _small_tokenizer(pattern: str):
    """A byte-level BPE tokenizer with its own Split regex, trained on a few texts."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(pattern), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<s>", "</s>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    bpe.train_from_iterator(["abc def 123 abc12 de", "X:1 K:D |dA FA|"] * 20, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="</s>", bos_token="<s>")


@pytest.mark.parametrize(
    "pattern, fast",
    [
        (r"[a-z]+", True),  # matches leave gaps: those texts go to the Rust encoder
        (r"\p{L}+|\s+|[^\s\p{L}]+", False),  # \p{..} classes are not translated: the Rust encoder for all
        (r" ?\S+|\s+(?!\S)|\s+", True),
    ],
)
def test_other_split_patterns_give_the_tokenizers_ids(pattern, fast):
    tok = _small_tokenizer(pattern)
    assert (encoding.encoders(tok.backend_tokenizer).pieces is not None) == fast
    texts = ["abc def", "abc 123 de</s>x", "12 34", "", "  ", *TRICKY_TEXTS[:40]]
    assert encode_texts(tok, texts) == tok(texts, add_special_tokens=False)["input_ids"]


@pytest.fixture
def fresh_encoders():
    """A test that breaks a cached encoder on purpose leaves none behind."""
    encoding.clear_encoder_cache()
    yield
    encoding.clear_encoder_cache()


def test_a_piece_encoder_that_disagrees_is_dropped(tokenizer, fresh_encoders, caplog):
    pieces = encoding.encoders(tokenizer.backend_tokenizer).pieces
    texts = ["X:1\nK:D\n d d d", " d"]
    encode_texts(tokenizer, texts)
    key = pieces._index[" d"]
    pieces._flat[pieces._starts[key]] += 1  # corrupt one learnt piece
    with caplog.at_level(logging.WARNING, logger="chatmusician_hf.data.encoding"):
        assert encode_texts(tokenizer, texts) == tokenizer(texts, add_special_tokens=False)["input_ids"]
    assert "piece encoder differs" in caplog.text
    assert encoding.encoders(tokenizer.backend_tokenizer).pieces is None


def _documents(tokenizer, texts):
    eos = tokenizer.eos_token_id
    return [ids + [eos] for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]


def test_pretraining_blocks_hold_every_document_token_once(tokenizer, tmp_path):
    args = DataArguments(dataset_name=str(FIXTURE), validation_fraction=0, data_cache_dir=str(tmp_path))
    dataset, stats = pack_pretraining(args, tokenizer, max_length=64)
    texts = [json.loads(line)["text"] for line in FIXTURE.read_text().splitlines()]
    docs = _documents(tokenizer, texts)
    assert dataset.column_names == ["input_ids", "position_ids"]
    assert [t for ids in dataset["input_ids"] for t in ids] == [t for d in docs for t in d]
    assert [p for pos in dataset["position_ids"] for p in pos] == _expected_positions(docs, 64)
    assert max(len(ids) for ids in dataset["input_ids"]) <= 64
    assert tokenizer.bos_token_id not in {t for ids in dataset["input_ids"] for t in ids}
    assert stats.rows == len(texts) and stats.tokens == sum(map(len, docs)) and stats.blocks == len(dataset)
    assert stats.tokens_per_src["IrishMAN"] == len(docs[3]) + len(docs[7])


def test_streaming_gives_the_same_blocks_and_multiprocessing_too(tokenizer, tmp_path):
    # Several batches, and several row ranges for the worker processes.
    common = dict(dataset_name="music21", max_rows=300, data_cache_dir=str(tmp_path))
    small_batches = Tokenization(batch_size=40)

    def blocks(**options):
        return pack_pretraining(DataArguments(**common, **options), tokenizer, 256, tokenization=small_batches)[0]

    plain, streamed, parallel = blocks(), list(blocks(streaming=True)), blocks(num_proc=2)
    assert len(plain) > 10
    assert streamed == list(plain)
    assert parallel["input_ids"] == plain["input_ids"] and parallel["position_ids"] == plain["position_ids"]


def test_worker_processes_read_rows_through_an_indices_mapping(tokenizer):
    from chatmusician_hf.data.corpus import build_music21_corpus

    rows = build_music21_corpus()["train"].select_columns(["text", "src"]).shuffle(seed=3).select(range(200))
    eos, small_batches = tokenizer.eos_token_id, Tokenization(batch_size=30)
    one = list(map_token_batches(rows, tokenizer, eos, None, small_batches))
    two = list(map_token_batches(rows, tokenizer, eos, 2, small_batches))
    expected = _documents(tokenizer, list(rows["text"]))
    for batches in (one, two):
        assert np.concatenate([flat for flat, _, _ in batches]).tolist() == [t for d in expected for t in d]
        assert np.concatenate([lengths for _, lengths, _ in batches]).tolist() == [len(d) for d in expected]


def test_second_call_reuses_the_packed_cache(tokenizer, tmp_path, caplog):
    args = DataArguments(dataset_name=str(FIXTURE), validation_fraction=0, data_cache_dir=str(tmp_path))
    first = build_pretraining_dataset(args, tokenizer, max_length=32)
    (blocks_file,) = (tmp_path / "pretraining").glob("*/blocks.arrow")
    mtime = blocks_file.stat().st_mtime_ns
    with caplog.at_level(logging.INFO, logger="chatmusician_hf.data.pretraining"):
        second = build_pretraining_dataset(args, tokenizer, max_length=32)
    assert "Reusing packed blocks" in caplog.text
    assert blocks_file.stat().st_mtime_ns == mtime
    assert second["input_ids"] == first["input_ids"]
    build_pretraining_dataset(args, tokenizer, max_length=48)  # another setting gets its own entry
    assert len(list((tmp_path / "pretraining").glob("*/blocks.arrow"))) == 2


def test_transposition_choices_are_deterministic_distinct_and_nonzero():
    tune = "X:1\nT:t\nM:4/4\nK:D\nd2 A2 |]"
    assert is_abc_tune(tune) and not is_abc_tune("Human: hi </s>")
    shifts = transposition_choices(tune, 3, seed=7)
    assert shifts == transposition_choices(tune, 3, seed=7)
    assert len(set(shifts)) == 3 and 0 not in shifts and all(-5 <= s <= 6 for s in shifts)


def test_transposition_augmentation_adds_k_copies_of_each_tune(tokenizer, tmp_path):
    import shutil

    if shutil.which("abc2abc") is None:
        pytest.skip("abc2abc (Debian package abcmidi) is not installed")
    pytest.importorskip("chatmusician_hf.music")
    common = dict(dataset_name=str(FIXTURE), validation_fraction=0, data_cache_dir=str(tmp_path))
    _, plain = pack_pretraining(DataArguments(**common), tokenizer, max_length=64)
    _, augmented = pack_pretraining(DataArguments(**common, transpose_augment=2), tokenizer, max_length=64)
    # Two fixture rows are whole ABC tunes (ids 5 and 8); chat rows holding ABC are left alone.
    assert augmented.rows == plain.rows + 4
    assert set(augmented.tokens_per_src) == set(plain.tokens_per_src) | {
        "KernScores/transposed",
        "IrishMAN/transposed",
    }
