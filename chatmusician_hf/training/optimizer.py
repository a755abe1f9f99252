"""Trained embeddings get their own optimizer group: their own learning rate and no weight decay (the paper's recipe).

The stock optimizer is built first and the embedding parameters are then moved out of its groups, before any step
or scheduler exists, so no optimizer state moves and a resumed run restores the same groups.
"""

from __future__ import annotations


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
