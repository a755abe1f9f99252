"""Resolve a model or adapter reference (Hub ID or local folder) to a local folder, with one clear offline error;
an adapter folder named as a model stands for its base with the adapter on top."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import ModelLoadError

# What from_pretrained needs; skips the duplicate PyTorch-pickle weights that many Hub repos also carry.
MODEL_FILE_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "tokenizer*"]


def resolve_pretrained(
    ref: str, revision: str | None = None, allow_patterns: list[str] | None = None, what: str = "model"
) -> str:
    """A local folder for ``ref``: the folder itself, or the Hub snapshot (downloaded, or from the cache offline).

    ``what`` names the reference in errors ("base model", "adapter", ...).
    """
    ref = os.path.expanduser(ref)
    if os.path.isdir(ref):
        return ref
    if os.path.exists(ref):
        raise ModelLoadError(f"{what} {ref} is a file; it must be a folder or a Hub ID.")
    if ref.startswith((".", "/")) or ref.count("/") > 1:  # meant as a path: a Hub ID is 'name' or 'owner/name'
        raise ModelLoadError(f"{what.capitalize()} path does not exist: {ref}")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        HfHubHTTPError,
        HFValidationError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
    )

    try:
        folder = snapshot_download(ref, revision=revision, allow_patterns=allow_patterns or MODEL_FILE_PATTERNS)
        if allow_patterns is None and not any(Path(folder).glob("*.safetensors")):
            # Older repos carry their weights only as PyTorch pickles; from_pretrained reads those too.
            folder = snapshot_download(ref, revision=revision, allow_patterns=[*MODEL_FILE_PATTERNS, "*.bin"])
        return folder
    except (LocalEntryNotFoundError, OfflineModeIsEnabled) as err:
        raise ModelLoadError(
            f"{what} '{ref}' is not a local folder and is not in the Hugging Face cache, and the Hub cannot be reached "
            f"({type(err).__name__}). Download it on a connected machine (`hf download {ref}`) and copy the cache, "
            f"or point the recipe at a local folder."
        ) from None
    except HFValidationError as err:
        raise ModelLoadError(f"{what} '{ref}' is neither a folder nor a valid Hub ID: {err}") from None
    except HfHubHTTPError as err:
        raise ModelLoadError(f"{what} '{ref}': could not fetch it from the Hub: {err}") from None


@dataclass
class ModelSources:
    """Local folders of a base model and its adapter, and the references they were resolved from."""

    base: str
    adapter: str | None
    base_ref: str
    adapter_ref: str | None
    revision: str | None = None

    def describe(self, lm) -> dict:
        """Name, revision, adapter, dtype and device of the loaded model, for reports and model cards."""
        local = Path(self.base_ref).expanduser().exists()
        # A Hub reference resolves to a cache snapshot folder named by its commit.
        commit = Path(self.base).name if Path(self.base).parent.name == "snapshots" else None
        parameter = next(lm.parameters())
        return {
            "model": str(Path(self.base).resolve()) if local else self.base_ref,
            "revision": self.revision or commit or ("local" if local else None),
            "adapter": self.adapter_ref,
            "dtype": str(parameter.dtype).removeprefix("torch."),
            "device": str(parameter.device),
        }


def resolve_sources(model: str, adapter: str | None = None, revision: str | None = None) -> ModelSources:
    """The folders to load, downloading Hub references; an adapter folder given as ``model`` stands for its base
    with itself on top."""
    path = resolve_pretrained(model, revision)
    base_ref = model
    if adapter is None and (Path(path) / "adapter_config.json").is_file():
        config = json.loads((Path(path) / "adapter_config.json").read_text())
        base_ref, revision, adapter = config.get("base_model_name_or_path"), config.get("revision"), model
        if not base_ref:
            raise ModelLoadError(f"{model}/adapter_config.json names no base_model_name_or_path.")
        path = resolve_pretrained(base_ref, revision, what="base model")
    adapter_path = resolve_pretrained(adapter, what="adapter") if adapter else None
    return ModelSources(path, adapter_path, base_ref, adapter, revision)
