"""What the CPT and SFT stages share, one concept per module, so ``cpt.py`` and ``sft.py`` hold only what differs.

- :mod:`.arguments`: the options both stages add to their training configs (embedding learning rate, loss curve);
- :mod:`.cpu_launch`: the ``accelerate launch`` command for one or several CPU processes (the quickstart's);
- :mod:`.checks`: everything about a recipe that can be refused before any weights load;
- :mod:`.loading`: tokenizer and model for training (through :mod:`chatmusician_hf.model_loader`), LoRA set-up;
- :mod:`.optimizer`: trained embeddings in their own optimizer group;
- :mod:`.resume`: which checkpoint a run resumes from (every file readable, else the one before);
- :mod:`.report`: what a finished run leaves behind (recipe, loss curve, summary, model card);
- :mod:`.run`: the order both stages follow: check, tokenizer, data, weights, train, save.
"""
