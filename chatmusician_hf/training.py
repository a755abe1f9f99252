"""What the CPT and SFT stages share: recipe checks, LoRA set-up, checkpoint resumption, the loss curve.

Kept apart from the stage modules so that ``cpt.py`` and ``sft.py`` read top to bottom as parse, data, model,
train, save, card, push.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from .configs import RecipeError

LOSS_CURVE_FILE = "loss_curve.png"
_CHECKPOINT_DIR = re.compile(r"^checkpoint-(\d+)$")


@dataclass
class EmbeddingTrainingArguments:
    """Options for the input/output embeddings, mixed into the stages' training configs."""

    embedding_learning_rate: float | None = field(
        default=None,
        metadata={
            "help": "Learning rate of the trained embed_tokens / lm_head copies (their own optimizer group, no weight "
            "decay). Needs `lora_modules_to_save: [embed_tokens, lm_head]` or `trainable_token_indices`. "
            "None: they use `learning_rate`."
        },
    )
    trainable_token_indices: list[int] | None = field(
        default=None,
        metadata={
            "help": "Train only these rows of embed_tokens (PEFT trainable tokens) instead of full copies, e.g. the ids "
            "of added tokens. Mutually exclusive with embed_tokens in `lora_modules_to_save`."
        },
    )
    loss_curve: bool = field(
        default=True,
        metadata={"help": f"Write {LOSS_CURVE_FILE} (train and eval loss) into output_dir at the end."},
    )


def _meta_model(model_name_or_path: str, revision: str | None = None):
    """The model's module tree without its weights: enough to check LoRA targets before loading anything.

    Built with the class constructor on the meta device rather than ``from_config``, which under ZeRO-3 would try
    to partition the (absent) weights.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    adapter_config = Path(model_name_or_path) / "adapter_config.json"
    if adapter_config.is_file():
        model_name_or_path, revision = json.loads(adapter_config.read_text())["base_model_name_or_path"], None
    config = AutoConfig.from_pretrained(model_name_or_path, revision=revision)
    model_class = AutoModelForCausalLM._model_mapping[type(config)]
    with torch.device("meta"):
        return model_class(config)


def check_peft_recipe(model_args, training_args) -> None:
    """Fail before any weights load when the LoRA / embedding options cannot work together or with the model."""
    modules_to_save = list(model_args.lora_modules_to_save or [])
    trains_embeddings = bool(modules_to_save) or bool(training_args.trainable_token_indices)
    if training_args.embedding_learning_rate is not None and model_args.use_peft and not trains_embeddings:
        raise RecipeError(
            "embedding_learning_rate is set but no embeddings are trained: add "
            "`lora_modules_to_save: [embed_tokens, lm_head]` (or `trainable_token_indices`), or remove "
            "embedding_learning_rate."
        )
    if training_args.trainable_token_indices and "embed_tokens" in modules_to_save:
        raise RecipeError(
            "trainable_token_indices and embed_tokens in lora_modules_to_save exclude each other."
        )
    if not model_args.use_peft:
        return
    model = _meta_model(model_args.model_name_or_path, model_args.model_revision)
    leaf_names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules() if name}
    targets = model_args.lora_target_modules
    if isinstance(targets, str):
        targets = [] if targets == "all-linear" else [targets]
    for kind, names in (("lora_target_modules", targets or []), ("lora_modules_to_save", modules_to_save)):
        missing = [name for name in names if name not in leaf_names]
        if missing:
            from .configs import closest_key

            hints = [
                f"'{m}'"
                + (f" (did you mean '{closest_key(m, leaf_names)}'?)" if closest_key(m, leaf_names) else "")
                for m in missing
            ]
            raise RecipeError(
                f"{kind}: {', '.join(hints)} not found in {model_args.model_name_or_path} "
                f"({type(model).__name__}); its module names include {sorted(leaf_names)[:20]}."
            )


def build_lora_config(model_args, training_args):
    from peft import LoraConfig

    kwargs = {}
    if training_args.trainable_token_indices:
        kwargs["trainable_token_indices"] = {"embed_tokens": list(training_args.trainable_token_indices)}
    return LoraConfig(
        task_type="CAUSAL_LM",
        r=model_args.lora_r,
        lora_alpha=model_args.lora_alpha,
        lora_dropout=model_args.lora_dropout,
        target_modules=model_args.lora_target_modules,
        modules_to_save=model_args.lora_modules_to_save,
        use_rslora=model_args.use_rslora,
        use_dora=model_args.use_dora,
        bias="none",
        **kwargs,
    )


def upcast_trainable_parameters(model) -> None:
    """Keep trainable weights (LoRA, embedding copies) in fp32 when the frozen base is loaded in bf16/fp16.

    The frozen base in half precision halves its memory and needs no per-step casts under autocast; the optimizer
    must still update fp32 master weights, or small updates vanish in bf16 rounding.
    """
    import torch

    for param in model.parameters():
        if param.requires_grad and param.dtype in (torch.float16, torch.bfloat16):
            param.data = param.data.float()


def ensure_pad_token(tokenizer, model) -> bool:
    """Give the tokenizer a pad token if it has none (LLaMA-2 has none), growing the embeddings to match.

    New rows start at the mean of the existing rows: a neutral point that keeps the first steps' loss unchanged.
    Returns whether the vocabulary grew.
    """
    import torch

    if tokenizer.pad_token is not None:
        return False
    tokenizer.add_special_tokens({"pad_token": "<pad>"})
    old = model.get_input_embeddings().weight.shape[0]
    if len(tokenizer) <= old:
        return False
    model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    with torch.no_grad():
        for embedding in {model.get_input_embeddings(), model.get_output_embeddings()}:
            if embedding is not None:
                embedding.weight[old:] = embedding.weight[:old].mean(dim=0, keepdim=True)
    model.config.pad_token_id = tokenizer.pad_token_id
    return True


def embedding_parameter_names(model) -> set[str]:
    """Names of the trainable parameters that belong to the input or output embedding modules."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    embedding_modules = {base.get_input_embeddings(), base.get_output_embeddings()}
    module_names = {
        name.rsplit(".", 1)[-1] for name, module in base.named_modules() if module in embedding_modules
    }
    return {
        name
        for name, param in model.named_parameters()
        if param.requires_grad and any(f".{m}." in f".{name}" for m in module_names)
    }


