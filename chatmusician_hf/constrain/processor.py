"""A ``transformers`` logits processor that keeps generated ABC tunes valid by construction.

At each step and for each row of the batch it follows the text generated so far with an :class:`AbcTracker` and
masks the candidate tokens whose text would make the tune invalid. Only the tokens that could be sampled are
checked: candidates are visited in score order until the legal ones cover what top-k / top-p sampling (or greedy
search) would keep, widening to the whole vocabulary when none of the first ones is legal. Inside a tune every
token that was not checked is masked too; in prose (before ``X:``, after the blank line that ends a tune) only the
illegal candidates are masked -- tokens that would start a malformed tune -- so prose is generated as without it.

Usage::

    processors = LogitsProcessorList([build_abc_logits_processor(tokenizer, model.generation_config)])
    model.generate(**inputs, logits_processor=processors)
"""

from __future__ import annotations

import torch
from transformers import LogitsProcessor

from .token_text import split_utf8, token_bytes_table
from .tracker import MAX_COMPLETION_CHARS, AbcTracker

# In the last steps before max_new_tokens, a token is kept only if the tune can be completed in the steps left
# after it (AbcTracker.completion), so a tune cut by the budget is still valid.
WIND_DOWN_STEPS = 12
CANDIDATE_COMPLETION_NODES = 400  # search effort for each candidate's completion (the model's own tokens)
FIRST_CANDIDATES = 64  # scores sorted at first; the rest of the vocabulary only when none of these is legal
TAIL_MASS = 1e-4  # with no top-k/top-p, stop once the unchecked tokens hold this share of the legal mass


class _Row:
    """The tracker of one sequence, the bytes of a UTF-8 character that is not complete yet, and the completion
    being written when the processor forces one (kept, so each step follows the same legal path to the end)."""

    __slots__ = ("tracker", "pending", "plan")

    def __init__(self, tracker: AbcTracker, pending: bytes = b"", plan: str | None = None):
        self.tracker = tracker
        self.pending = pending
        self.plan = plan

    def advanced(self, data: bytes) -> _Row | None:
        text, pending = split_utf8(self.pending + data)
        tracker = self.tracker.copy()
        if not tracker.feed(text):
            return None
        if pending and not (tracker.accepts_any_char() and tracker.copy().feed("\ufffd")):
            return None  # the partial character must be completable here (not past a length limit, say)
        plan = self.plan[len(text) :] if self.plan and not pending and self.plan.startswith(text) else None
        return _Row(tracker, pending, plan)


