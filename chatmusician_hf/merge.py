"""``chatmusician-hf merge``: fold a LoRA adapter into its base model, one shard at a time, and prove it.

The merge never holds the base model, the adapter and the merged model at once. It reads the base's safetensors
shards one after another, tensor by tensor (plain file reads, no memory map, so the process owns only what it is
working on), applies ``W += scale * B @ A`` in float32 for every LoRA target, substitutes the ``modules_to_save``
copies and the trained token rows, casts back to the base's dtype and streams the result into output shards of at
most ``--max_shard_size`` whose headers were laid out in advance. Peak memory is one tensor (the largest is the
embedding matrix) plus the LoRA factors, whatever the shard size: for LLaMA-2-7B about 2 GB above the Python
baseline, where PEFT's ``merge_and_unload`` path holds the whole model (~13.5 GB in fp16) plus the adapter.

Everything is written to a temporary folder beside ``--output_dir``. Before it is renamed into place the merged
model is checked against PEFT's own reading of the adapter: logits of base+adapter (``PeftModel``) and of the merged
model on music and text probe prompts must agree within a tolerance suited to the dtype, or nothing is published and
the measured difference is reported. ``--verify`` chooses how much of the model that check loads:

* ``full``: both whole models, one after the other (never at once): about one model in memory. For a 7B fp16
  model that is ~14 GB, which fits a 24 GB machine only when nothing else runs beside it.
* ``sample``: the same comparison on the first ``--verify_layers`` decoder layers plus embeddings, norm and
  lm_head (transformers loads only those tensors). Every decoder layer is merged by the same code path, so the
  sampled layers check the LoRA scaling, the target naming and the vocabulary handling at a fraction of the memory.
* ``none``: skip the check (for merges already verified once, e.g. re-sharding).
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .configs import make_stage_parser
from .errors import MergeError
from .merging.adapter import load_adapter
from .merging.shards import merge_shards
from .merging.verify import DEFAULT_RELATIVE_TOLERANCE, verify_merge
from .model_loader import load_tokenizer
from .pretrained import resolve_pretrained

DOWNLOAD_PATTERNS = [
    "*.json",
    "*.safetensors",
    "*.jinja",
    "tokenizer.model",
    "*.md",
    "*.png",
    "*.yaml",
    "*.txt",
]
# Files a training run leaves in the adapter folder that describe the model and belong next to it on the Hub.
CARD_ASSETS = ("eval_results.json", "loss_curve.png", "training_info.json", "recipe.yaml")


@dataclass
class MergeArguments:
    base: str = field(
        default=None, metadata={"help": "Base model: Hub ID (e.g. meta-llama/Llama-2-7b-hf) or local folder."}
    )
    adapter: str = field(
        default=None, metadata={"help": "LoRA adapter folder or Hub ID (PeftModel.save_pretrained output)."}
    )
    output_dir: str = field(
        default=None,
        metadata={"help": "Folder for the merged model; written only after verification passes."},
    )
    max_shard_size: str = field(
        default="5GB", metadata={"help": "Largest output safetensors shard, e.g. '5GB', '500MB'."}
    )
    verify: str = field(
        default="full",
        metadata={
            "help": "Logit check before publishing: 'full' loads base+adapter then the merged model (one at a time, ~one "
            "model of memory); 'sample' checks only the first --verify_layers layers (use for 7B on 24 GB); 'none' skips it.",
            "choices": ["full", "sample", "none"],
        },
    )
    verify_layers: int = field(default=2, metadata={"help": "Decoder layers loaded by --verify sample."})
    tolerance: float = field(
        default=None,
        metadata={"help": "Largest allowed |logit difference| relative to the largest |logit|. Default by dtype: "
                  + ", ".join(f"{k} {v:g}" for k, v in DEFAULT_RELATIVE_TOLERANCE.items()) + "."},
    )  # fmt: skip
    overwrite: bool = field(
        default=False, metadata={"help": "Replace --output_dir if it already holds files."}
    )
    base_revision: str = field(default=None, metadata={"help": "Branch, tag or commit of a Hub base model."})
    adapter_revision: str = field(default=None, metadata={"help": "Branch, tag or commit of a Hub adapter."})
    datasets: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Datasets the adapter was trained on, for the model card (default: read from the adapter's card)."
        },
    )
    push_to_hub: bool = field(
        default=False, metadata={"help": "Upload the merged folder in one commit afterwards."}
    )
    hub_model_id: str = field(
        default=None, metadata={"help": "Repo to push to, USER/NAME (needed with --push_to_hub)."}
    )
    hub_private_repo: bool = field(default=False, metadata={"help": "Create the pushed repo as private."})




def write_tokenizer_and_generation_config(base_dir: Path, adapter_dir: Path, out_dir: Path) -> None:
    """The adapter's tokenizer when it saved one (it may have added tokens), else the base's; ChatMusician's chat
    template when the tokenizer has none; a generation config with ChatMusician's sampling defaults."""
    from transformers import GenerationConfig

    from .chat_format import CHATMUSICIAN_GENERATION_DEFAULTS

    tokenizer = load_tokenizer(str(base_dir), str(adapter_dir), pad=None)
    tokenizer.save_pretrained(str(out_dir))
    try:
        generation = GenerationConfig.from_pretrained(str(base_dir))
    except OSError:
        generation = GenerationConfig()
    generation.update(**CHATMUSICIAN_GENERATION_DEFAULTS)
    for name in ("bos_token_id", "eos_token_id", "pad_token_id"):
        if getattr(tokenizer, name, None) is not None:
            setattr(generation, name, getattr(tokenizer, name))
    generation.save_pretrained(str(out_dir))


