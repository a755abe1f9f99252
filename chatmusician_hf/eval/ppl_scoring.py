"""Perplexity-mode scoring: the mean token cross-entropy of each candidate sequence, one forward pass per question.

The paper scores the four sequences ``context + " A"`` ... ``context + " D"`` and picks the lowest mean
cross-entropy. When the four tokenize as one shared prefix plus one differing final token, a single pass over the
prefix gives everything: the prefix's token losses are common to all four, and the logits at the prefix's last
position give each letter token's loss, so

    mean CE(candidate) = (sum of prefix token losses + letter token loss) / (number of predicted tokens)

which is exactly what the four separate passes compute (causal attention: no earlier position sees the letter).
Tokenizers may merge the letter with what precedes it (a ``":A"`` or ``" A"`` token that differs from the prefix's
last token); each question's candidates are tokenized and compared, and a question whose candidates do not share
the prefix is scored the naive way, with four full sequences. Both kinds are batched with right padding.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

SHARED_PREFIX = "shared-prefix"
FULL_SEQUENCES = "full-sequences"


@dataclass
class QuestionScores:
    """Mean cross-entropy of each candidate, in the order given, and which computation produced it."""

    scores: list[float]
    path: str

    @property
    def best(self) -> int:
        return min(range(len(self.scores)), key=self.scores.__getitem__)


def shared_prefix(token_lists: list[list[int]]) -> list[int] | None:
    """The common prefix when the candidates differ only in their last, distinct, token; otherwise ``None``."""
    first = token_lists[0]
    if len(first) < 2:
        return None
    for tokens in token_lists[1:]:
        if len(tokens) != len(first) or tokens[:-1] != first[:-1]:
            return None
    if len({tokens[-1] for tokens in token_lists}) != len(token_lists):
        return None
    return first[:-1]


def _pad_id(tokenizer) -> int:
    for token_id in (tokenizer.pad_token_id, tokenizer.eos_token_id, 0):
        if token_id is not None:
            return token_id
    return 0  # unreachable; keeps type checkers content


@torch.no_grad()
def forward_sequences(model, sequences: list[list[int]], batch_size: int, pad_id: int, desc: str):
    """For each sequence: its per-token losses (positions 1..n-1) and the log-probabilities after its last token.

    Sequences run longest first so a batch holds similar lengths and an out-of-memory error shows up at once.
    """
    device = next(model.parameters()).device
    order = sorted(range(len(sequences)), key=lambda i: -len(sequences[i]))
    results: list = [None] * len(sequences)
    for start in tqdm(
        range(0, len(order), batch_size), desc=desc, disable=len(order) <= batch_size, leave=False
    ):
        index = order[start : start + batch_size]
        width = len(sequences[index[0]])
        input_ids = torch.full((len(index), width), pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(index), width), dtype=torch.long)
        for row, i in enumerate(index):
            input_ids[row, : len(sequences[i])] = torch.tensor(sequences[i])
            attention_mask[row, : len(sequences[i])] = 1
        logits = (
            model(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device))
            .logits.float()
            .cpu()
        )
        for row, i in enumerate(index):
            n = len(sequences[i])
            token_losses = F.cross_entropy(logits[row, : n - 1], input_ids[row, 1:n], reduction="none")
            results[i] = (token_losses, torch.log_softmax(logits[row, n - 1], dim=-1))
    return results


def tokenize_candidates(tokenizer, candidates: list[str], max_length: int | None = None) -> list[list[int]]:
    """Token ids of each candidate as the tokenizer encodes it by default (LLaMA adds BOS, as the paper's code did).

    Longer sequences keep their last ``max_length`` tokens: the question and the letter matter most.
    """
    token_lists = [tokenizer(text)["input_ids"] for text in candidates]
    if max_length:
        token_lists = [tokens[-max_length:] for tokens in token_lists]
    return token_lists


def score_questions(
    model,
    tokenizer,
    candidate_texts: list[list[str]],
    batch_size: int = 8,
    use_shared_prefix: bool = True,
    max_length: int | None = None,
) -> list[QuestionScores]:
    """Mean token cross-entropy of every candidate of every question.

    ``use_shared_prefix=False`` forces the naive computation (every candidate its own sequence): the baseline the
    one-pass path is tested and benchmarked against.
    """
    tokenized = [tokenize_candidates(tokenizer, candidates, max_length) for candidates in candidate_texts]
    prefixes: dict[int, list[int]] = {}
    if use_shared_prefix:
        for q, token_lists in enumerate(tokenized):
            prefix = shared_prefix(token_lists)
            if prefix is not None:
                prefixes[q] = prefix
    naive = [q for q in range(len(tokenized)) if q not in prefixes]
    pad_id = _pad_id(tokenizer)
    model_was_training = model.training
    model.eval()
    try:
        prefix_out = forward_sequences(
            model, list(prefixes.values()), batch_size, pad_id, "one pass per question"
        )
        full_out = forward_sequences(
            model,
            [tokens for q in naive for tokens in tokenized[q]],
            batch_size,
            pad_id,
            "four sequences per question",
        )
    finally:
        model.train(model_was_training)

    scores: list[QuestionScores | None] = [None] * len(tokenized)
    for (q, _), (token_losses, last_logprobs) in zip(prefixes.items(), prefix_out, strict=True):
        prefix_sum = token_losses.sum()
        n_predicted = len(tokenized[q][0]) - 1
        letter_losses = [-last_logprobs[tokens[-1]] for tokens in tokenized[q]]
        scores[q] = QuestionScores(
            [float((prefix_sum + loss) / n_predicted) for loss in letter_losses], SHARED_PREFIX
        )
    position = 0
    for q in naive:
        n_candidates = len(tokenized[q])
        chunk = full_out[position : position + n_candidates]
        position += n_candidates
        scores[q] = QuestionScores([float(token_losses.mean()) for token_losses, _ in chunk], FULL_SEQUENCES)
    return scores  # type: ignore[return-value]