class AbcLogitsProcessor(LogitsProcessor):
    """Masks tokens that would make an ABC tune invalid; see the module docstring.

    Args:
        token_bytes: ``token_bytes[i]`` is the text token ``i`` adds, as bytes (:func:`token_bytes_table`).
        eos_token_ids: tokens that end generation; legal only where the tune may end.
        top_k, top_p, temperature, do_sample: the sampling that follows, so that enough legal candidates are kept.
        max_new_tokens: the generation budget; in its last steps only tokens that leave the tune complete are
            kept (when any is), so a tune cut by the budget is still valid. None: no budget is known.
    """

    def __init__(
        self,
        token_bytes: list[bytes],
        eos_token_ids: list[int],
        top_k: int | None = 40,
        top_p: float | None = 0.9,
        temperature: float | None = 1.0,
        do_sample: bool = True,
        max_new_tokens: int | None = None,
    ):
        self.token_bytes = token_bytes
        self.eos_token_ids = [i for i in eos_token_ids if i is not None]
        self.top_k = top_k if top_k and top_k > 0 else None
        self.top_p = top_p if top_p is not None and 0 < top_p < 1 else None
        self.temperature = temperature if temperature and temperature > 0 else 1.0
        self.do_sample = do_sample
        self.max_new_tokens = max_new_tokens
        self._prompt_length = 0
        self._single_chars: dict[str, int] | None = None  # character -> a token of that one character
        self._weights = torch.empty(0, dtype=torch.long)
        self._rows: dict[int, _Row] = {}  # prefix hash -> row state after that prefix
        self.stats = {"steps": 0, "checked": 0, "masked_rows": 0, "widened": 0, "dead_ends": 0, "completed": 0}

    # ----- following each sequence -------------------------------------------------------------------------
    def _hashes(self, input_ids: torch.LongTensor) -> tuple[list[int], list[int]]:
        """Hashes of each row's sequence without and with its last token (int64 arithmetic wraps; collisions are
        negligible for a random 64-bit linear hash)."""
        length = input_ids.shape[1]
        if self._weights.numel() < length:
            generator = torch.Generator().manual_seed(0x5EED)
            self._weights = torch.randint(-(2**62), 2**62, (max(length * 2, 256),), generator=generator)
        weighted = input_ids.to("cpu", torch.long) * self._weights[:length]
        prefix = weighted[:, :-1].sum(dim=1)
        return prefix.tolist(), (prefix + weighted[:, -1]).tolist()

    def _row_state(self, ids: list[int], prefix_hash: int) -> _Row:
        previous = self._rows.get(prefix_hash)
        if previous is not None:
            last = ids[-1]
            row = previous.advanced(self.token_bytes[last] if last < len(self.token_bytes) else b"")
            if row is not None:
                return row
            # an illegal token was forced in (another processor, or a fallback): follow the text leniently
        tracker = AbcTracker()
        text, pending = split_utf8(b"".join(self.token_bytes[i] for i in ids if i < len(self.token_bytes)))
        _feed_leniently(tracker, text)
        tracker.mark_line_start()  # the answer starts on a fresh line (e.g. after "Assistant: ")
        return _Row(tracker, pending)

    # ----- the step ----------------------------------------------------------------------------------------
    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        self.stats["steps"] += 1
        prefix_hashes, full_hashes = self._hashes(input_ids)
        if not any(prefix in self._rows for prefix in prefix_hashes):
            self._prompt_length = input_ids.shape[1]  # a new generate() call
        generated = input_ids.shape[1] - self._prompt_length
        left = None if self.max_new_tokens is None else self.max_new_tokens - generated  # tokens, this one included
        rows: dict[int, _Row] = {}
        for index in range(input_ids.shape[0]):
            row = self._row_state(input_ids[index].tolist(), prefix_hashes[index])
            rows[full_hashes[index]] = row
            completion = row.plan
            if completion is None and left is not None and left <= WIND_DOWN_STEPS + MAX_COMPLETION_CHARS:
                completion = None if row.pending else row.tracker.completion()
            if completion and left <= len(completion) + 1:
                # just enough steps left to complete the tune: write its completion, one character a step
                self.stats["completed"] += 1
                self._force(row, scores[index], completion)
            elif completion is not None and left <= WIND_DOWN_STEPS + len(completion):
                # the last steps: the model's tokens, as long as the tune can still be completed after them
                if not self._mask_row(row, scores[index], left):
                    self._force(row, scores[index], completion)
            elif not self._mask_row(row, scores[index], None):
                self.stats["dead_ends"] += 1
                self._force(row, scores[index], None if row.pending else row.tracker.completion())
        self._rows = rows
        return scores

    def _legal(self, row: _Row, token_id: int, left: int | None) -> bool:
        """Whether the token keeps the tune valid; with ``left`` (the last steps of the budget) also whether the
        tune can still be completed in the ``left - 1`` tokens after it (one character each at worst)."""
        if token_id in self.eos_token_ids:
            return not row.pending and row.tracker.can_end()
        after = self._advance(row, token_id)
        if after is None or left is None:
            return after is not None
        if after.pending:
            return left > 1
        completion = after.tracker.completion(limit=left - 1, nodes=CANDIDATE_COMPLETION_NODES)
        return completion is not None and len(completion) <= left - 1

    def _force(self, row: _Row, scores: torch.FloatTensor, completion: str | None) -> None:
        """Keep only the token of the next character of ``completion`` (a legal completion of the tune), else end
        generation: for the last steps of the budget, and for a dead end -- a state where no candidate is legal,
        which the tracker's invariant says cannot happen. Never unmask."""
        row.plan = completion
        token_id = self._char_token(completion[0]) if completion else None
        if token_id is None or self._advance(row, token_id) is None:
            token_id = self.eos_token_ids[0] if self.eos_token_ids else int(scores.argmax())
        scores.fill_(-float("inf"))
        scores[token_id] = 0.0

    def _char_token(self, char: str) -> int | None:
        if self._single_chars is None:
            self._single_chars = {}
            for token_id, data in enumerate(self.token_bytes):
                if len(data) == 1 and token_id not in self.eos_token_ids:
                    self._single_chars.setdefault(data.decode("latin-1"), token_id)
        return self._single_chars.get(char)

    def _advance(self, row: _Row, token_id: int) -> _Row | None:
        # ids past the tokenizer's vocabulary (a model with a padded embedding matrix) add no text
        data = self.token_bytes[token_id] if token_id < len(self.token_bytes) else b""
        tracker = row.tracker
        if not data:
            return None if tracker.in_tune else row
        if tracker.ctx == "prose" and b":" not in data and not row.pending:
            return row  # prose stays prose unless a field colon could start a tune
        return row.advanced(data)

    def _mask_row(self, row: _Row, scores: torch.FloatTensor, left: int | None) -> bool:
        """Mask ``scores`` in place; False (and nothing masked) when no token is legal."""
        in_tune = row.tracker.in_tune or row.tracker.ctx != "prose"
        probabilities = torch.softmax(scores.float() / self.temperature, dim=-1)
        first = min(FIRST_CANDIDATES, scores.shape[-1])
        top = torch.topk(scores, first)
        order, shares = top.indices.tolist(), probabilities[top.indices].tolist()
        values = top.values.tolist()
        legal: list[int] = []
        illegal: list[int] = []
        seen: set[int] = set()
        legal_mass = checked_mass = 0.0
        position = 0
        while True:
            if position == len(order):
                # Legal tokens among the first candidates are enough (the rest share a negligible probability);
                # with none, every token is tried in score order.
                if legal or len(order) >= scores.shape[-1]:
                    break
                self.stats["widened"] += 1
                full = torch.argsort(scores, descending=True)
                order = full.tolist()
                shares = probabilities[full].tolist()
                values = scores[full].tolist()
                continue
            token_id, share, value = order[position], shares[position], values[position]
            position += 1
            if token_id in seen:
                continue
            seen.add(token_id)
            if value == -float("inf"):
                continue  # masked by an earlier processor: not a candidate
            self.stats["checked"] += 1
            checked_mass += share
            if self._legal(row, token_id, left):
                legal.append(token_id)
                legal_mass += share
            else:
                illegal.append(token_id)
            if legal and self._covers_sampling(legal, legal_mass, checked_mass):
                break
        if not legal:
            return False
        self.stats["masked_rows"] += 1
        if in_tune:
            kept = scores[legal].clone()
            scores.fill_(-float("inf"))
            scores[legal] = kept
        else:
            scores[illegal] = -float("inf")
        return True

    def _covers_sampling(self, legal: list[int], legal_mass: float, checked_mass: float) -> bool:
        """True once the legal tokens found hold everything the sampling after this processor could pick."""
        if not self.do_sample:
            return True
        if self.top_k is not None and len(legal) >= self.top_k:
            return True
        unchecked = max(0.0, 1.0 - checked_mass)
        top_p = self.top_p if self.top_p is not None else 1.0 - TAIL_MASS
        # the legal nucleus is inside the found tokens when they hold top_p of every legal token's mass
        return legal_mass * (1.0 - top_p) >= top_p * unchecked


