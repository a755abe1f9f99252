"""What a finished training run leaves behind: adapter, tokenizer, ``recipe.yaml`` (the effective options),
``loss_curve.png``, ``training_info.json`` and, for an adapter, a model card."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from .arguments import LOSS_CURVE_FILE


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
        from ..model_card import build_model_card

        build_model_card(output_dir, base_model=base_model, relation="adapter", recipe=recipe, training_info=summary)
    print(f"[{stage}] wrote {output_dir} in {elapsed_s:.0f}s: {summary}")
