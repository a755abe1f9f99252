"""Load the model under evaluation (a Hub ID or a local folder, optionally with a PEFT adapter) and name its revision."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import ModelLoadError


@dataclass
class LoadedModel:
    model: object
    tokenizer: object
    info: dict  # name, revision and adapter, for reports


def _looks_local(name: str) -> bool:
    return name.startswith((".", "/", "~")) or Path(name).exists()


def _check_exists(name: str, what: str) -> None:
    if _looks_local(name) and not Path(name).expanduser().exists():
        raise ModelLoadError(f"{what} path does not exist: {name}")


def resolve_dtype(dtype: str, device: str):
    import torch

    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    try:
        return getattr(torch, dtype)
    except AttributeError as err:
        raise ModelLoadError(f"Unknown dtype {dtype!r}; use auto, float32, bfloat16 or float16.") from err


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_model(
    model: str,
    adapter: str | None = None,
    revision: str | None = None,
    dtype: str = "auto",
    device: str | None = None,
) -> LoadedModel:
    """Model and tokenizer in eval mode on ``device``; the adapter, when given, is applied with PEFT."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _check_exists(model, "Model")
    if adapter:
        _check_exists(adapter, "Adapter")
    device = device or default_device()
    try:
        tokenizer = AutoTokenizer.from_pretrained(adapter or model, revision=None if adapter else revision)
    except Exception:  # adapters saved without a tokenizer use the base model's
        tokenizer = None
    try:
        tokenizer = tokenizer or AutoTokenizer.from_pretrained(model, revision=revision)
        lm = AutoModelForCausalLM.from_pretrained(
            model, revision=revision, dtype=resolve_dtype(dtype, device)
        )
    except (OSError, ValueError) as err:
        raise ModelLoadError(f"Could not load model {model!r}: {err}") from err
    commit = getattr(lm.config, "_commit_hash", None)
    if adapter:
        from peft import PeftModel

        if len(tokenizer) > lm.get_input_embeddings().weight.shape[0]:
            lm.resize_token_embeddings(len(tokenizer))
        try:
            lm = PeftModel.from_pretrained(lm, adapter)
        except (OSError, ValueError) as err:
            raise ModelLoadError(f"Could not load adapter {adapter!r}: {err}") from err
    lm.to(device).eval()
    info = {
        "model": model if not _looks_local(model) else str(Path(model).expanduser().resolve()),
        "revision": revision or commit or ("local" if _looks_local(model) else None),
        "adapter": adapter,
        "dtype": str(next(lm.parameters()).dtype).removeprefix("torch."),
        "device": device,
    }
    return LoadedModel(lm, tokenizer, info)
