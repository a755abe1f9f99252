"""A ``transformers`` logits processor that keeps generated ABC tunes valid by construction.

Each row of the batch is followed by an :class:`AbcTracker`, and the processor *samples the next token itself*:

1. It draws a random order of the tokens the sampler would keep -- the temperature, top-k and top-p warping that
   ``generate`` applies after the logits processors, computed here the same way -- as one exponential race
   (``key = p / Exp(1)``), which orders them as successive draws without replacement would.
2. It checks the tokens in that order with the tracker and keeps the first legal one. The first token is the one
   plain sampling would draw; an illegal draw is set aside and the next one is the draw from what is left, so the
   token kept is distributed as **the warped distribution restricted to the legal tokens** (renormalised): the
   probability of a legal token ``t`` is ``p(t) / p(legal)``. Only when no token the warping keeps is legal does it
   widen to the temperature-scaled distribution over the whole vocabulary, restricted to legal tokens likewise.
   Greedy search checks tokens in score order: the best legal token.
3. It returns scores where only that token is finite, so the sampler after it (whatever its settings) picks it.

The race is drawn from a numpy generator seeded from torch's at each ``generate()`` call, so
``torch.manual_seed`` makes a run reproducible as it does plain sampling. After a short final bar, where only
blanks or the end may follow, the processor ends the tune with a blank line (or generation, where the model draws
its end token) instead of sampling blanks.

So a step costs one tracker check per row when the model's own draw is legal -- nearly always for a trained model
-- instead of one per candidate. Prose before ``X:`` and after the blank line that ends a tune is sampled the same
way; there every token is legal except one that would start a malformed tune, so prose is generated as without
the processor (identically for greedy search; from the same distribution when sampling). The tracker state after
the chosen token is kept, keyed by a hash of the sequence, so the next step starts from it without re-reading.

The processor must be the last logits processor (``generate`` puts the warpers after it), and its sampling
settings decide the distribution: build it from the generation config ``generate`` uses.

Usage::

    processor = build_abc_logits_processor(tokenizer, model.generation_config, max_new_tokens=512)
    model.generate(**inputs, max_new_tokens=512, logits_processor=LogitsProcessorList([processor]))

Without ``max_new_tokens`` (here or in the generation config) the processor cannot see the budget coming, and a
tune cut by it is left unfinished.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
from transformers import LogitsProcessor

from ..chat_format import ASSISTANT
from .completion import BAR_OF_REST_CHARS
from .request import read_abc_header, read_request
from .token_text import split_utf8, token_bytes_table
from .tracker import ELEMENT_CHARS, MAX_COMPLETION_CHARS, AbcTracker
from .tune_request import TuneRequest, merge

# In the last steps before max_new_tokens, a token is kept only if the tune can be completed in the steps left
# after it (AbcTracker.completion), so a tune cut by the budget is still valid.
WIND_DOWN_STEPS = 12
CANDIDATE_COMPLETION_NODES = 400  # search effort for each candidate's completion (the model's own tokens)
FIRST_DRAWS = 8  # candidates listed per row at first; the rest of the order only when these are all illegal
DEFAULT_MIN_BARS = 8  # whole bars of a tune whose request names no length
_UNKNOWN = object()  # a completion not computed yet
_ENDED = object()  # the state of a row after its end-of-sequence token: generate pads it, nothing to check
_INT64 = 1 << 64


class _Row:
    """The tracker of one sequence, the bytes of a UTF-8 character that is not complete yet, the completion being
    written when the processor forces one (kept, so each step follows the same legal path to the end), and three
    caches of this state: its own completion (computed once, in the last steps of the budget), which first
    characters it accepts -- most illegal tokens fail at their first character, and where few tokens are legal
    (an untrained model's step after a final bar line) hundreds are tried, so each is refused by a lookup -- and,
    in a note being read, the tracker after the note ends, where most candidates start."""

    __slots__ = ("tracker", "pending", "plan", "tune_answer", "_completion", "_first", "_ended")

    def __init__(
        self, tracker: AbcTracker, pending: bytes = b"", plan: str | None = None, tune_answer: bool | None = None
    ):
        self.tracker = tracker
        self.pending = pending
        self.plan = plan
        # whether the answer is a tune (it started with one, and ends with it); None until its first line tells
        self.tune_answer = tune_answer
        self._completion = _UNKNOWN
        self._first: dict[str, bool] = {}
        self._ended = _UNKNOWN

    def _start_for(self, char: str) -> AbcTracker | None:
        """The tracker to feed text starting with ``char`` to (not a copy): in a note being read, any character
        that cannot extend it ends it first, and that is done once per state (AbcTracker.ended)."""
        tracker = self.tracker
        if not tracker.in_element or char in ELEMENT_CHARS:
            return tracker
        if self._ended is _UNKNOWN:
            self._ended = tracker.ended()
        return self._ended

    def accepts_first(self, char: str) -> bool:
        accepted = self._first.get(char)
        if accepted is None:
            start = self._start_for(char)
            accepted = self._first[char] = start is not None and start.copy().feed(char)
        return accepted

    def advanced(self, text: str, pending: bytes) -> _Row | None:
        """The row after ``text`` (complete characters, the pending bytes included) and a new partial tail."""
        start = self._start_for(text[0]) if text else self.tracker
        if start is None:
            return None
        tracker = start.copy()
        if not tracker.feed(text):
            return None
        if pending and not (tracker.accepts_any_char() and tracker.copy().feed("\ufffd")):
            return None  # the partial character must be completable here (not past a length limit, say)
        plan = self.plan[len(text) :] if self.plan and not pending and self.plan.startswith(text) else None
        tune_answer = self.tune_answer
        if tune_answer is None and (tracker.in_tune or tracker.in_prose_line):
            tune_answer = tracker.in_tune
        return _Row(tracker, pending, plan, tune_answer)

    def completion(self) -> str | None:
        if self._completion is _UNKNOWN:
            self._completion = None if self.pending else self.tracker.completion()
        return self._completion


class AbcLogitsProcessor(LogitsProcessor):
    """Chooses each row's next token so that ABC tunes stay valid; see the module docstring.

    Args:
        token_bytes: ``token_bytes[i]`` is the text token ``i`` adds, as bytes (:func:`token_bytes_table`).
        eos_token_ids: tokens that end generation; legal only where the tune may end.
        top_k, top_p, temperature, do_sample: the sampling the processor performs (that of ``generate``).
        max_new_tokens: the generation budget; in its last steps only tokens that leave the tune complete are
            kept (when any is), so a tune cut by the budget is still valid. None: no budget is known.
        required_header: header fields every tune must have, in ABC syntax (``"M:6/8 K:D L:1/8"``); they win
            over the prompt's. A bad value raises :class:`~.request.RequestError`.
        read_prompt: also read the tune each row's prompt asks for (its last user turn: ChatMusician's field
            lines, plain words such as "a jig in D, 16 bars"; :func:`~.request.read_request`).
        min_bars: whole bars a tune must have where the request names no length or form.
        special_texts: the text of special tokens (``</s>``) where prompts are read: ChatMusician's turns end
            with one.
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
        required_header: str | None = None,
        read_prompt: bool = True,
        min_bars: int = DEFAULT_MIN_BARS,
        special_texts: dict[int, str] | None = None,
    ):
        self.required = read_abc_header(required_header) if required_header else TuneRequest()
        self.read_prompt = read_prompt
        self.min_bars = min_bars
        self._special_bytes = {i: text.encode() for i, text in (special_texts or {}).items()}
        self.token_bytes = token_bytes
        # per token: its complete characters and trailing partial bytes, decoded once (the common case of a row
        # with no partial character pending)
        self._token_text = [split_utf8(data) for data in token_bytes]
        self.eos_token_ids = [i for i in eos_token_ids if i is not None]
        self._eos = frozenset(self.eos_token_ids)
        self.top_k = top_k if top_k and top_k > 0 else None
        self.top_p = top_p if top_p is not None and 0 < top_p < 1 else None
        self.temperature = temperature if temperature and temperature > 0 else 1.0
        self.do_sample = do_sample
        self.max_new_tokens = max_new_tokens
        self._prompt_length = 0
        self._single_chars: dict[str, int] | None = None  # character -> a token of that one character
        self._weights: list[int] = []
        self._weights_array = np.empty(0, dtype=np.int64)
        self._random = np.random.default_rng(0)  # reseeded from torch's generator at each generate() call
        self._last_step: tuple | None = None  # (length, hashes, last tokens, chosen tokens, hashes after them)
        self._rows: dict[int, _Row] = {}  # sequence hash -> row state after that sequence
        self.stats = {
            "steps": 0, "checked": 0, "rejected": 0, "widened": 0, "dead_ends": 0, "completed": 0, "ended": 0,
            "answers_ended": 0,
        }  # fmt: skip

    # ----- following each sequence -------------------------------------------------------------------------
    def _hashes(self, ids: np.ndarray) -> tuple[list[int], list[int]]:
        """Hashes of each row's sequence without and with its last token: a random linear hash in wrapping int64
        arithmetic (collisions are negligible), extended in Python by :meth:`_extend` for the chosen token."""
        length = ids.shape[1]
        weighted = (ids + 1) * self._weights_array[:length]  # (+1: token 0 counts; int64 wraps)
        prefix = weighted[:, :-1].sum(axis=1)
        return prefix.tolist(), (prefix + weighted[:, -1]).tolist()

    def _next_hashes(self, ids: np.ndarray) -> tuple[list[int], list[int]] | None:
        """The hashes of the step after the last one, where each row got the token chosen for it (nearly every
        step): known without hashing the sequences again; None otherwise."""
        if self._last_step is None:
            return None
        length, full_hashes, last_tokens, chosen, extended = self._last_step
        if ids.shape != (len(chosen), length + 1) or ids[:, -1].tolist() != chosen:
            return None
        return (full_hashes, extended) if ids[:, -2].tolist() == last_tokens else None

    def _extend(self, full_hash: int, length: int, token_id: int) -> int:
        """The hash of a sequence of ``length`` tokens with ``token_id`` appended (as numpy computes it)."""
        value = (full_hash + (token_id + 1) * self._weights[length]) % _INT64
        return value - _INT64 if value >= _INT64 // 2 else value

    def _row_state(self, ids: np.ndarray, index: int, prefix_hash: int, full_hash: int) -> _Row:
        row = self._rows.get(full_hash)
        if row is not None:
            return row  # the token this processor chose last step
        previous = self._rows.get(prefix_hash)
        if previous is _ENDED:
            return _ENDED  # the padding generate adds after a row's end
        ids = ids[index].tolist()
        if previous is not None:
            # a token that adds no text (padding after the end), or one another processor forced in
            last = ids[-1]
            data = self.token_bytes[last] if last < len(self.token_bytes) else b""
            row = previous.advanced(*split_utf8(previous.pending + data))
            if row is not None:
                return row
        request = self.request_for(ids)
        text, pending = split_utf8(b"".join(self.token_bytes[i] for i in ids if i < len(self.token_bytes)))
        # the answer starts on a fresh line after "Assistant: ", and so does an answer prefix written there; a
        # prefix that writes another header than the prompt asks for (the user's own) wins over the request
        before, marker, answer = text.rpartition(ASSISTANT)
        for wanted in (request, TuneRequest(min_bars=request.min_bars)):
            tracker = AbcTracker(request=wanted)
            _feed_leniently(tracker, before + marker)
            tracker.mark_line_start()
            if tracker.copy().feed(answer):
                break
        _feed_leniently(tracker, answer)
        return _Row(tracker, pending, tune_answer=_starts_with_a_tune(answer))

    def request_for(self, ids: list[int]) -> TuneRequest:
        """What a tune must be after the prompt ``ids``: ``required_header``, then what the prompt asks for, with
        ``min_bars`` where neither names a length."""
        request = self.required
        if self.read_prompt:
            data = b"".join(self._special_bytes.get(i) or self.token_bytes[i] for i in ids if i < len(self.token_bytes))
            request = merge(request, read_request(data.decode("utf-8", errors="replace")))
        return replace(request, min_bars=request.min_bars or self.min_bars)

    # ----- the step ----------------------------------------------------------------------------------------
    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        # (each array call costs tens of microseconds inside generate, where the model has just evicted the caches:
        # the sequence hashes are extended from the last step's rather than recomputed)
        self.stats["steps"] += 1
        ids = input_ids.detach().to("cpu", torch.long).numpy()
        if len(self._weights) <= ids.shape[1]:  # one weight per position, and one for the token chosen now
            self._weights_array = np.random.default_rng(0x5EED).integers(-(2**62), 2**62, ids.shape[1] * 2 + 256)
            self._weights = self._weights_array.tolist()
        prefix_hashes, full_hashes = self._next_hashes(ids) or self._hashes(ids)
        if not any(h in self._rows for h in full_hashes) and not any(h in self._rows for h in prefix_hashes):
            self._prompt_length = input_ids.shape[1]  # a new generate() call: its draws follow torch's seed
            self._random = np.random.default_rng(int(torch.randint(0, 2**62, ())))
        length = input_ids.shape[1]
        left = None if self.max_new_tokens is None else self.max_new_tokens - (length - self._prompt_length)
        draws = _Draws(self, scores)
        rows: dict[int, _Row] = {}
        chosen, extended = [], []
        for index in range(input_ids.shape[0]):
            row = self._row_state(ids, index, prefix_hashes[index], full_hashes[index])
            rows[full_hashes[index]] = row
            if row is _ENDED:  # generate replaces whatever is chosen by padding: no work
                token_id, after = self._end_token(), _ENDED
            else:
                token_id, after = self._choose(row, draws, index, left)
            chosen.append(token_id)
            extended.append(self._extend(full_hashes[index], length, token_id))
            rows[extended[-1]] = _ENDED if after is None else after
        self._rows = rows
        self._last_step = (length, full_hashes, ids[:, -1].tolist(), chosen, extended)
        out = np.full(scores.shape, -np.inf, dtype=np.float32)
        out[np.arange(len(chosen)), chosen] = 0.0
        return torch.from_numpy(out).to(scores.device, scores.dtype)

    def _choose(self, row: _Row, draws: _Draws, index: int, left: int | None) -> tuple[int, _Row | None]:
        """The token for one row, and the row state after it (None after an end-of-sequence token)."""
        if row.tune_answer and not row.tracker.in_tune and not row.pending:
            self.stats["answers_ended"] += 1
            return self._end_token(), None  # an answer that is a tune ends with it
        if row.tracker.final_bar and not row.pending:
            # after a short final bar only blanks or the end may follow: end the tune with a blank line (or the
            # generation, where that is the model's draw) rather than sample blanks, the only other legal text
            if next(draws.first(index), None) in self._eos:
                return self._end_token(), None
            self.stats["ended"] += 1
            return self._force(row, row.tracker.tune_end())
        completion = row.plan
        # (a tune that must still have n whole bars needs n bars of rest at worst: "z8|" each)
        reach = WIND_DOWN_STEPS + MAX_COMPLETION_CHARS + BAR_OF_REST_CHARS * row.tracker.bars_missing
        if completion is None and left is not None and left <= reach:
            completion = row.completion()
        if completion and left <= len(completion) + 1:
            # just enough steps left to complete the tune: write its completion, one character a step
            self.stats["completed"] += 1
            return self._force(row, completion)
        if completion is not None and left <= WIND_DOWN_STEPS + len(completion):
            # the last steps: the model's tokens, as long as the tune can still be completed after them
            picked = self._pick(row, draws, index, left)
            return picked if picked is not None else self._force(row, completion)
        picked = self._pick(row, draws, index, None)
        if picked is not None:
            return picked
        self.stats["dead_ends"] += 1
        return self._force(row, row.completion())

    def _pick(self, row: _Row, draws: _Draws, index: int, left: int | None) -> tuple[int, _Row | None] | None:
        """The first legal token in the row's draw order (see the module docstring); None when there is none."""
        for token_id in draws.first(index):
            picked = self._try(row, token_id, left)
            if picked is not None:
                return picked
        if draws.sampled:
            self.stats["widened"] += 1
        # the rest of the order; a token whose first character the state refuses is illegal, which a lookup
        # tells once the character was tried (skipping it changes nothing but the time spent)
        for token_id in draws.rest(index):
            text = self._token_text[token_id][0]
            if text and not row.pending and not row.accepts_first(text[0]):
                continue
            picked = self._try(row, token_id, left)
            if picked is not None:
                return picked
        return None

    def _try(self, row: _Row, token_id: int, left: int | None) -> tuple[int, _Row | None] | None:
        self.stats["checked"] += 1
        legal, after = self._legal(row, token_id, left)
        if legal:
            return token_id, after
        self.stats["rejected"] += 1
        return None

    def _legal(self, row: _Row, token_id: int, left: int | None) -> tuple[bool, _Row | None]:
        """Whether the token keeps the tune valid, and the row after it; with ``left`` (the last steps of the
        budget) also whether the tune can still be completed in the ``left - 1`` tokens after it (one character
        each at worst). Inside a tuplet or a broken rhythm, the tracker accepts some states whose bar can no
        longer be filled exactly (``(3g/e/16g///`` leaves 1/96 of a unit): there every token is also checked for
        a completion, so the row never walks into one."""
        if token_id in self._eos:
            return not row.pending and row.tracker.can_end(), None
        after = self._advance(row, token_id)
        if after is None:
            return False, None
        if left is None and not (row.tracker.rhythm_open or after.tracker.rhythm_open):
            return True, after
        if after.pending:
            return left is None or left > 1, after
        limit = MAX_COMPLETION_CHARS if left is None else left - 1
        if after._completion is _UNKNOWN:
            after._completion = after.tracker.completion(limit=limit, nodes=CANDIDATE_COMPLETION_NODES)
        completion = after._completion
        return completion is not None and len(completion) <= limit, after

    def _force(self, row: _Row, completion: str | None) -> tuple[int, _Row | None]:
        """The token of the next character of ``completion`` (a legal completion of the tune), else the end of
        generation: for the last steps of the budget, and for a dead end -- a state where no token is legal,
        which the tracker's invariant says cannot happen. Never an unchecked token."""
        row.plan = completion
        token_id = self._char_token(completion[0]) if completion else None
        after = self._advance(row, token_id) if token_id is not None else None
        if after is None:
            return self._end_token(), None
        return token_id, after

    def _end_token(self) -> int:
        return self.eos_token_ids[0] if self.eos_token_ids else 0

    def _char_token(self, char: str) -> int | None:
        if self._single_chars is None:
            self._single_chars = {}
            for token_id, data in enumerate(self.token_bytes):
                if len(data) == 1 and token_id not in self._eos:
                    self._single_chars.setdefault(data.decode("latin-1"), token_id)
        return self._single_chars.get(char)

    def _advance(self, row: _Row, token_id: int) -> _Row | None:
        # ids past the tokenizer's vocabulary (a model with a padded embedding matrix) add no text
        if token_id >= len(self.token_bytes) or not self.token_bytes[token_id]:
            return None if row.tracker.in_tune else row
        data = self.token_bytes[token_id]
        tracker = row.tracker
        if row.pending:
            return row.advanced(*split_utf8(row.pending + data))
        if tracker.in_prose_line and b":" not in data and b"\n" not in data:
            return row  # inside a prose line, text without a field colon or a line end cannot start a tune
        text, pending = self._token_text[token_id]
        if text and not row.accepts_first(text[0]):
            return None
        return row.advanced(text, pending)