def adapter_datasets(adapter_dir: Path) -> list[str]:
    """The datasets named in the adapter's own model card, if it has one."""
    readme = adapter_dir / "README.md"
    if not readme.is_file():
        return []
    from huggingface_hub import ModelCard

    datasets = ModelCard.load(readme).data.datasets
    return [datasets] if isinstance(datasets, str) else list(datasets or [])


def _temporary_sibling(output_dir: Path) -> Path:
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.merging-", dir=output_dir.parent))


def _publish(tmp_dir: Path, output_dir: Path) -> None:
    """Move the verified folder into place; an existing output is replaced only after the new one is complete."""
    if output_dir.exists():
        old = output_dir.with_name(f".{output_dir.name}.replaced")
        shutil.rmtree(old, ignore_errors=True)
        output_dir.rename(old)
        tmp_dir.rename(output_dir)
        shutil.rmtree(old)
    else:
        tmp_dir.rename(output_dir)


def main(args: MergeArguments) -> Path:
    for name in ("base", "adapter", "output_dir"):
        if not getattr(args, name):
            raise MergeError(f"--{name} is required.")
    if args.push_to_hub and not args.hub_model_id:
        raise MergeError("--push_to_hub needs --hub_model_id USER/NAME.")
    output_dir = Path(args.output_dir)
    if output_dir.exists() and any(output_dir.iterdir()) and not args.overwrite:
        raise MergeError(f"{output_dir} already holds files; pass --overwrite to replace it.")
    base_dir = Path(resolve_pretrained(args.base, args.base_revision, DOWNLOAD_PATTERNS, what="base model"))
    adapter_dir = Path(resolve_pretrained(args.adapter, args.adapter_revision, DOWNLOAD_PATTERNS, what="adapter"))
    adapter = load_adapter(adapter_dir)

    tmp_dir = _temporary_sibling(output_dir)
    try:
        index = merge_shards(base_dir, adapter, tmp_dir, args.max_shard_size)
        del adapter
        write_tokenizer_and_generation_config(base_dir, adapter_dir, tmp_dir)
        if args.verify != "none":
            verify_merge(
                base_dir,
                adapter_dir,
                tmp_dir,
                mode=args.verify,
                layers=args.verify_layers,
                tolerance=args.tolerance,
            )
        for name in CARD_ASSETS:
            if (adapter_dir / name).is_file():
                shutil.copy2(adapter_dir / name, tmp_dir / name)
        from .model_card import build_model_card

        build_model_card(
            tmp_dir,
            base_model=args.base,
            relation="merge",
            datasets=args.datasets or adapter_datasets(adapter_dir),
            recipe=tmp_dir / "recipe.yaml" if (tmp_dir / "recipe.yaml").is_file() else None,
            repo_id=args.hub_model_id or f"<user>/{output_dir.name}",
        )
        _publish(tmp_dir, output_dir)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    n_shards = len(set(index["weight_map"].values()))
    print(f"[merge] wrote {output_dir}: {n_shards} shard(s), {index['metadata']['total_size'] / 1e9:.3f} GB")
    if args.push_to_hub:
        from .push import push_folder

        push_folder(output_dir, args.hub_model_id, private=args.hub_private_repo)
    return output_dir


def make_parser(subparsers=None):
    return make_stage_parser(
        subparsers,
        "merge",
        [MergeArguments],
        help="Merge a LoRA adapter into its base model shard by shard, verify the logits, write sharded safetensors.",
        description=__doc__.split("\n\n")[0],
    )


if __name__ == "__main__":
    from .cli import run_as_main

    run_as_main("merge")
