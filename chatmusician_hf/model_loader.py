"""The one model loader: weights, tokenizer and adapter, for inference, evaluation, the merge's check and training.

A model reference is a Hub ID or a folder; a folder holding a PEFT adapter (``adapter_config.json``) stands for its
base model with that adapter on top. Whoever loads, these answers are the same, so an adapter trained on a grown
vocabulary (LLaMA-2 gains ``<pad>``) loads in chat, generate, the Space, eval and merge as it trained:

- tokenizer: the adapter's when it saved one (training may have added tokens), else the base's; ChatMusician's chat
  template when it has none;
- pad token (``pad``): training adds ``<pad>`` when there is none (``"add"``, ChatMusician's LLaMA-2 recipe); use
  pads with EOS instead (``"eos"``), which needs no new row; the merge keeps the tokenizer as trained (None);
- vocabulary: embed_tokens and lm_head grow to the tokenizer's length (:mod:`.vocabulary`), never shrink;
- dtype: ``auto`` is bfloat16 on a GPU and float32 on CPU;
- quantization: a ``BitsAndBytesConfig`` from :mod:`.quantization`, checked before anything loads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .chat_format import CHAT_TEMPLATE
from .errors import ModelLoadError, one_line
from .pretrained import resolve_sources
from .vocabulary import grow_vocabulary

DTYPES = ("auto", "float32", "bfloat16", "float16")
PAD_POLICIES = ("eos", "add", None)
TRAINING_PAD_TOKEN = "<pad>"
# The files whose presence means a folder carries its own tokenizer.
TOKENIZER_MARKERS = ("tokenizer.json", "tokenizer_config.json")


@dataclass
class LoadedModel:
    """A model with the tokenizer it is used with; ``info`` names it for reports; ``constrain`` is how it decodes
    (``none`` or ``abc``, see :mod:`chatmusician_hf.constrain`)."""

    model: object
    tokenizer: object
    info: dict
    constrain: str = "none"

    @property
    def device(self):
        return self.model.device

    @property
    def context_length(self) -> int:
        """Position embeddings, or the tokenizer's limit when that is smaller."""
        limit = getattr(self.model.config, "max_position_embeddings", None) or 2048
        tokenizer_limit = getattr(self.tokenizer, "model_max_length", None)
        # Tokenizers without a limit report a huge sentinel (int(1e30)); only a real, smaller limit counts.
        if tokenizer_limit and tokenizer_limit < limit:
            limit = tokenizer_limit
        return int(limit)


def resolve_device(device: str | None) -> str:
    import torch

    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def resolve_dtype(dtype: str | None, device: str | None = None):
    """The torch dtype for a name in :data:`DTYPES`; ``auto`` is bfloat16 on a GPU, float32 on CPU."""
    import torch

    if dtype in (None, "auto"):
        return torch.bfloat16 if resolve_device(device).startswith("cuda") else torch.float32
    if dtype not in DTYPES:
        raise ModelLoadError(f"Unknown dtype {dtype!r}; use {', '.join(DTYPES)}.")
    return getattr(torch, dtype)


def load_tokenizer(model: str, adapter: str | None = None, revision: str | None = None, pad: str | None = "eos"):
    """The tokenizer a model is used with, chat template and pad token included (see the module docstring)."""
    from transformers import AutoTokenizer

    if pad not in PAD_POLICIES:
        raise ValueError(f"pad must be one of {PAD_POLICIES}, got {pad!r}")
    sources = resolve_sources(model, adapter, revision)
    own = sources.adapter and any((Path(sources.adapter) / f).is_file() for f in TOKENIZER_MARKERS)
    source = sources.adapter if own else sources.base
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as err:
        raise ModelLoadError(f"Could not load the tokenizer of {source}: {one_line(err)}") from None
    if tokenizer.chat_template is None:
        tokenizer.chat_template = CHAT_TEMPLATE
    if tokenizer.pad_token is None and pad is not None:
        if pad == "add":
            tokenizer.add_special_tokens({"pad_token": TRAINING_PAD_TOKEN})
        else:
            tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(
    model: str,
    adapter: str | None = None,
    *,
    revision: str | None = None,
    dtype: str | None = "auto",
    device: str | None = "auto",
    pad: str | None = "eos",
    tokenizer=None,
    vocab_size: int | None = None,
    num_layers: int | None = None,
    quantization=None,
    attn_implementation: str | None = None,
    merge_adapter: bool = False,
) -> LoadedModel:
    """Load ``model`` (and ``adapter``) in eval mode.

    ``device=None`` leaves the weights where ``from_pretrained`` put them (a trainer places them itself);
    ``tokenizer`` skips loading one (training builds its data with it first); ``vocab_size`` sets the rows the
    embeddings must have (default: the tokenizer's length); ``num_layers`` loads only the first decoder layers (the
    merge's sampled check); ``merge_adapter`` folds the adapter into the weights (a stage continuing from it).
    """
    from transformers import AutoModelForCausalLM

    sources = resolve_sources(model, adapter, revision)
    tokenizer = tokenizer or load_tokenizer(sources.base, sources.adapter, pad=pad)
    kwargs = {"dtype": resolve_dtype(dtype, device)}
    if num_layers:
        kwargs["num_hidden_layers"] = num_layers
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    if quantization is not None:
        from accelerate import PartialState

        # bitsandbytes weights are placed at load time, one GPU per process
        kwargs.update(quantization_config=quantization, device_map={"": PartialState().local_process_index})
    try:
        lm = AutoModelForCausalLM.from_pretrained(sources.base, **kwargs)
    except (OSError, ValueError) as err:
        raise ModelLoadError(f"Could not load model {sources.base_ref}: {one_line(err)}") from None
    grow_vocabulary(lm, vocab_size or len(tokenizer))
    if pad == "add":
        lm.config.pad_token_id = tokenizer.pad_token_id
    if sources.adapter:
        from peft import PeftModel

        try:
            lm = PeftModel.from_pretrained(lm, sources.adapter)
        except (OSError, ValueError, RuntimeError) as err:
            raise ModelLoadError(
                f"Could not load adapter {sources.adapter_ref} onto {sources.base_ref}: {one_line(err)}"
            ) from None
        if merge_adapter:
            lm = lm.merge_and_unload()
    if device is not None and quantization is None:
        lm.to(resolve_device(device))
    lm.eval()
    return LoadedModel(lm, tokenizer, sources.describe(lm))
