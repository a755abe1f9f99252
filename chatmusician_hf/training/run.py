"""The order both training stages follow: check, tokenizer, data, resume point, weights, train, save.

Everything that can be wrong with a recipe, its dataset or its resumption checkpoint is found before the weights
load, so a mistake costs seconds, not the minutes a 7B model takes to load (and, under ``accelerate launch``, is
reported once, by rank 0: see :func:`chatmusician_hf.cli.run_command`).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ..quantization import quantization_config
from .checks import check_training_recipe
from .loading import load_model_for_training, load_tokenizer_for_training
from .report import finish_training
from .resume import find_resume_checkpoint


def run_training(
    stage: str,
    data_args,
    training_args,
    model_args,
    build_dataset: Callable,
    trainer_class: type,
    data_step: str,
    collator: Callable | None = None,
):
    """Train one stage and write its outputs; returns the trainer.

    ``build_dataset(tokenizer, split)`` makes the rows of a split; ``data_step`` names that step in distributed
    logs; ``collator(tokenizer)``, when given, makes the trainer's data collator."""
    started = time.perf_counter()
    check_training_recipe(model_args, training_args)
    quantization = quantization_config(model_args, use_cpu=training_args.use_cpu)
    tokenizer = load_tokenizer_for_training(model_args)
    with training_args.main_process_first(desc=data_step):
        train_dataset = build_dataset(tokenizer, "train")
        eval_dataset = None
        if training_args.eval_strategy != "no":
            eval_dataset = build_dataset(tokenizer, data_args.dataset_test_split)
    resume = find_resume_checkpoint(training_args.output_dir, training_args.resume_from_checkpoint)
    model = load_model_for_training(model_args, training_args, tokenizer, quantization)
    trainer = trainer_class(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        **({"data_collator": collator(tokenizer)} if collator else {}),
    )
    if resume:
        print(f"[{stage}] resuming from {resume}")
    metrics = dict(trainer.train(resume_from_checkpoint=resume).metrics)
    if trainer.eval_dataset is not None:
        metrics.update(trainer.evaluate())
    trainer.log_metrics("train", metrics)
    trainer.save_metrics("all", metrics)
    finish_training(
        trainer,
        stage=stage,
        base_model=model_args.model_name_or_path,
        arg_objects=(data_args, training_args, model_args),
        elapsed_s=time.perf_counter() - started,
    )
    return trainer
