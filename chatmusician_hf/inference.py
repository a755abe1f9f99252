"""Inference shared by ``chat``, ``generate`` and the Space: load a model, fit a conversation, sample an answer.

The model is loaded by :mod:`chatmusician_hf.model_loader` (Hub ID or local folder, optionally with a PEFT adapter on
top; a tokenizer without a pad token pads with EOS), prompts are written in the ChatMusician format
(:mod:`chatmusician_hf.chat_format`) without BOS, and sampling uses ChatMusician's defaults. A conversation is kept
inside the context window by dropping its oldest turns, never by cutting a message.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

from . import model_loader
from .chat_format import CHATMUSICIAN_GENERATION_DEFAULTS, inference_prompt
from .errors import PromptTooLongError
from .model_loader import LoadedModel

CONSTRAIN_CHOICES = ("none", "abc")


@dataclass
class ModelArguments:
    model: str = field(
        default="m-a-p/ChatMusician",
        metadata={"help": "Hub model ID or local folder of the model (and its tokenizer) to chat with."},
    )
    adapter: str | None = field(
        default=None,
        metadata={"help": "Hub ID or folder of a PEFT (LoRA) adapter to apply on top of --model."},
    )
    revision: str | None = field(
        default=None, metadata={"help": "Hub revision (branch, tag or commit) of --model."}
    )
    dtype: str = field(
        default="auto",
        metadata={
            "help": "Weights dtype: auto (bfloat16 on a GPU, float32 on CPU), float32, bfloat16 or float16.",
            "choices": list(model_loader.DTYPES),
        },
    )
    device: str = field(
        default="auto",
        metadata={"help": "Device to run on: auto (cuda when available, else cpu), cpu, cuda, cuda:1..."},
    )
    constrain: str = field(
        default="none",
        metadata={
            "help": "Music-aware decoding: 'abc' masks tokens that would break ABC syntax inside a tune "
            "(chatmusician_hf.constrain); 'none' samples freely as ChatMusician did.",
            "choices": list(CONSTRAIN_CHOICES),
        },
    )


_D = CHATMUSICIAN_GENERATION_DEFAULTS


@dataclass
class GenerationArguments:
    do_sample: bool = field(
        default=_D["do_sample"], metadata={"help": "Sample (true) or decode greedily (false)."}
    )
    temperature: float = field(default=_D["temperature"], metadata={"help": "Sampling temperature."})
    top_k: int = field(
        default=_D["top_k"], metadata={"help": "Sample among the k most likely tokens (0: no limit)."}
    )
    top_p: float = field(
        default=_D["top_p"], metadata={"help": "Nucleus sampling: smallest token set with this mass."}
    )
    repetition_penalty: float = field(
        default=_D["repetition_penalty"], metadata={"help": "Penalty on tokens already present (1.0: none)."}
    )
    min_new_tokens: int = field(
        default=_D["min_new_tokens"], metadata={"help": "Tokens written before EOS may end the answer."}
    )
    max_new_tokens: int = field(
        default=_D["max_new_tokens"],
        metadata={
            "help": "Longest answer in tokens; lowered automatically so prompt + answer fit the context."
        },
    )
    max_prompt_tokens: int = field(
        default=1536,
        metadata={
            "help": "Longest prompt in tokens (ChatMusician's SFT prompt limit). Oldest turns of the conversation are "
            "dropped to stay under it; a single message longer than this is refused."
        },
    )
    seed: int | None = field(
        default=None, metadata={"help": "Random seed for reproducible sampling (unset: random)."}
    )
    answer_prefix: str = field(
        default="",
        metadata={
            "help": "Text every answer starts with; the model writes the rest. E.g. 'X:1\\nL:1/8\\n' asks for a "
            "tune straight away (with --constrain abc the tune body then keeps to valid ABC). A backslash-n "
            "in this option is read as a newline."
        },
    )

    abc_header: str | None = field(
        default=None,
        metadata={
            "help": "With --constrain abc: header fields every tune must have, in ABC syntax, e.g. 'M:6/8 K:D "
            "L:1/8' (T: M: L: Q: R: K: ...). They win over what the prompt asks for; the rest of the request "
            "(key, meter, tune type, length in bars) is read from the prompt."
        },
    )

    def __post_init__(self):
        # Shells make a real newline awkward to type in a flag, so the two characters \n stand for one.
        self.answer_prefix = self.answer_prefix.replace("\\n", "\n")


def load_model(args: ModelArguments) -> LoadedModel:
    """Load ``args.model`` (and ``args.adapter``) for inference; fails with the ID when it cannot be found."""
    if args.constrain not in CONSTRAIN_CHOICES:
        raise ValueError(f"--constrain must be one of {', '.join(CONSTRAIN_CHOICES)}, got {args.constrain!r}")
    loaded = model_loader.load_model(
        args.model, args.adapter, revision=args.revision, dtype=args.dtype, device=args.device
    )
    loaded.constrain = args.constrain
    # Fail at load time, not at the first answer, when the constrained decoder is missing.
    logits_processors(loaded)
    return loaded


def logits_processors(
    loaded: LoadedModel, args: GenerationArguments | None = None, max_new_tokens: int | None = None
):
    """The extra logits processors ``loaded.constrain`` asks for (None when decoding is unconstrained).

    The ABC constraint checks only the candidates the sampler could pick, so it is built for ``args``' sampling;
    it must know the budget ``generate`` will stop at (``max_new_tokens``), or a tune cut by the budget is left
    unfinished.
    """
    if loaded.constrain == "none":
        return None
    from transformers import LogitsProcessorList

    try:
        from .constrain import build_abc_logits_processor
    except ImportError as err:
        raise RuntimeError(
            f"--constrain abc needs chatmusician_hf.constrain (music-aware decoding), which is not importable: {err}"
        ) from err
    args = args or GenerationArguments()
    processor = build_abc_logits_processor(
        loaded.tokenizer,
        top_k=args.top_k,
        top_p=args.top_p,
        temperature=args.temperature,
        do_sample=args.do_sample,
        max_new_tokens=max_new_tokens,
        required_header=args.abc_header,
    )
    return LogitsProcessorList([processor])


@dataclass
class FittedPrompt:
    text: str  # ends with the answer prefix, if any
    input_ids: list[int]
    history: list[tuple[str, str]]
    dropped_turns: int
    answer_prefix: str = ""


def fit_prompt(
    tokenizer, message: str, history: list[tuple[str, str]], max_prompt_tokens: int, answer_prefix: str = ""
) -> FittedPrompt:
    """The ChatMusician prompt for ``message`` after as many of the latest ``history`` turns as fit.

    ChatMusician uses no BOS, so special tokens are not added; the literal ``</s>`` separators in the prompt
    text are the EOS token. ``answer_prefix`` is put after ``Assistant: `` for the model to continue.
    """
    history = list(history)
    dropped = 0
    while True:
        text = inference_prompt(message, history) + answer_prefix
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) <= max_prompt_tokens:
            return FittedPrompt(text, ids, history, dropped, answer_prefix)
        if not history:
            raise PromptTooLongError(
                f"The message is {len(ids)} tokens long with the chat format; the limit is {max_prompt_tokens} "
                "(--max_prompt_tokens). Shorten it or raise the limit."
            )
        history.pop(0)
        dropped += 1


def generation_kwargs(loaded: LoadedModel, args: GenerationArguments, prompt_tokens: int) -> dict:
    """Keyword arguments for ``model.generate`` with ``max_new_tokens`` kept inside the context window."""
    room = loaded.context_length - prompt_tokens
    if room < 1:
        raise PromptTooLongError(
            f"The prompt is {prompt_tokens} tokens; the model's context is {loaded.context_length}, leaving no room "
            "for an answer."
        )
    max_new = max(1, min(args.max_new_tokens, room))
    kwargs = dict(
        max_new_tokens=max_new,
        min_new_tokens=min(args.min_new_tokens, max_new),
        repetition_penalty=args.repetition_penalty,
        do_sample=args.do_sample,
        pad_token_id=loaded.tokenizer.pad_token_id,
        eos_token_id=loaded.tokenizer.eos_token_id,
    )
    if args.do_sample:
        kwargs.update(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p)
    else:
        # Greedy decoding: clear the sampling settings a checkpoint's generation_config may carry.
        kwargs.update(temperature=None, top_k=None, top_p=None)
    processors = logits_processors(loaded, args, max_new)
    if processors is not None:
        kwargs["logits_processor"] = processors
    return kwargs


def _seed(args: GenerationArguments) -> None:
    if args.seed is not None:
        from transformers import set_seed

        set_seed(args.seed)


def stream_answer(
    loaded: LoadedModel, prompt: FittedPrompt, args: GenerationArguments, stop: threading.Event | None = None
) -> Iterator[str]:
    """Yield the answer to ``prompt`` piece by piece as the model writes it.

    ``generate`` runs in a worker thread feeding transformers' ``TextIteratorStreamer``; an error in the worker
    ends the stream and is raised here rather than leaving the caller waiting. Setting ``stop``, or closing the
    iterator (a web client that went away), ends generation at the next token instead of running to the end.
    """
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

    stop = stop or threading.Event()

    class _StopWhenAsked(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            return torch.full((input_ids.shape[0],), stop.is_set(), dtype=torch.bool, device=input_ids.device)

    kwargs = generation_kwargs(loaded, args, len(prompt.input_ids))
    kwargs["stopping_criteria"] = StoppingCriteriaList([_StopWhenAsked()])
    streamer = TextIteratorStreamer(loaded.tokenizer, skip_prompt=True, skip_special_tokens=True)
    input_ids = torch.tensor([prompt.input_ids], device=loaded.device)
    failure: list[BaseException] = []

    def work():
        try:
            with torch.inference_mode():
                loaded.model.generate(
                    input_ids=input_ids,
                    attention_mask=torch.ones_like(input_ids),
                    streamer=streamer,
                    **kwargs,
                )
        except BaseException as err:  # noqa: BLE001 - re-raised in the caller's thread below
            failure.append(err)
            streamer.end()

    _seed(args)
    worker = threading.Thread(target=work, name="chatmusician-generate", daemon=True)
    worker.start()
    try:
        if prompt.answer_prefix:
            yield prompt.answer_prefix
        yield from streamer
    finally:
        stop.set()
        worker.join()
    if failure:
        raise failure[0]


def generate_batch(loaded: LoadedModel, prompts: list[FittedPrompt], args: GenerationArguments) -> list[str]:
    """Answers to several prompts in one ``generate`` call, left-padded so every answer starts at the same column."""
    import torch

    tokenizer = loaded.tokenizer
    longest = max(len(p.input_ids) for p in prompts)
    pad = tokenizer.pad_token_id
    input_ids = torch.tensor([[pad] * (longest - len(p.input_ids)) + p.input_ids for p in prompts])
    attention_mask = torch.tensor(
        [[0] * (longest - len(p.input_ids)) + [1] * len(p.input_ids) for p in prompts]
    )
    kwargs = generation_kwargs(loaded, args, longest)
    _seed(args)
    with torch.inference_mode():
        output = loaded.model.generate(
            input_ids=input_ids.to(loaded.device), attention_mask=attention_mask.to(loaded.device), **kwargs
        )
    return [
        (prompt.answer_prefix + tokenizer.decode(row[longest:], skip_special_tokens=True)).strip()
        for prompt, row in zip(prompts, output.cpu().tolist(), strict=True)
    ]
