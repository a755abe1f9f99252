"""Pretraining data: tokenise documents in batches and pack them into blocks of ``max_length`` tokens.

Each document is tokenised without BOS, followed by EOS, and laid end to end with the others; the stream is cut
every ``max_length`` tokens. Nothing is dropped: a long document continues in the next block and the last, shorter
block is kept. ``position_ids`` count from 0 at every document start and at every block start, so attention
backends that read them (flash-attention varlen, TRL's padding-free collators) keep documents apart.

This differs from ChatMusician's own preprocessing, which tokenised row by row, added no EOS and did not pack: a
2048-token context then held one short tune and padding.

Tokenisation goes through :class:`PieceEncoder` when the tokenizer's pipeline allows it (a regex ``Split`` then
``ByteLevel``, as in the tiny tokenizer and GPT-style BPE ones): Python's regex engine cuts the text into the same
pieces, each distinct piece is tokenised once by the tokenizer's own model, and a batch's ids are gathered with numpy.
Other tokenizers use the Rust batch encoder. The ids are the tokenizer's either way (see the class for the checks).

Map-style datasets are cut into row ranges that ``num_proc`` forked processes tokenise, each reading its range from
the memory-mapped Arrow table and sending back numpy arrays; the main process packs the ranges in order and writes the
blocks once to an Arrow file under ``data_cache_dir``, in a folder named by a hash of the rows' fingerprint, the
tokenizer and the settings; a second call with the same inputs opens that file instead of tokenising again. Streaming
datasets are tokenised and packed lazily, one batch in memory at a time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from itertools import chain
from pathlib import Path

import numpy as np

from .config import DataArguments, cache_dir
from .sources import DatasetSourceError, describe_sources, load_preprocessed, load_rows

logger = logging.getLogger(__name__)

TOKENIZE_BATCH_SIZE = 1000


def source_digest(*modules) -> str:
    """A hash of the given modules' source code. ``datasets`` fingerprints a module-level map function by its name
    only, so cache keys include this to never reuse results of an older version of the code."""
    digest = hashlib.sha256()
    for module in modules:
        digest.update(Path(module.__file__).read_bytes())
    return digest.hexdigest()[:16]


# --------------------------------------------------------------------------------------------------------------------
# Tokenisation


# Words the BPE model remembers. The tokenizers default (10,000) thrashes on ABC, whose "words" (``B2B2``,
# ``cBAG|A2B2``) are many and repeat across tunes; a larger cache measured ~1.3x faster, with identical ids.
BPE_WORD_CACHE = 1_000_000
# Pieces the piece encoder remembers before it starts over (bounded memory on corpora of any size).
PIECE_CACHE = 500_000
# (id(backend), vocabulary size) -> (backend, Rust encoder, PieceEncoder or None). Holding the backend keeps its id
# from being reused; the size notices tokens added later (e.g. a <pad> token added before training).
_ENCODERS: dict[tuple[int, int], list] = {}
# Set to False to always tokenise with the Rust batch encoder (the benchmark reports both).
FAST_PIECES = True

# Unicode White_Space: what the Oniguruma regexes of the tokenizers library call \s. Python's \s also matches
# U+001C..U+001F, so the piece encoder spells the class out.
_WHITE_SPACE = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# Probes every piece encoder must encode exactly like the Rust pipeline before it is used.
_PROBES = (
    "",
    " ",
    "X:1\nT:Speed the Plough\nM:4/4\nL:1/8\nK:G\n|:GABc dedB|dedB dedB|c2ec B2dB|c2A2 A2BA|\n",
    "Human: Develop a tune in ABC notation. </s> Assistant: X:1\nK:D\n|: d2 A2 :| </s>",
    "a  b   c \t\td\n\n\ne  \n  f ",
    "   leading and trailing   ",
    "\n",
    "\r\n\r\n",
    "x\x1cy\x1d z\x1e\x1f",
    "\x85\xa0\u1680\u2000\u200a\u2028\u2029\u202f\u205f\u3000 mixed\u3000spaces\u00a0here",
    "caf\u00e9 na\u0308ive \u4e2d\u6587\u97f3\u4e50 \U0001f3b5\U0001f3b6 \u0645\u0648\u0633\u064a\u0642\u0649",
    "</s></s><s> <s>x</s>y <unk><pad></s",
    "<</s>> </ s> <s",
    "tab\tsep\tvalues\v\f",
)


def _python_split_regex(pattern: str):
    """The Oniguruma ``pattern`` of a ``Split`` pre-tokenizer as a compiled Python regex with the same matches, or
    None when it uses anything whose meaning could differ between the two engines (\\w, \\d, \\p{..}, anchors, ...).
    """
    import re

    out, i, in_class = [], 0, False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            nxt = pattern[i + 1 : i + 2]
            if nxt == "s":
                out.append(_WHITE_SPACE if in_class else f"[{_WHITE_SPACE}]")
            elif nxt == "S" and not in_class:
                out.append(f"[^{_WHITE_SPACE}]")
            elif nxt in ("n", "t", "r") or (nxt and not nxt.isalnum() and nxt.isascii()):
                out.append("\\" + nxt)
            else:
                return None
            i += 2
            continue
        if in_class:
            if c == "[":
                return None  # nested or POSIX classes
            in_class = c != "]"
        elif c == "[":
            in_class = True
        elif c in ".^$":
            return None
        elif c == "(":
            if pattern[i + 1 : i + 2] != "?":
                out.append("(?:")  # findall must return whole matches, not groups
                i += 1
                continue
            if pattern[i + 2 : i + 3] not in ("!", "=", ":", ">"):
                return None  # inline flags, lookbehind, named groups
        out.append(c)
        i += 1
    try:
        return re.compile("".join(out))
    except re.error:
        return None


def _byte_level_map():
    """GPT-2's byte-to-character table as a function of a piece (what the ``ByteLevel`` pre-tokenizer does to it)."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("\u00a1"), ord("\u00ac") + 1),
        *range(ord("\u00ae"), 256),
    ]
    table, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            table[byte] = chr(byte)
        else:
            table[byte] = chr(256 + extra)
            extra += 1
    translation = str.maketrans(table)

    def byte_map(piece: str) -> str:
        return piece.encode("utf-8").decode("latin-1").translate(translation)

    return byte_map


