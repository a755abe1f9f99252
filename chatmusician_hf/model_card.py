"""Model cards for adapters and merged models, written with ``huggingface_hub.ModelCard``.

The card's YAML header is what the Hub indexes: ``base_model`` and ``base_model_relation`` (the model tree),
``datasets``, ``language``, ``license``, ``library_name``, ``pipeline_tag``, ``tags`` and, from an
``eval_results.json`` found in the model folder, ``model-index`` (the Hub's evaluation results). The body says what
the model is, shows the exact ChatMusician prompt format with code that runs, embeds the training recipe as YAML,
lists hyperparameters, hardware and time, shows ``loss_curve.png`` when present, and ends with limitations and the
licence notes of the training data.

Files read from the model folder when present (the training and evaluation stages write them):

* ``eval_results.json``: a JSON list of objects with the fields of ``huggingface_hub.EvalResult``
  (``task_type``, ``dataset_type``, ``dataset_name``, ``metric_type``, ``metric_value``, optional others).
* ``training_info.json``: a JSON object, e.g. ``{"hardware": "1x H100", "train_runtime_s": 5400, ...}``.
* ``loss_curve.png``: the training loss plot.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from .chat_format import inference_prompt

RELATIONS = ("adapter", "merge")
BASE_TAGS = ["music", "abc-notation", "chatmusician", "symbolic-music", "text-generation"]
EXAMPLE_REQUEST = "Using ABC notation, recreate the given text as a musical score.\nMeter C\nKey D\nNote Length 1/8\nRhythm reel"
# Recipe keys shown in the hyperparameter table (the full recipe is embedded below it).
HYPERPARAMETER_KEYS = (
    "learning_rate", "lr_scheduler_type", "warmup_ratio", "weight_decay", "adam_beta1", "adam_beta2", "max_grad_norm",
    "num_train_epochs", "max_steps", "per_device_train_batch_size", "gradient_accumulation_steps", "max_length",
    "lora_r", "lora_alpha", "lora_dropout", "lora_target_modules", "modules_to_save", "bf16", "fp16", "seed",
)  # fmt: skip
LIMITATIONS = """\
- The model writes ABC notation that usually parses, but not always: check outputs with `abc2midi` or music21 before
  relying on them. Long pieces drift in form and key, and bar lengths are not guaranteed to match the meter.
- Music-theory answers can be confidently wrong; ChatMusician's own MusicTheoryBench reasoning accuracy is far from
  expert level.
