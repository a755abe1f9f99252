"""``eval_results.json``: evaluation results as a list of ``huggingface_hub.EvalResult`` fields.

The model-card code reads this file from a model folder to fill the card's ``model-index``. Writing merges with
an existing file: a result for the same dataset, config, split and metric config replaces the old one.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

EVAL_RESULTS_FILE = "eval_results.json"
# EvalResult wants a URL with every source name; results come from this project's commands.
PROJECT_URL = "https://github.com/chatmusician-hf/chatmusician-hf"
_IDENTITY = ("task_type", "dataset_type", "dataset_config", "dataset_split", "metric_type", "metric_config")


def eval_result(**fields) -> dict:
    """One result, checked by ``EvalResult`` itself (it rejects missing or inconsistent fields)."""
    from huggingface_hub import EvalResult

    result = dataclasses.asdict(EvalResult(**fields))
    return {key: value for key, value in result.items() if value is not None}


def write_eval_results(output_dir: str | Path, results: list[dict]) -> Path:
    path = Path(output_dir) / EVAL_RESULTS_FILE
    existing = json.loads(path.read_text()) if path.is_file() else []
    if not isinstance(existing, list):
        raise ValueError(
            f"{path}: expected a JSON list of EvalResult dicts, found {type(existing).__name__}."
        )
    identities = {tuple(r.get(k) for k in _IDENTITY) for r in results}
    merged = [r for r in existing if tuple(r.get(k) for k in _IDENTITY) not in identities] + results
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(merged, indent=2) + "\n")
    return path


def results_dir(model: str, adapter: str | None = None, output_dir: str | None = None) -> Path:
    """Where a run's files go: ``output_dir``, else the evaluated folder (so the model card finds them), else
    ``outputs/eval/<hub id>``."""
    if output_dir:
        return Path(output_dir)
    evaluated = adapter or model
    if Path(evaluated).is_dir():
        return Path(evaluated)
    return Path("outputs/eval") / evaluated.replace("/", "__")