class _Draws:
    """The order in which each row's tokens are checked, drawn for the whole batch at once.

    Sampling: the tokens the warping keeps (temperature, then top-k, then top-p on the renormalised top-k -- the
    order ``generate`` applies them), ordered by an exponential race ``p / Exp(1)``, which is distributed as
    successive draws without replacement; then, only if none of those is legal, the whole vocabulary ordered the
    same way under the temperature-scaled distribution. Greedy: every token by decreasing score.
    """

    def __init__(self, processor: AbcLogitsProcessor, scores: torch.FloatTensor):
        self.processor = processor
        self.scores = scores
        self.sampled = processor.do_sample
        vocab = scores.shape[-1]
        kept = min(processor.top_k or vocab, vocab) if self.sampled else min(FIRST_DRAWS, vocab)
        values, indices = torch.topk(scores.float(), kept)  # sorted, best first
        values, self.indices = values.cpu().numpy(), indices.cpu().numpy()
        if not self.sampled:
            self.order = np.broadcast_to(np.arange(kept), values.shape)
            self.counts = (values > -np.inf).sum(axis=1).tolist()
            return
        # (a handful of array operations: each costs more than its arithmetic at this size)
        probs = np.exp((values - values[:, :1]) / processor.temperature)  # unnormalised; masked tokens give 0
        if processor.top_p is not None:
            cumulative = np.cumsum(probs, axis=1)
            # drop the tokens whose better tokens already hold top_p of the mass (the best is always kept)
            probs[cumulative - probs >= processor.top_p * cumulative[:, -1:]] = 0.0
        keys = probs / processor._random.standard_exponential(probs.shape)
        self.order = np.argsort(-keys, axis=1, kind="stable")
        self.counts = (keys > 0).sum(axis=1).tolist()  # the kept tokens come first in the order

    def first(self, index: int):
        """The warped distribution's tokens of row ``index`` in race order (greedy: the best few by score)."""
        for position in self.order[index, : self.counts[index]].tolist():
            yield int(self.indices[index, position])

    def rest(self, index: int):
        """The other tokens of the vocabulary, ordered by a race under the temperature-scaled distribution
        (greedy: by score)."""
        scores = self.scores[index].float().cpu().numpy()
        vocab = scores.shape[0]
        done = np.zeros(vocab, dtype=bool)
        done[self.indices[index, self.order[index, : self.counts[index]]]] = True
        live = ~done & (scores > -np.inf)
        candidates = np.flatnonzero(live)
        if not len(candidates):
            return
        if self.sampled:
            scaled = scores[candidates] / self.processor.temperature
            keys = np.exp(scaled - scaled.max()) / self.processor._random.standard_exponential(len(candidates))
        else:
            keys = scores[candidates]
        # best first, sorted a block at a time: the first legal token is usually among the first few
        block = FIRST_DRAWS
        while len(candidates):
            if len(candidates) > block:
                top = np.argpartition(-keys, block)[:block]
                top = top[np.argsort(-keys[top], kind="stable")]
            else:
                top = np.argsort(-keys, kind="stable")
            yield from candidates[top].tolist()
            kept = np.ones(len(candidates), dtype=bool)
            kept[top] = False
            candidates, keys = candidates[kept], keys[kept]
            block *= 8