def split_embedding_param_group(optimizer, model, embedding_learning_rate: float) -> int:
    """Move the trained embedding parameters of ``optimizer`` into their own group at ``embedding_learning_rate``
    with no weight decay. Called on a fresh optimizer, before any step or scheduler, so no state moves."""
    names = embedding_parameter_names(model)
    embedding_ids = {id(p) for n, p in model.named_parameters() if n in names}
    moved = []
    for group in optimizer.param_groups:
        kept = [p for p in group["params"] if id(p) not in embedding_ids]
        moved += [p for p in group["params"] if id(p) in embedding_ids]
        group["params"] = kept
    if moved:
        optimizer.add_param_group({"params": moved, "lr": embedding_learning_rate, "weight_decay": 0.0})
    return len(moved)


class EmbeddingLearningRateMixin:
    """Trainer mixin: after the stock optimizer is built, trained embeddings move to their own group."""

    def create_optimizer(self, model=None):
        fresh = self.optimizer is None
        optimizer = super().create_optimizer(model)
        if fresh and self.args.embedding_learning_rate is not None:
            split_embedding_param_group(
                optimizer, self.model if model is None else model, self.args.embedding_learning_rate
            )
        return optimizer


def load_model_for_training(model_args, training_args):
    """Base model + tokenizer (Hub ID or folder) with a pad token, ChatMusician's chat template and a fresh adapter.

    ``model_name_or_path`` may also be an adapter folder (a CPT output): its base is loaded and the adapter merged
    in memory first, so SFT continues from the continued-pretrained weights.
    """
    from peft import PeftConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, set_seed

    from .chat_format import CHAT_TEMPLATE
    from .pretrained import resolve_pretrained

    # The adapter's random init must repeat: two runs of one recipe give the same weights.
    set_seed(training_args.seed)
    path = resolve_pretrained(model_args.model_name_or_path, revision=model_args.model_revision)
    adapter_path = path if (Path(path) / "adapter_config.json").is_file() else None
    base_path = (
        resolve_pretrained(PeftConfig.from_pretrained(adapter_path).base_model_name_or_path)
        if adapter_path
        else path
    )
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.chat_template is None:
        tokenizer.chat_template = CHAT_TEMPLATE
    model = AutoModelForCausalLM.from_pretrained(
        base_path, dtype=model_args.dtype or "auto", attn_implementation=model_args.attn_implementation
    )
    if adapter_path:
        if model.get_input_embeddings().weight.shape[0] != len(tokenizer):
            model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
        model = PeftModel.from_pretrained(model, adapter_path).merge_and_unload()
    ensure_pad_token(tokenizer, model)
    # Training needs no KV cache, and with one transformers ignores per-document position_ids: packed documents
    # would attend to each other.
    model.config.use_cache = False
    if model_args.use_peft:
        model = get_peft_model(model, build_lora_config(model_args, training_args))
        upcast_trainable_parameters(model)
        model.print_trainable_parameters()
    return model, tokenizer


def checkpoint_is_complete(path: Path) -> bool:
    """A checkpoint counts only if every file a resume reads is present and parses: a run killed while saving
    leaves a partial folder that must be skipped, not loaded."""
    state = path / "trainer_state.json"
    try:
        json.loads(state.read_text())
    except (OSError, ValueError):
        return False
    weights = [p for p in path.glob("*.safetensors")]
    if not weights:
        return False
    try:
        from safetensors import safe_open

        for weight in weights:
            with safe_open(str(weight), framework="pt") as handle:
                for key in handle.keys():
                    handle.get_slice(key)
    except Exception:
        return False
    has_optimizer = (path / "optimizer.pt").is_file() and (path / "optimizer.pt").stat().st_size > 0
    has_deepspeed_state = any(path.glob("global_step*"))
    return (has_optimizer or has_deepspeed_state) and (path / "scheduler.pt").is_file()


