"""Token ids of many texts at once, for tokenizers whose pipeline cuts a text with one regex and tokenises each
piece on its own (the tiny tokenizer, GPT-style byte-level BPE): see :class:`PieceEncoder`."""

from __future__ import annotations

import json
from itertools import chain

import numpy as np

from .pretokenize import byte_level_map, python_split_regex

PIECE_CACHE = 500_000
# Probes every piece encoder must encode exactly like the Rust pipeline before it is used.
PROBES = (
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


class PieceEncoder:
    """Token ids of many texts at once, for tokenizers whose pipeline cuts a text into pieces with one regex and
    tokenises each piece on its own (the ``Split`` + ``ByteLevel`` pre-tokenizer of the tiny and GPT-style BPE
    tokenizers).

    The Rust tokenizer spends most of its time on that cutting (regex plus byte-level rewriting with per-byte
    offset bookkeeping), not in the BPE model, which already caches words. Here Python's C regex engine cuts the
    text, each distinct piece is tokenised once by the tokenizer's own model, and the ids of a batch are gathered
    from a table with numpy. The ids are the tokenizer's: special/added tokens are cut out first, as the Rust
    pipeline does; a tokenizer whose configuration this does not cover exactly, or that fails the probes at
    construction, gets no PieceEncoder (:func:`~chatmusician_hf.data.encoding.encode_batch` then uses the Rust batch
    encoder); a text whose pieces do not tile it goes to the Rust encoder; and one text per batch is checked against
    the Rust encoder, falling back for good on any difference. At most ``cache_size`` pieces are remembered before
    the table starts over (bounded memory on corpora of any size).
    """

    def __init__(self, backend, encoder, cache_size: int = PIECE_CACHE):
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
        self._split = python_split_regex(split["pattern"]["Regex"])
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
            self._byte_map = byte_level_map()
            for probe in (*PROBES, "".join(map(chr, range(1, 256))), "\u4e2d\U0001f3b5\u0645\ufeff"):
                if probe and [self._byte_map(probe)] != [
                    p for p, _ in self._byte_level.pre_tokenize_str(probe)
                ]:
                    raise ValueError("the byte-level alphabet differs")
        added = spec.get("added_tokens") or []
        if any(t.get("single_word") or t.get("lstrip") or t.get("rstrip") for t in added):
            raise ValueError("added tokens with single_word/lstrip/rstrip")
        self._model = encoder.model
        self._cache_size = cache_size
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
        for probe in PROBES:
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
        if self._size + len(missing) > self._cache_size:
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
        docs = per_text(flat, doc_lengths)
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
            raise PieceMismatch(texts[i])

    def _encode_lists(self, texts: list[str]) -> list[list[int]]:
        flat, lengths = self.encode(texts)
        return [part.tolist() for part in per_text(flat, lengths)]


def per_text(flat: np.ndarray, lengths: np.ndarray) -> list[np.ndarray]:
    """The ids of each text, from all ids end to end and the count per text."""
    return np.split(flat, np.cumsum(lengths)[:-1]) if len(lengths) else []


class PieceMismatch(Exception):
    pass