class PieceEncoder:
    """Token ids of many texts at once, for tokenizers whose pipeline cuts a text into pieces with one regex and
    tokenises each piece on its own (the ``Split`` + ``ByteLevel`` pre-tokenizer of the tiny and GPT-style BPE
    tokenizers).

    The Rust tokenizer spends most of its time on that cutting (regex plus byte-level rewriting with per-byte
    offset bookkeeping), not in the BPE model, which already caches words. Here Python's C regex engine cuts the
    text, each distinct piece is tokenised once by the tokenizer's own model, and the ids of a batch are gathered
    from a table with numpy. The ids are the tokenizer's: special/added tokens are cut out first, as the Rust
    pipeline does; a tokenizer whose configuration this does not cover exactly, or that fails the probes at
    construction, gets no PieceEncoder (:func:`encode_batch` then uses the Rust batch encoder); a text whose pieces
    do not tile it goes to the Rust encoder; and one text per batch is checked against the Rust encoder, falling back
    for good on any difference.
    """

    def __init__(self, backend, encoder):
        import re

        from tokenizers import pre_tokenizers

        spec = json.loads(backend.to_str())
        if spec.get("normalizer") is not None or getattr(backend, "encode_special_tokens", False):
            raise ValueError("a normalizer or split_special_tokens")
        if (spec.get("model") or {}).get("dropout") not in (None, 0, 0.0):
            raise ValueError("BPE dropout")
        pre = spec.get("pre_tokenizer") or {}
        steps = pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else [pre]
        if not steps or steps[0].get("type") != "Split":
            raise ValueError("no leading Split pre-tokenizer")
        split = steps[0]
        if (
            split.get("behavior") != "Isolated"
            or split.get("invert")
            or "Regex" not in split.get("pattern", {})
        ):
            raise ValueError("a Split that is not an isolated regex split")
        self._split = _python_split_regex(split["pattern"]["Regex"])
        if self._split is None:
            raise ValueError(f"regex {split['pattern']['Regex']!r}")
        self._byte_level = None
        for step in steps[1:]:
            if (
                step.get("type") != "ByteLevel"
                or step.get("use_regex")
                or step.get("add_prefix_space")
                or self._byte_level is not None
            ):
                raise ValueError(f"pre-tokenizer step {step.get('type')}")
            self._byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
        self._byte_map = None
        if self._byte_level is not None:
            self._byte_map = _byte_level_map()
            for probe in (*_PROBES, "".join(map(chr, range(1, 256))), "\u4e2d\U0001f3b5\u0645\ufeff"):
                if probe and [self._byte_map(probe)] != [
                    p for p, _ in self._byte_level.pre_tokenize_str(probe)
                ]:
                    raise ValueError("the byte-level alphabet differs")
        added = spec.get("added_tokens") or []
        if any(t.get("single_word") or t.get("lstrip") or t.get("rstrip") for t in added):
            raise ValueError("added tokens with single_word/lstrip/rstrip")
        self._model = encoder.model
        self._encoder = encoder
        # Added tokens are cut out before pre-tokenisation: first those matched on the raw text, then the
        # "normalized" ones (the same text here, as there is no normalizer); longest first at each position.
        self._added_ids = {("added", t["content"]): t["id"] for t in added}
        self._added_stages = []
        for normalized in (False, True):
            contents = sorted(
                {t["content"] for t in added if bool(t.get("normalized")) == normalized}, key=len
            )
            if contents:
                alternation = "|".join(re.escape(c) for c in reversed(contents))
                self._added_stages.append(re.compile(f"({alternation})"))
        self._added_contents = sorted(key[1] for key in self._added_ids)
        self._reset()
        self._checked = 0
        for probe in _PROBES:
            if self._encode_lists([probe]) != [encoder.encode(probe, add_special_tokens=False).ids]:
                raise ValueError(f"probe {probe!r} differs")

    def _reset(self):
        self._index: dict = {}
        self._size = 0  # pieces
        self._used = 0  # ids in the table
        self._starts = np.zeros(1024, dtype=np.int64)
        self._lengths = np.zeros(1024, dtype=np.int64)
        self._flat = np.zeros(4096, dtype=np.int32)
        self._add(list(self._added_ids), [[token_id] for token_id in self._added_ids.values()])

    def _add(self, keys: list, ids: list[list[int]]) -> None:
        """Append pieces and their ids to the table."""
        lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
        flat = np.fromiter(chain.from_iterable(ids), dtype=np.int32, count=int(lengths.sum()))
        size, used = self._size + len(keys), self._used + len(flat)
        if size > len(self._starts):
            grow = max(size, 2 * len(self._starts))
            self._starts = np.resize(self._starts, grow)
            self._lengths = np.resize(self._lengths, grow)
        if used > len(self._flat):
            self._flat = np.resize(self._flat, max(used, 2 * len(self._flat)))
        self._starts[self._size : size] = self._used + np.cumsum(lengths) - lengths
        self._lengths[self._size : size] = lengths
        self._flat[self._used : used] = flat
        self._index.update(zip(keys, range(self._size, size)))
        self._size, self._used = size, used

    def _learn(self, pieces: list) -> None:
        """Tokenise pieces not seen yet with the tokenizer's model, as the Rust pipeline does piece by piece."""
        missing = set(pieces).difference(self._index)
        if self._size + len(missing) > PIECE_CACHE:
            self._reset()
            missing = set(pieces).difference(self._index)
        missing = list(missing)
        words = missing if self._byte_map is None else [self._byte_map(piece) for piece in missing]
        tokenize = self._model.tokenize
        self._add(missing, [[token.id for token in tokenize(word)] for word in words])

    def _has_added(self, text: str) -> bool:
        if len(self._added_contents) <= 16:  # a few substring searches beat the regex
            return any(content in text for content in self._added_contents)
        return any(stage.search(text) for stage in self._added_stages)

    def _pieces(self, text: str) -> list | None:
        """The pieces of one text (added tokens as ("added", content) keys), or None when they do not tile it."""
        parts: list = [text]
        for stage in self._added_stages:
            cut = []
            for part in parts:
                if isinstance(part, tuple):
                    cut.append(part)
                    continue
                for j, p in enumerate(stage.split(part)):
                    if j % 2:
                        cut.append(("added", p))
                    elif p:
                        cut.append(p)
            parts = cut
        pieces, findall = [], self._split.findall
        for part in parts:
            if isinstance(part, tuple):
                pieces.append(part)
                continue
            found = findall(part)
            if sum(map(len, found)) != len(part) or "" in found:
                return None
            pieces.extend(found)
        return pieces

    def encode(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(all ids end to end as int32, ids per text as int64)."""
        texts = list(texts)
        piece_lists = list(map(self._split.findall, texts))
        pieces = list(chain.from_iterable(piece_lists))
        fallback: list[int] = []
        changed = False
        # Every text's pieces tile it exactly when the lengths add up and no match is empty (checked per batch;
        # per text only when that fails).
        if sum(map(len, pieces)) != sum(map(len, texts)) or "" in pieces:
            for i, (text, found) in enumerate(zip(texts, piece_lists, strict=True)):
                if sum(map(len, found)) != len(text) or "" in found:
                    fallback.append(i)
                    piece_lists[i] = []
                    changed = True
        if self._added_contents and self._has_added("\x00".join(texts)):
            skip = set(fallback)
            for i, text in enumerate(texts):
                if i not in skip and self._has_added(text):
                    found = self._pieces(text)
                    if found is None:
                        fallback.append(i)
                    piece_lists[i] = found or []
                    changed = True
        if changed:
            pieces = list(chain.from_iterable(piece_lists))
            fallback.sort()
        counts = np.fromiter(map(len, piece_lists), dtype=np.int64, count=len(piece_lists))
        try:
            keys = np.fromiter(map(self._index.__getitem__, pieces), dtype=np.int64, count=len(pieces))
        except KeyError:
            self._learn(pieces)
            keys = np.fromiter(map(self._index.__getitem__, pieces), dtype=np.int64, count=len(pieces))
        flat_table, starts, lengths = self._flat, self._starts, self._lengths
        piece_lengths = lengths[keys]
        ends = np.cumsum(piece_lengths)
        gather = np.repeat(starts[keys] - (ends - piece_lengths), piece_lengths)
        gather += np.arange(len(gather), dtype=np.int64)
        flat = flat_table[gather]
        bounds = np.concatenate([[0], ends])[np.concatenate([[0], np.cumsum(counts)])]
        doc_lengths = np.diff(bounds)
        if fallback:
            flat, doc_lengths = self._splice(texts, flat, doc_lengths, fallback)
        self._check(texts, flat, doc_lengths)
        return flat, doc_lengths

    def _splice(self, texts, flat, doc_lengths, fallback):
        docs = _per_text(flat, doc_lengths)
        encode = getattr(self._encoder, "encode_batch_fast", self._encoder.encode_batch)
        encoded = encode([texts[i] for i in fallback], add_special_tokens=False)
        for i, encoding in zip(fallback, encoded, strict=True):
            docs[i] = np.asarray(encoding.ids, dtype=np.int32)
        lengths = np.fromiter(map(len, docs), dtype=np.int64, count=len(docs))
        return (np.concatenate(docs) if docs else np.zeros(0, np.int32)).astype(np.int32, copy=False), lengths

    def _check(self, texts, flat, doc_lengths):
        """Compare one text per batch (a different one each time) with the Rust encoder."""
        if not texts:
            return
        i = self._checked % len(texts)
        self._checked += 1
        start = int(doc_lengths[:i].sum())
        expected = self._encoder.encode(texts[i], add_special_tokens=False).ids  # one text: no thread pool
        if flat[start : start + doc_lengths[i]].tolist() != expected:
            raise _PieceMismatch(texts[i])

    def _encode_lists(self, texts: list[str]) -> list[list[int]]:
        flat, lengths = self.encode(texts)
        return [part.tolist() for part in _per_text(flat, lengths)]


def _per_text(flat: np.ndarray, lengths: np.ndarray) -> list[np.ndarray]:
    """The ids of each text, from all ids end to end and the count per text."""
    return np.split(flat, np.cumsum(lengths)[:-1]) if len(lengths) else []


class _PieceMismatch(Exception):
    pass


def _encoders(backend):
    """(Rust encoder, PieceEncoder or None): a private copy of the Rust tokenizer with a larger BPE word cache and no
    truncation or padding (the caller's tokenizer is left as it is), and the piece encoder when it applies."""
    key = (id(backend), backend.get_vocab_size(with_added_tokens=True))
    cached = _ENCODERS.get(key)
    if cached is None:
        from tokenizers import Tokenizer

        encoder = Tokenizer.from_str(backend.to_str())
        encoder.no_truncation()
        encoder.no_padding()
        if hasattr(encoder.model, "_resize_cache"):  # BPE models only, tokenizers >= 0.20
            encoder.model._resize_cache(BPE_WORD_CACHE)
        try:
            pieces = PieceEncoder(backend, encoder) if FAST_PIECES else None
        except (ValueError, KeyError, _PieceMismatch) as err:
            logger.debug("tokenising with the Rust batch encoder (no piece encoder: %s)", err)
            pieces = None
        cached = _ENCODERS[key] = [backend, encoder, pieces]
    return cached


def encode_batch(tokenizer, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """``tokenizer(texts, add_special_tokens=False)["input_ids"]`` as (all ids end to end, int32; ids per text).

    Through the :class:`PieceEncoder` when the tokenizer allows it, else the Rust backend's batch encoder, which
    returns the same ids without the per-token offsets and masks that the transformers wrapper converts to Python
    objects; a tokenizer without a Rust backend is called as it is.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    else:
        cached = _encoders(backend)
        if cached[2] is not None:
            try:
                return cached[2].encode(texts)
            except _PieceMismatch as err:
                logger.warning(
                    "piece encoder differs from the tokenizer on %r; using the Rust encoder", err.args[0][:80]
                )
                cached[2] = None
        encode = getattr(cached[1], "encode_batch_fast", cached[1].encode_batch)
        ids = [encoding.ids for encoding in encode(texts, add_special_tokens=False)]
    lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
    flat = np.fromiter(chain.from_iterable(ids), dtype=np.int32, count=int(lengths.sum()))
    return flat, lengths


def encode_texts(tokenizer, texts: list[str]) -> list[list[int]]:
    """``tokenizer(texts, add_special_tokens=False)["input_ids"]``, computed by :func:`encode_batch`."""
    if not texts:
        return []
    flat, lengths = encode_batch(tokenizer, texts)
    return [part.tolist() for part in _per_text(flat, lengths)]


def tokenizer_fingerprint(tokenizer) -> str:
    """A hash of everything about the tokenizer that changes the ids it produces."""
    digest = hashlib.sha256()
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        digest.update(backend.to_str().encode())
    else:
        from datasets.fingerprint import Hasher

        digest.update(Hasher.hash(tokenizer).encode())
    digest.update(f"{type(tokenizer).__name__}|{tokenizer.eos_token_id}".encode())
    return digest.hexdigest()[:16]


def _require_eos(tokenizer) -> int:
    if tokenizer.eos_token_id is None:
        raise DatasetSourceError("The tokenizer has no EOS token; packing needs one to separate documents.")
    return tokenizer.eos_token_id


def tokenize_documents(
    texts: list, srcs: list, tokenizer, eos_token_id: int
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Documents (EOS appended to each) as (all ids end to end, ids per document, tokens per src)."""
    flat, lengths = encode_batch(tokenizer, [text or "" for text in texts])
    ends = np.cumsum(lengths + 1)
    out = np.empty(len(flat) + len(lengths), dtype=np.int32)
    keep = np.ones(len(out), dtype=bool)
    keep[ends - 1] = False
    out[keep] = flat
    out[ends - 1] = eos_token_id
    lengths = lengths + 1
    per_src: Counter = Counter()
    for src, n in zip(srcs, lengths.tolist(), strict=True):
        per_src[src] += n
    return out, lengths, dict(per_src)


# --------------------------------------------------------------------------------------------------------------------
# Transposition augmentation


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


# --------------------------------------------------------------------------------------------------------------------
# Packing


class BlockPacker:
    """Lays documents end to end and cuts full blocks of ``max_length``; the remainder waits for the next call."""

    def __init__(self, max_length: int):
        if max_length < 1:
            raise ValueError(f"max_length must be >= 1, got {max_length}")
        self.max_length = max_length
        self._ids = np.zeros(0, dtype=np.int32)
        self._positions = np.zeros(0, dtype=np.int32)

    def add(self, flat_ids: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Append documents (``flat_ids`` split by ``lengths``); return the full blocks as two (n, max_length) arrays."""
        length = self.max_length
        carried = len(self._ids)
        lengths = np.asarray(lengths, dtype=np.int64)
        index = np.arange(carried, carried + len(flat_ids), dtype=np.int64)
        doc_start = np.repeat(np.cumsum(lengths) - lengths + carried, lengths)
        block_start = (index // length) * length
        # A token's position counts from its document's start, or from its block's start when the document began in
        # an earlier block.
        positions = (index - np.maximum(doc_start, block_start)).astype(np.int32)
        ids = np.concatenate([self._ids, np.asarray(flat_ids, dtype=np.int32)])
        positions = np.concatenate([self._positions, positions])
        full = len(ids) // length * length
        self._ids, self._positions = ids[full:], positions[full:]
        return ids[:full].reshape(-1, length), positions[:full].reshape(-1, length)

    def flush(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The last, partial block (or None when the stream ended on a block boundary)."""
        if not len(self._ids):
            return None
        ids, positions = self._ids, self._positions
        self._ids, self._positions = ids[:0], positions[:0]
        return ids, positions


@dataclass
class PackingStats:
    """What packing produced; ``padding_fraction`` is the share of a (blocks x max_length) grid left empty."""

    max_length: int
    rows: int = 0
    tokens: int = 0
    blocks: int = 0
    tokens_per_src: dict[str, int] = field(default_factory=dict)

    @property
    def padding_fraction(self) -> float:
        capacity = self.blocks * self.max_length
        return 1 - self.tokens / capacity if capacity else 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "padding_fraction": self.padding_fraction}

    def summary(self) -> str:
        lines = [
            f"rows {self.rows:,}  tokens {self.tokens:,}  blocks {self.blocks:,} x {self.max_length}  "
            f"padding {self.padding_fraction:.2%}"
        ]
        for src, tokens in sorted(self.tokens_per_src.items(), key=lambda kv: -kv[1]):
            lines.append(f"  {src}: {tokens:,} tokens ({tokens / max(self.tokens, 1):.1%})")
        return "\n".join(lines)


def pack_token_batches(
    batches: Iterable[tuple[np.ndarray, np.ndarray, dict]], max_length: int, stats: PackingStats | None = None
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Blocks (ids, positions), one pair per block, in order; the last may be shorter than ``max_length``.

    ``batches`` are :func:`tokenize_documents` results: (all ids end to end, ids per document, tokens per src)."""
    packer = BlockPacker(max_length)
    for flat, lengths, per_src in batches:
        if stats is not None:
            stats.rows += len(lengths)
            stats.tokens += int(lengths.sum())
            for src, n in per_src.items():
                stats.tokens_per_src[src] = stats.tokens_per_src.get(src, 0) + n
        ids, positions = packer.add(flat, lengths)
        if stats is not None:
            stats.blocks += len(ids)
        yield from zip(ids, positions, strict=True)
    last = packer.flush()
    if last is not None:
        if stats is not None:
            stats.blocks += 1
        yield last


BLOCK_SCHEMA_FIELDS = ("input_ids", "position_ids")


def write_blocks(
    blocks: Iterable[tuple[np.ndarray, np.ndarray]], path: Path, rows_per_batch: int = 256
) -> None:
    """Stream blocks into an Arrow IPC stream file (the format ``datasets`` memory-maps), a few hundred at a time."""
    import pyarrow as pa

    schema = pa.schema([(name, pa.list_(pa.int32())) for name in BLOCK_SCHEMA_FIELDS])

    def flush(pending, writer):
        columns = []
        for j in range(2):
            parts = [block[j] for block in pending]
            offsets = np.concatenate([[0], np.cumsum([len(p) for p in parts])]).astype(np.int32)
            columns.append(pa.ListArray.from_arrays(pa.array(offsets), pa.array(np.concatenate(parts))))
        writer.write_batch(pa.record_batch(columns, schema=schema))

    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
        pending = []
        for block in blocks:
            pending.append(block)
            if len(pending) >= rows_per_batch:
                flush(pending, writer)
                pending = []
        if pending:
            flush(pending, writer)


# --------------------------------------------------------------------------------------------------------------------
# The pretraining dataset


def _prepared_rows(data_args: DataArguments, split: str):
    rows = load_rows(data_args, split, kind="text")
    if data_args.transpose_augment:
        transpose_abc = load_transpose_abc()
        kwargs = {} if data_args.streaming else {"num_proc": data_args.num_proc, "desc": "Transposing tunes"}
        rows = rows.map(
            add_transpositions,
            batched=True,
            fn_kwargs={
                "k": data_args.transpose_augment,
                "seed": data_args.dataset_seed,
                "transpose_abc": transpose_abc,
            },
            **kwargs,
        )
    return rows


def _tokenize_table(table, tokenizer, eos: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """:func:`tokenize_documents` of an Arrow slice of the rows."""
    return tokenize_documents(table.column("text").to_pylist(), table.column("src").to_pylist(), tokenizer, eos)


def _stream_token_batches(rows, tokenizer, eos: int) -> Iterator[tuple[np.ndarray, np.ndarray, dict]]:
    """Tokenised batches of a streaming dataset, one batch in memory at a time."""
    for batch in rows.iter(batch_size=TOKENIZE_BATCH_SIZE):
        yield tokenize_documents(batch["text"], batch["src"], tokenizer, eos)


# The rows and tokenizer of a worker process (set before the fork, read by _tokenize_range).
_WORKER: dict = {}


def _tokenize_range(bounds: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, dict]:
    return _tokenize_table(_WORKER["rows"][bounds[0] : bounds[1]], _WORKER["tokenizer"], _WORKER["eos"])


def _map_token_batches(
    rows, tokenizer, eos: int, num_proc: int | None
) -> Iterator[tuple[np.ndarray, np.ndarray, dict]]:
    """Tokenised batches of a map-style dataset, in row order. With ``num_proc`` > 1 the rows are cut into ranges
    that forked worker processes tokenise (each reads its range from the memory-mapped Arrow table and sends back
    numpy arrays); at most two ranges per worker are in flight, so memory stays bounded on any corpus size."""
    import multiprocessing
    from collections import deque

    arrow_rows = rows.with_format("arrow")
    n = len(rows)
    workers = min(num_proc or 1, os.cpu_count() or 1)
    if workers > 1 and (
        "fork" not in multiprocessing.get_all_start_methods() or multiprocessing.current_process().daemon
    ):
        workers = 1  # no fork (Windows), or already inside a worker process, which may not have children
    size = (
        TOKENIZE_BATCH_SIZE
        if workers == 1
        else int(np.clip(-(-n // (workers * 8)), TOKENIZE_BATCH_SIZE, 16384))
    )
    ranges = [(start, min(start + size, n)) for start in range(0, n, size)]
    if workers == 1 or len(ranges) < 2:
        for start, stop in ranges:
            yield _tokenize_table(arrow_rows[start:stop], tokenizer, eos)
        return
    encode_batch(tokenizer, [""])  # build the encoders once, before the fork, so the workers inherit them
    _WORKER.update(rows=arrow_rows, tokenizer=tokenizer, eos=eos)
    # The workers are the parallelism: one Rust thread each, and no tokenizers warning about forking after its
    # thread pool was used (the setting is the parent's again once the workers exist).
    previous = os.environ.get("TOKENIZERS_PARALLELISM")
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    try:
        pool = multiprocessing.get_context("fork").Pool(workers)
    finally:
        if previous is None:
            os.environ.pop("TOKENIZERS_PARALLELISM", None)
        else:
            os.environ["TOKENIZERS_PARALLELISM"] = previous
    try:
        with pool:
            pending: deque = deque()
            for bounds in ranges:
                pending.append(pool.apply_async(_tokenize_range, (bounds,)))
                if len(pending) >= 2 * workers:
                    yield pending.popleft().get()
            while pending:
                yield pending.popleft().get()
    finally:
        _WORKER.clear()


def _stream_blocks(rows, tokenizer, eos: int, max_length: int):
    for ids, positions in pack_token_batches(_stream_token_batches(rows, tokenizer, eos), max_length):
        yield {"input_ids": ids.tolist(), "position_ids": positions.tolist()}


def pack_pretraining(
    data_args: DataArguments,
    tokenizer,
    max_length: int,
    split: str = "train",
    output_path: Path | None = None,
):
    """Packed blocks and their :class:`PackingStats`.

    Map-style: blocks are written to the cache (or to ``output_path``) and returned as a memory-mapped ``Dataset``.
    Streaming without ``output_path``: a lazy ``IterableDataset`` and ``None`` for stats (they are only known once the
    stream has been read); with ``output_path`` the stream is written there with bounded memory.
    """
    import sys

    from datasets import Dataset, IterableDataset
    from tqdm.auto import tqdm

    rows = _prepared_rows(data_args, split)
    eos = _require_eos(tokenizer)
    if data_args.streaming and output_path is None:
        return IterableDataset.from_generator(
            _stream_blocks,
            gen_kwargs={"rows": rows, "tokenizer": tokenizer, "eos": eos, "max_length": max_length},
        ), None

    if output_path is None:
        key = hashlib.sha256(
            "|".join(
                [
                    source_digest(sys.modules[__name__]),
                    rows._fingerprint,
                    describe_sources(data_args, split),
                    tokenizer_fingerprint(tokenizer),
                    str(max_length),
                    str(data_args.transpose_augment),
                    str(data_args.dataset_seed),
                ]
            ).encode()
        ).hexdigest()[:20]
        folder = cache_dir(data_args) / "pretraining" / key
        blocks_path, stats_path = folder / "blocks.arrow", folder / "stats.json"
        if stats_path.is_file() and blocks_path.is_file():
            logger.info("Reusing packed blocks from %s", folder)
            stats = PackingStats(
                **{k: v for k, v in json.loads(stats_path.read_text()).items() if k != "padding_fraction"}
            )
            return Dataset.from_file(str(blocks_path)), stats
    else:
        folder = Path(output_path)
        blocks_path, stats_path = folder / "blocks.arrow", folder / "stats.json"
    folder.mkdir(parents=True, exist_ok=True)

    stats = PackingStats(max_length=max_length)
    if data_args.streaming:
        token_batches, total = _stream_token_batches(rows, tokenizer, eos), None
    else:
        token_batches, total = _map_token_batches(rows, tokenizer, eos, data_args.num_proc), len(rows)
    with tqdm(total=total, unit="rows", desc=f"Packing {split} into {max_length}-token blocks") as bar:

        def batches():
            for batch in token_batches:
                yield batch
                bar.update(len(batch[1]))
                bar.set_postfix(tokens=f"{stats.tokens:,}", blocks=f"{stats.blocks:,}", refresh=False)

        partial = blocks_path.with_suffix(".arrow.partial")
        write_blocks(pack_token_batches(batches(), max_length, stats), partial)
    os.replace(partial, blocks_path)
    # stats.json is written last: its presence marks a complete cache entry.
    stats_path.write_text(json.dumps(stats.to_dict(), indent=2) + "\n")
    return Dataset.from_file(str(blocks_path)), stats


def build_pretraining_dataset(data_args: DataArguments, tokenizer, max_length: int, split: str = "train"):
    """Packed pretraining blocks with columns ``input_ids`` and ``position_ids`` (a ``Dataset``, or an
    ``IterableDataset`` when ``data_args.streaming``). See the module docstring for the layout and the cache.

    When ``dataset_name`` is a ``chatmusician-hf preprocess --stage cpt`` folder, its blocks are used as they are."""
    preprocessed = load_preprocessed(data_args, split, BLOCK_SCHEMA_FIELDS)
    if preprocessed is not None:
        dataset, summary = preprocessed
        if summary.get("max_length") != max_length:
            raise DatasetSourceError(
                f"{data_args.dataset_name}: packed to {summary.get('max_length')} tokens, but max_length is "
                f"{max_length}; preprocess again with this max_length."
            )
        return dataset
    return pack_pretraining(data_args, tokenizer, max_length, split)[0]