- Prompts outside the ChatMusician format (`Human: ... </s> Assistant: `) degrade the answers.
- The training data is mostly Western folk and classical music; other traditions are under-represented."""


def load_eval_results(model_dir: Path) -> list:
    """``EvalResult`` objects from ``eval_results.json``, with an error naming the file and the bad entry."""
    from huggingface_hub import EvalResult

    path = Path(model_dir) / "eval_results.json"
    if not path.is_file():
        return []
    entries = json.loads(path.read_text())
    if not isinstance(entries, list):
        raise ValueError(f"{path}: expected a JSON list of evaluation results, got {type(entries).__name__}")
    results = []
    for i, entry in enumerate(entries):
        try:
            results.append(EvalResult(**entry))
        except TypeError as err:
            raise ValueError(f"{path}: entry {i} is not a valid EvalResult ({err})") from err
    return results


def _recipe_text(recipe: str | Path | dict | None) -> str | None:
    if recipe is None:
        return None
    if isinstance(recipe, dict):
        return yaml.safe_dump(recipe, sort_keys=False).strip()
    return Path(recipe).read_text().strip()


def _recipe_dict(recipe_text: str | None) -> dict:
    if not recipe_text:
        return {}
    loaded = yaml.safe_load(recipe_text)
    return loaded if isinstance(loaded, dict) else {}


def datasets_from_recipe(recipe: dict) -> list[str]:
    """Dataset names a training recipe used: ``dataset_name`` and the ``path`` of each TRL ``datasets:`` entry."""
    names = [recipe["dataset_name"]] if recipe.get("dataset_name") else []
    names += [
        entry["path"]
        for entry in recipe.get("datasets") or []
        if isinstance(entry, dict) and entry.get("path")
    ]
    return list(dict.fromkeys(names))


def _cell(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _table(rows: list[tuple[str, Any]], header: tuple[str, str]) -> str:
    lines = [f"| {header[0]} | {header[1]} |", "|---|---|"]
    lines += [f"| {key} | {_cell(value)} |" for key, value in rows]
    return "\n".join(lines)


def _usage_section(repo_id: str, relation: str) -> str:
    prompt = inference_prompt(EXAMPLE_REQUEST)
    if relation == "adapter":
        load = (
            "from peft import AutoPeftModelForCausalLM\n"
            "from transformers import AutoTokenizer\n\n"
            f'repo = "{repo_id}"\n'
            "tokenizer = AutoTokenizer.from_pretrained(repo)\n"
            'model = AutoPeftModelForCausalLM.from_pretrained(repo, dtype="auto")  # base + this adapter'
        )
    else:
        load = (
            "from transformers import AutoModelForCausalLM, AutoTokenizer\n\n"
            f'repo = "{repo_id}"\n'
            "tokenizer = AutoTokenizer.from_pretrained(repo)\n"
            'model = AutoModelForCausalLM.from_pretrained(repo, dtype="auto")'
        )
    code = (
        f"{load}\n\n"
        "# The chat template renders ChatMusician's format; the string below is what it produces.\n"
        'messages = [{"role": "user", "content": ' + json.dumps(EXAMPLE_REQUEST) + "}]\n"
        'inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)\n'
        "# generation_config.json holds ChatMusician's sampling defaults (temperature 0.2, top_k 40, top_p 0.9, ...)\n"
        "output = model.generate(**inputs, max_new_tokens=256)\n"
        'print(tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True))'
    )
    return (
        "## How to use\n\n"
        "The model was trained on the ChatMusician conversation format: `Human: {request} </s> Assistant: "
        "{answer} </s>`, where `</s>` is the end-of-sequence token and no BOS token is added. An inference prompt "
        "ends right after `Assistant: `; earlier turns of a conversation come before it in the same form. "
        "For the request in the example below the exact prompt is:\n\n"
        f"```text\n{prompt}\n```\n\n"
        f"```python\n{code}\n```\n\n"
        "With the project installed, `chatmusician-hf chat --model "
        f"{repo_id}` opens an interactive session that also renders the ABC it writes."
    )


def build_model_card(
    model_dir: str | Path,
    *,
    base_model: str,
    relation: str,
    datasets: list[str] | None = None,
    recipe: str | Path | dict | None = None,
    training_info: dict | None = None,
    repo_id: str | None = None,
    language: list[str] | None = None,
    license: str | None = None,  # noqa: A002 - the model card field's name
    data_license_notes: str | None = None,
    write: bool = True,
):
    """Build (and by default write as ``README.md``) the model card of the model or adapter in ``model_dir``.

    Args:
        model_dir: folder of the adapter or merged model; ``eval_results.json``, ``training_info.json`` and
            ``loss_curve.png`` are picked up from it.
        base_model: Hub ID (or path) of the model this one derives from.
        relation: ``"adapter"`` for a PEFT adapter folder, ``"merge"`` for a merged model.
        datasets: training datasets (Hub IDs). ``"music21"`` names the corpus bundled with music21 and adds its
            licence note. Default: the ``dataset_name`` / ``datasets`` entries of ``recipe``.
        recipe: the training recipe, as a YAML file path or a dict; embedded verbatim.
        training_info: hardware, time and other facts of the run (default: ``training_info.json`` if present).
        repo_id: where the model will live on the Hub, used in the code example (default ``<user>/<folder name>``).
        language: card languages (default ``["en"]``).
        license: licence identifier (default ``llama2`` for LLaMA-2 bases, otherwise ``other``).
        data_license_notes: extra text for the data licence section.
        write: write ``README.md`` into ``model_dir``.

    Returns:
        The ``huggingface_hub.ModelCard``.
    """
    from huggingface_hub import ModelCard, ModelCardData

    if relation not in RELATIONS:
        raise ValueError(f"relation must be one of {RELATIONS}, got {relation!r}")
    model_dir = Path(model_dir)
    datasets = list(datasets or [])
    repo_id = repo_id or f"<user>/{model_dir.name}"
    if license is None:
        license = "llama2" if "llama-2" in base_model.lower() else "other"  # noqa: A001
    if training_info is None and (model_dir / "training_info.json").is_file():
        training_info = json.loads((model_dir / "training_info.json").read_text())
    training_info = dict(training_info or {})
    eval_results = load_eval_results(model_dir)
    recipe_text = _recipe_text(recipe)
    datasets = datasets or datasets_from_recipe(_recipe_dict(recipe_text))

    tags = BASE_TAGS + (["peft", "lora"] if relation == "adapter" else ["merge", "lora-merged"])
    card_data = ModelCardData(
        base_model=base_model,
        base_model_relation=relation,
        datasets=datasets or None,
        language=language or ["en"],
        license=license,
        library_name="peft" if relation == "adapter" else "transformers",
        pipeline_tag="text-generation",
        tags=tags,
        model_name=repo_id.split("/")[-1],
        eval_results=eval_results or None,
    )

    what = (
        "a LoRA adapter (with its trained embedding and output layers) for"
        if relation == "adapter"
        else "a merge of a LoRA fine-tune into"
    )
    sections = [
        f"# {repo_id.split('/')[-1]}",
        f"A ChatMusician-style model that reads and writes music in ABC notation: {what} "
        f"{_base_link(base_model)}, trained with the "
        "[chatmusician-hf](https://github.com/chatmusician-hf/chatmusician-hf) suite, a Hugging Face-native "
        "re-implementation of [ChatMusician](https://huggingface.co/m-a-p/ChatMusician). It composes tunes from "
        "text descriptions, chords, motifs and musical forms, continues and harmonises melodies, and answers "
        "music-theory questions.",
        _usage_section(repo_id, relation),
    ]
    training = ["## Training"]
    if datasets:
        training.append("Datasets: " + ", ".join(f"`{d}`" for d in datasets) + ".")
    hyper = [(k, _recipe_dict(recipe_text)[k]) for k in HYPERPARAMETER_KEYS if k in _recipe_dict(recipe_text)]
    hyper += list((training_info.pop("hyperparameters", None) or {}).items())
    if hyper:
        training += ["### Hyperparameters", _table(hyper, ("hyperparameter", "value"))]
    if training_info:
        training += ["### Hardware and time", _table(sorted(training_info.items()), ("fact", "value"))]
    if recipe_text:
        training += ["### Recipe", "The exact recipe of the run:", f"```yaml\n{recipe_text}\n```"]
    if (model_dir / "loss_curve.png").is_file():
        training += ["### Loss curve", "![Training loss](loss_curve.png)"]
    if len(training) > 1:
        sections.append("\n\n".join(training))
    if eval_results:
        rows = [
            f"| {r.task_name or r.task_type} | {r.dataset_name} | {r.metric_name or r.metric_type} | {r.metric_value} |"
            for r in eval_results
        ]
        sections.append(
            "## Evaluation\n\n| task | dataset | metric | value |\n|---|---|---|---|\n" + "\n".join(rows)
        )
    sections.append("## Limitations\n\n" + LIMITATIONS)
    sections.append("## Data licences\n\n" + _data_notes(datasets, data_license_notes))

    card = ModelCard(f"---\n{card_data.to_yaml()}\n---\n\n" + "\n\n".join(sections) + "\n")
    if write:
        card.save(model_dir / "README.md")
    return card


def _base_link(base_model: str) -> str:
    """A link for Hub IDs; a local path is named but not linked (it would point nowhere on the Hub)."""
    if "/" in base_model and not Path(base_model).exists():
        return f"[`{base_model}`](https://huggingface.co/{base_model})"
    return f"`{base_model}`"


def _data_notes(datasets: list[str], extra: str | None) -> str:
    notes = []
    if any("music21" in d for d in datasets):
        from .data.corpus import CORPUS_LICENSE_NOTE

        notes.append(CORPUS_LICENSE_NOTE)
    hub = [d for d in datasets if "/" in d]
    if hub:
        notes.append(
            "The training data keeps the licences of its sources; see the dataset cards of "
            + ", ".join(f"[`{d}`](https://huggingface.co/datasets/{d})" for d in hub)
            + " before any commercial use."
        )
    if extra:
        notes.append(extra)
    return "\n\n".join(notes) or "No training data was recorded for this model; check its sources' licences."