def _starts_with_a_tune(answer: str) -> bool | None:
    """Whether an answer is a tune (its first line starts one) or prose; None while its first line does not tell."""
    probe = AbcTracker(strict=False)
    probe.mark_line_start()
    for char in answer:
        probe.feed(char)
        if probe.in_tune or probe.in_prose_line:
            return probe.in_tune
    return None


def _feed_leniently(tracker: AbcTracker, text: str) -> None:
    """Follow text that was not generated under the constraint (the prompt): a character the tracker refuses
    drops it back to prose at the next line, so the tracker never stalls on a malformed prompt."""
    for char in text:
        if not tracker.feed(char):
            tracker.reset_to_prose(line_start=char == "\n")


def build_abc_logits_processor(
    tokenizer,
    generation_config=None,
    required_header: str | None = None,
    read_prompt: bool = True,
    min_bars: int = DEFAULT_MIN_BARS,
    **options,
) -> AbcLogitsProcessor:
    """The processor for ``tokenizer``, matched to the sampling of ``generation_config`` (a model's
    ``generation_config`` or a ``GenerationConfig``); ``options`` override ``top_k``, ``top_p``, ``temperature``,
    ``do_sample``, ``max_new_tokens`` and ``eos_token_ids``. ``required_header`` (``"M:6/8 K:D L:1/8"``),
    ``read_prompt`` and ``min_bars`` say what the tunes must be (:class:`AbcLogitsProcessor`).

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
    special = dict(zip(tokenizer.all_special_ids, tokenizer.all_special_tokens, strict=True))
    return AbcLogitsProcessor(
        token_bytes_table(tokenizer),
        eos,
        required_header=required_header,
        read_prompt=read_prompt,
        min_bars=min_bars,
        special_texts=special,
        **sampling,
    )
