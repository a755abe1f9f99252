"""The parts of ``chatmusician-hf merge`` (:mod:`chatmusician_hf.merge`, the stage: arguments, atomic publish).

- :mod:`.safetensors_io`: safetensors read and written tensor by tensor, without memory maps;
- :mod:`.adapter`: a LoRA adapter read into per-tensor changes (factors, copies, token rows);
- :mod:`.shards`: the merge of base shards into planned output shards;
- :mod:`.verify`: the logit check against PEFT's own base + adapter before anything is published.
"""
