"""SFT rows (``instruction``, ``input``, ``output``) as ChatMusician conversations, tokenised with the loss mask.

The training string is ``Human: {instruction}{input} </s> Assistant: {output} </s>``, exactly what the tokenizer's
chat template renders for ``[user: instruction+input, assistant: output]`` (:func:`sft_messages`). MusicPile-sft
rows carry the separators in the data: ``input`` usually ends with `` </s> `` and ``output`` starts with
``Assistant: `` and ends with `` </s> ``. :func:`normalize_sft_row` removes the separators a row carries, whichever
they are, so the rendered string has each separator exactly once; text that is not a separator is left untouched.

Why ``build_sft_dataset`` returns token ids and not ``messages``: TRL 1.16's SFTTrainer truncates a conversation
as a whole (or, when packing with ``bfd``, drops the tokens past ``max_length``), while ChatMusician truncated the
prompt to 1536 tokens and gave the answer the rest of 2048. So rows are tokenised here:

- the prompt ``Human: ... </s> Assistant: `` and the answer ``{output} </s>`` are tokenised separately, so the
  prompt's tokens are exactly those the model sees at inference (``chat_format.inference_prompt``);
- a prompt longer than ``max_prompt_length`` loses the end of its text but keeps `` </s> Assistant: ``;
- an answer longer than the room left loses its end, and then has no EOS (the model must not learn to stop there);
- ``assistant_masks`` is 1 on the answer tokens and its final EOS, 0 on the prompt. ChatMusician's own code also
  put ``Assistant: `` in the loss; here it is prompt, as in the chat template's ``{% generation %}`` block.

SFTTrainer (TRL 1.16) reads such rows as already processed (they have ``input_ids``) and builds ``labels`` from
``assistant_masks`` itself. Each row also keeps its ``messages``: TRL accepts ``assistant_only_loss: true`` only for
conversational rows, and with them the flag and the mask agree (the trainer drops the column before batching). Use
``packing: true`` with ``packing_strategy: bfd``: rows never exceed ``max_length``, so BFD drops nothing.
"""

from __future__ import annotations

import re

from ..chat_format import ASSISTANT, HUMAN, TURN_END, render_conversation
from .config import DataArguments, source_digest
from .encoding import encode_texts, tokenizer_fingerprint
from .sources import DatasetSourceError, load_preprocessed, load_rows

# Separators as MusicPile-sft writes them inside its fields (whitespace around them varies from row to row).
_LEADING_HUMAN = re.compile(r"^\s*Human:[ \t]?")
_TRAILING_TURN_END = re.compile(r"\s*</s>\s*(?:Assistant:\s*)?$")
_LEADING_ASSISTANT = re.compile(r"^\s*Assistant:[ \t]?")
_TRAILING_EOS = re.compile(r"\s*</s>\s*$")

SFT_OUTPUT_COLUMNS = ("input_ids", "assistant_masks", "messages")

# Between the user's text and the answer: " </s> Assistant: ".
PROMPT_SUFFIX = f"{TURN_END} {ASSISTANT}"


def normalize_sft_row(instruction: str | None, input: str | None, output: str | None) -> tuple[str, str]:
    """(user text, answer) without the separators the row carries in its fields."""
    user = _LEADING_HUMAN.sub("", instruction or "", count=1) + (input or "")
    user = _TRAILING_TURN_END.sub("", user, count=1)
    answer = _LEADING_ASSISTANT.sub("", output or "", count=1)
    answer = _TRAILING_EOS.sub("", answer, count=1)
    return user, answer


def sft_messages(row: dict) -> list[dict[str, str]]:
    """The row as a conversation for ``tokenizer.apply_chat_template``."""
    user, answer = normalize_sft_row(row.get("instruction"), row.get("input"), row.get("output"))
    return [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]


def render_sft_text(row: dict) -> str:
    """The ChatMusician training string of a row: ``Human: {instruction}{input} </s> Assistant: {output} </s>``."""
    return render_conversation(sft_messages(row))