def _feed_leniently(tracker: AbcTracker, text: str) -> None:
    """Follow text that was not generated under the constraint (the prompt): a character the tracker refuses
    drops it back to prose at the next line, so the tracker never stalls on a malformed prompt."""
    for char in text:
        if not tracker.feed(char):
            tracker.__init__(tracker.strict)
            tracker.col = 0 if char == "\n" else 1


def build_abc_logits_processor(tokenizer, generation_config=None, **options) -> AbcLogitsProcessor:
    """The processor for ``tokenizer``, matched to the sampling of ``generation_config`` (a model's
    ``generation_config`` or a ``GenerationConfig``); ``options`` override ``top_k``, ``top_p``, ``temperature``,
    ``do_sample`` and ``eos_token_ids``.

    ``LogitsProcessorList([build_abc_logits_processor(tokenizer, model.generation_config)])`` is all
    ``model.generate(logits_processor=...)`` needs.
    """
    sampling = {"top_k": 40, "top_p": 0.9, "temperature": 1.0, "do_sample": True, "max_new_tokens": None}
    eos = [tokenizer.eos_token_id]
    if generation_config is not None:
        for name in sampling:
            value = getattr(generation_config, name, None)
            if value is not None:
                sampling[name] = value
        config_eos = getattr(generation_config, "eos_token_id", None)
        if config_eos is not None:
            eos = list(config_eos) if isinstance(config_eos, (list, tuple)) else [config_eos]
    eos = options.pop("eos_token_ids", eos)
    unknown = set(options) - set(sampling)
    if unknown:
        raise TypeError(
            f"build_abc_logits_processor got unknown options {sorted(unknown)}; known: {sorted(sampling)}"
        )
    sampling.update(options)
    return AbcLogitsProcessor(token_bytes_table(tokenizer), eos, **sampling)