def find_resume_checkpoint(output_dir: str | os.PathLike, resume: str | None) -> str | None:
    """Resolve ``resume_from_checkpoint``: ``auto``/``latest`` picks the newest complete checkpoint in output_dir
    (None when there is none, so a first run and a rerun use the same recipe); a path is checked as given."""
    if resume is None or resume in ("", "false", "False", "none", "None"):
        return None
    if resume not in ("auto", "latest", "true", "True"):
        if not checkpoint_is_complete(Path(resume)):
            raise RecipeError(f"resume_from_checkpoint: {resume} is not a complete checkpoint folder.")
        return resume
    candidates = sorted(
        (p for p in Path(output_dir).glob("checkpoint-*") if _CHECKPOINT_DIR.match(p.name)),
        key=lambda p: int(_CHECKPOINT_DIR.match(p.name).group(1)),
        reverse=True,
    )
    for candidate in candidates:
        if checkpoint_is_complete(candidate):
            return str(candidate)
        print(f"[resume] skipping incomplete checkpoint {candidate}")
    return None


def write_loss_curve(log_history: list[dict], path: str | os.PathLike, title: str) -> Path | None:
    """Plot train and eval loss against the step from ``trainer.state.log_history``."""
    train = [(e["step"], e["loss"]) for e in log_history if "loss" in e and math.isfinite(e["loss"])]
    evals = [(e["step"], e["eval_loss"]) for e in log_history if "eval_loss" in e]
    if not train and not evals:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=120)
    if train:
        ax.plot(*zip(*train), label="train loss")
    if evals:
        ax.plot(*zip(*evals), marker="o", label="held-out loss")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def resolved_recipe(*arg_objects) -> dict:
    """The effective options of a run (recipe + command line), as plain data for recipe.yaml and the model card."""
    from dataclasses import asdict

    recipe: dict = {}
    for args in arg_objects:
        # TrainingArguments.to_dict turns enums into their values and masks tokens.
        values = args.to_dict() if hasattr(args, "to_dict") else asdict(args)
        recipe.update(json.loads(json.dumps(values, default=str)))
    for key in [k for k in recipe if k.startswith("_") or k.endswith("hub_token")]:
        recipe.pop(key)
    return recipe


def train_and_save(trainer, *, stage: str, base_model: str, arg_objects: tuple, started: float) -> None:
    """Train (resuming from the newest complete checkpoint when asked), evaluate, and write the run's outputs."""
    import time

    resume = find_resume_checkpoint(trainer.args.output_dir, trainer.args.resume_from_checkpoint)
    if resume:
        print(f"[{stage}] resuming from {resume}")
    metrics = dict(trainer.train(resume_from_checkpoint=resume).metrics)
    if trainer.eval_dataset is not None:
        metrics.update(trainer.evaluate())
    trainer.log_metrics("train", metrics)
    trainer.save_metrics("all", metrics)
    finish_training(trainer, stage=stage, base_model=base_model, arg_objects=arg_objects,
                    elapsed_s=time.perf_counter() - started)


def finish_training(trainer, *, stage: str, base_model: str, arg_objects: tuple, elapsed_s: float) -> None:
    """Write what a finished run leaves behind: adapter, tokenizer, recipe, loss curve, run summary, model card."""
    import platform

    import torch
    import yaml

    output_dir = Path(trainer.args.output_dir)
    trainer.save_model(str(output_dir))
    trainer.save_state()
    if not trainer.is_world_process_zero():
        return
    recipe = resolved_recipe(*arg_objects)
    (output_dir / "recipe.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))
    if getattr(trainer.args, "loss_curve", True):
        write_loss_curve(
            trainer.state.log_history, output_dir / LOSS_CURVE_FILE, f"{stage}: {output_dir.name}"
        )
    device = (
        torch.cuda.get_device_name(0)
        if torch.cuda.is_available()
        else f"CPU ({platform.processor() or 'x86_64'})"
    )
    summary = {
        "stage": stage,
        "global_step": trainer.state.global_step,
        "epochs": trainer.state.epoch,
        "world_size": trainer.args.world_size,
        "hardware": f"{trainer.args.world_size} x {device}",
        "train_runtime_s": round(elapsed_s, 1),
        "final_train_loss": next(
            (e["loss"] for e in reversed(trainer.state.log_history) if "loss" in e), None
        ),
        "final_eval_loss": next(
            (e["eval_loss"] for e in reversed(trainer.state.log_history) if "eval_loss" in e), None
        ),
    }
    (output_dir / "training_info.json").write_text(json.dumps(summary, indent=2) + "\n")
    if (output_dir / "adapter_config.json").is_file():
        from .model_card import build_model_card

        build_model_card(output_dir, base_model=base_model, relation="adapter", recipe=recipe, training_info=summary)
    print(f"[{stage}] wrote {output_dir} in {elapsed_s:.0f}s: {summary}")