def sft_prompt_and_answer(row: dict) -> tuple[str, str]:
    """The part the model reads (``Human: ... </s> Assistant: ``) and the part it learns (``{output} </s>``)."""
    user, answer = normalize_sft_row(row.get("instruction"), row.get("input"), row.get("output"))
    return f"{HUMAN}{user}{PROMPT_SUFFIX}", f"{answer}{TURN_END}"


def tokenize_sft_batch(batch: dict, tokenizer, max_length: int, max_prompt_length: int) -> dict:
    """A ``datasets.map`` batch function: SFT rows -> ``input_ids`` and ``assistant_masks`` (``src`` kept)."""
    n = len(batch["instruction"])
    rows = [{k: batch[k][i] for k in ("instruction", "input", "output")} for i in range(n)]
    pairs = [sft_prompt_and_answer(row) for row in rows]
    prompt_ids = encode_texts(tokenizer, [p for p, _ in pairs])
    answer_ids = encode_texts(tokenizer, [a for _, a in pairs])
    suffix_ids = encode_texts(tokenizer, [PROMPT_SUFFIX])[0]
    too_long = [i for i, ids in enumerate(prompt_ids) if len(ids) > max_prompt_length]
    if too_long:
        heads = encode_texts(tokenizer, [pairs[i][0][: -len(PROMPT_SUFFIX)] for i in too_long])
        for i, head in zip(too_long, heads, strict=True):
            prompt_ids[i] = head[: max_prompt_length - len(suffix_ids)] + suffix_ids
    input_ids, masks = [], []
    for prompt, answer in zip(prompt_ids, answer_ids, strict=True):
        answer = answer[: max_length - len(prompt)]
        input_ids.append(prompt + answer)
        masks.append([0] * len(prompt) + [1] * len(answer))
    messages = [sft_messages(row) for row in rows]
    return {"input_ids": input_ids, "assistant_masks": masks, "messages": messages, "src": batch["src"]}


def tokenize_sft_rows(rows, tokenizer, max_length: int, max_prompt_length: int, num_proc: int | None = None):
    """Tokenise SFT rows (``Dataset`` or ``IterableDataset``); keeps ``src`` for reports."""
    suffix_length = len(encode_texts(tokenizer, [PROMPT_SUFFIX])[0])
    if not suffix_length < max_prompt_length < max_length:
        raise DatasetSourceError(
            f"Need {suffix_length} < max_prompt_length ({max_prompt_length}) < max_length ({max_length})."
        )
    kwargs = dict(
        batched=True,
        fn_kwargs={"tokenizer": tokenizer, "max_length": max_length, "max_prompt_length": max_prompt_length},
        remove_columns=["instruction", "input", "output"],
    )
    import hashlib
    import sys

    from datasets import Dataset

    from .. import chat_format

    if isinstance(rows, Dataset):
        key = "|".join(
            [
                rows._fingerprint,
                tokenizer_fingerprint(tokenizer),
                source_digest(sys.modules[__name__], chat_format),
                str(max_length),
                str(max_prompt_length),
            ]
        )
        kwargs.update(
            num_proc=num_proc,
            desc="Tokenizing SFT rows",
            new_fingerprint=hashlib.sha256(key.encode()).hexdigest()[:16],
        )
    return rows.map(tokenize_sft_batch, **kwargs)


def build_sft_dataset(
    data_args: DataArguments,
    tokenizer,
    max_length: int = 2048,
    max_prompt_length: int = 1536,
    split: str = "train",
):
    """SFT rows of ``split`` as ``input_ids`` + ``assistant_masks`` (+ ``messages``), ready for TRL's SFTTrainer
    (see the module docstring)."""
    preprocessed = load_preprocessed(data_args, split, SFT_OUTPUT_COLUMNS, max_length)
    if preprocessed is not None:
        return preprocessed
    rows = load_rows(data_args, split, kind="sft")
    tokenized = tokenize_sft_rows(rows, tokenizer, max_length, max_prompt_length, data_args.num_proc)
    return tokenized.select_columns(list(SFT_OUTPUT_COLUMNS))
