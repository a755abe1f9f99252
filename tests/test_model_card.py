"""Model cards: Hub metadata that parses back into ModelCardData, and a body whose code example runs."""

from __future__ import annotations

import json
import re
import shutil

import pytest
import yaml

from chatmusician_hf.model_card import build_model_card

RECIPE = {"model_name_or_path": "meta-llama/Llama-2-7b-hf", "learning_rate": 1e-4, "lora_r": 64, "lora_alpha": 16,
          "modules_to_save": ["embed_tokens", "lm_head"], "num_train_epochs": 2, "max_length": 2048}  # fmt: skip
EVALS = [
    {"task_type": "multiple-choice", "dataset_type": "m-a-p/MusicTheoryBench", "dataset_name": "MusicTheoryBench",
     "dataset_split": "test", "metric_type": "accuracy", "metric_name": "knowledge accuracy", "metric_value": 0.412},
    {"task_type": "multiple-choice", "dataset_type": "m-a-p/MusicTheoryBench", "dataset_name": "MusicTheoryBench",
     "dataset_split": "test", "metric_type": "accuracy", "metric_name": "reasoning accuracy", "metric_value": 0.257},
]  # fmt: skip


def test_card_metadata_parses_into_model_card_data(tmp_path):
    from huggingface_hub import EvalResult, ModelCard

    (tmp_path / "eval_results.json").write_text(json.dumps(EVALS))
    (tmp_path / "loss_curve.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    build_model_card(
        tmp_path,
        base_model="meta-llama/Llama-2-7b-hf",
        relation="adapter",
        datasets=["m-a-p/MusicPile", "m-a-p/MusicPile-sft"],
        recipe=RECIPE,
        training_info={"hardware": "16x A800 80GB", "train_runtime_h": 48.5},
        repo_id="user/chatmusician-lora",
    )
    card = ModelCard.load(tmp_path / "README.md")
    data = card.data
    assert data.base_model == "meta-llama/Llama-2-7b-hf" and data.base_model_relation == "adapter"
    assert data.datasets == ["m-a-p/MusicPile", "m-a-p/MusicPile-sft"]
    assert (data.library_name, data.pipeline_tag, data.license) == ("peft", "text-generation", "llama2")
    assert {"music", "abc-notation", "chatmusician", "lora"} <= set(data.tags)
    assert data.eval_results == [EvalResult(**e) for e in EVALS]
    assert "model-index" in card.content.split("---")[1]  # what the Hub reads for its evaluation widget

    body = card.text
    recipe_yaml = re.search(r"```yaml\n(.*?)\n```", body, re.DOTALL).group(1)
    assert yaml.safe_load(recipe_yaml) == RECIPE
    assert "| learning_rate | 0.0001 |" in body and "| hardware | 16x A800 80GB |" in body
    assert "![Training loss](loss_curve.png)" in body
    assert "| knowledge accuracy | 0.412 |" in body
    assert "Human: Using ABC notation" in body and "</s> Assistant: " in body
    assert "AutoPeftModelForCausalLM" in body and "huggingface.co/datasets/m-a-p/MusicPile" in body


def test_merged_card_code_example_runs_on_the_model(tiny_model_dir, tmp_path):
    """The usage snippet in the card is real code: run it against the model folder it describes."""
    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model_dir)
    card = build_model_card(
        model_dir, base_model="tiny-base", relation="merge", datasets=["music21"], repo_id="u/m"
    )
    assert card.data.library_name == "transformers" and card.data.eval_results is None
    from chatmusician_hf.data.corpus import CORPUS_LICENSE_NOTE

    assert CORPUS_LICENSE_NOTE in card.text

    code = re.search(r"```python\n(.*?)\n```", card.text, re.DOTALL).group(1)
    code = code.replace('repo = "u/m"', f"repo = {str(model_dir)!r}").replace(
        "max_new_tokens=256", "max_new_tokens=16"
    )
    namespace: dict = {}
    exec(compile(code, "model-card-example", "exec"), namespace)
    assert namespace["output"].shape[1] - namespace["inputs"]["input_ids"].shape[1] >= 10  # min_new_tokens=10

    prompt = re.search(r"```text\n(.*?)\n```", card.text, re.DOTALL).group(1)
    rendered = namespace["tokenizer"].decode(namespace["inputs"]["input_ids"][0])
    assert rendered == prompt  # the documented prompt is exactly what the chat template feeds the model


def test_bad_eval_results_name_the_file(tmp_path):
    (tmp_path / "eval_results.json").write_text(json.dumps([{"metric_value": 0.5}]))
    with pytest.raises(ValueError, match=r"eval_results.json: entry 0 is not a valid EvalResult"):
        build_model_card(tmp_path, base_model="b", relation="merge")
    with pytest.raises(ValueError, match="relation must be one of"):
        build_model_card(tmp_path, base_model="b", relation="finetune")


def test_datasets_default_to_those_of_the_recipe(tmp_path):
    from chatmusician_hf.data.corpus import CORPUS_LICENSE_NOTE

    recipe = {
        "dataset_name": "music21",
        "datasets": [{"path": "m-a-p/MusicPile", "split": "train"}],
        "max_steps": 5,
    }
    card = build_model_card(tmp_path, base_model="b", relation="adapter", recipe=recipe, write=False)
    assert card.data.datasets == ["music21", "m-a-p/MusicPile"]
    assert CORPUS_LICENSE_NOTE in card.text and not (tmp_path / "README.md").exists()
