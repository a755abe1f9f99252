"""``chatmusician-hf eval mmlu``: lm-evaluation-harness tasks (MMLU 5-shot by default) on a chatmusician-hf model.

ChatMusician checks that music training kept the base model's general knowledge with MMLU 5-shot. This runs
lm-eval's own ``mmlu`` group (data: ``cais/mmlu`` from the Hub, 57 subjects, first-5 dev exemplars) through
``lm_eval.simple_evaluate`` on an ``HFLM`` wrapped around the loaded model, so adapters and local folders work the
same way as in the MusicTheoryBench runner. Any other lm-eval task or group can be named with ``--tasks``; the
MusicTheoryBench tasks of this package (``music_theory_bench``, ``music_theory_bench_5shot``) are always on the
include path.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..configs import RecipeError
from ..model_loader import load_model
from .eval_results import PROJECT_URL, eval_result, results_dir, write_eval_results

LM_EVAL_TASKS_DIR = Path(__file__).resolve().parent / "lm_eval_tasks"
# The datasets behind the tasks this command is meant for, for the model-index; others fall back to the task name.
DATASET_NAMES = {"cais/mmlu": "MMLU", "m-a-p/MusicTheoryBench": "MusicTheoryBench"}


@dataclass
class HarnessArguments:
    model: str = field(metadata={"help": "Model to evaluate: a Hub ID or a local folder."})
    adapter: str | None = field(
        default=None, metadata={"help": "Optional PEFT adapter (Hub ID or folder) on the model."}
    )
    revision: str | None = field(
        default=None, metadata={"help": "Model revision (branch, tag or commit) on the Hub."}
    )
    tasks: str = field(default="mmlu", metadata={"help": "Comma-separated lm-eval task or group names."})
    num_fewshot: int = field(
        default=5, metadata={"help": "Few-shot exemplars per question (MMLU's standard: 5)."}
    )
    batch_size: int = field(
        default=8, metadata={"help": "Batch size of the harness's loglikelihood requests."}
    )
    limit: float | None = field(
        default=None,
        metadata={"help": "Questions per task: a count, or a fraction below 1 (smoke tests only)."},
    )
    include_path: str | None = field(
        default=None,
        metadata={"help": "Extra folder of lm-eval task YAMLs (this package's tasks are always included)."},
    )
    include_defaults: bool = field(
        default=True,
        metadata={
            "help": "Index lm-eval's built-in tasks (needed for mmlu). Turn off when every task named comes "
            "from --include_path or this package: startup then skips indexing thousands of task files."
        },
    )
    output_dir: str | None = field(
        default=None,
        metadata={
            "help": "Where to write the report and eval_results.json (default: the model folder when local, "
            "else outputs/eval/<model>)."
        },
    )
    dtype: str = field(
        default="auto", metadata={"help": "auto (bf16 on GPU, fp32 on CPU), float32, bfloat16, float16."}
    )
    device: str = field(
        default="auto", metadata={"help": "Device: auto (cuda when available, else cpu), cpu, cuda, cuda:1..."}
    )


def _task_dataset(results: dict, name: str) -> str:
    """The Hub dataset behind a task or group (a group takes its first subtask's)."""
    configs = results.get("configs", {})
    if name in configs:
        return configs[name].get("dataset_path") or name
    for subtask in results.get("group_subtasks", {}).get(name, []):
        found = _task_dataset(results, subtask)
        if found != subtask:
            return found
    return name


def harness_eval_results(results: dict, tasks: list[str], num_fewshot: int) -> list[dict]:
    rows = []
    for name in tasks:
        metrics = results["results"].get(name, {})
        if "acc,none" not in metrics:
            continue
        dataset = _task_dataset(results, name)
        rows.append(
            eval_result(
                task_type="multiple-choice",
                task_name=f"{name} ({num_fewshot}-shot, lm-evaluation-harness)",
                dataset_type=dataset,
                dataset_name=DATASET_NAMES.get(dataset, name),
                dataset_config=name,
                dataset_split="test",
                metric_type="accuracy",
                metric_name=f"Accuracy ({num_fewshot}-shot)",
                metric_config=f"lm-eval_{num_fewshot}shot",
                metric_value=round(float(metrics["acc,none"]), 4),
                metric_args={"num_fewshot": num_fewshot},
                source_name="lm-evaluation-harness (chatmusician-hf eval mmlu)",
                source_url=PROJECT_URL,
            )
        )
    return rows


def main(args: HarnessArguments) -> dict:
    try:
        import lm_eval
        from lm_eval.models.huggingface import HFLM
        from lm_eval.tasks import TaskManager
    except ImportError as err:
        raise RecipeError(
            "lm-eval is not installed: pip install 'chatmusician-hf[eval]' (or 'lm-eval')."
        ) from err

    tasks = [task.strip() for task in args.tasks.split(",") if task.strip()]
    include = [str(LM_EVAL_TASKS_DIR)] + ([args.include_path] if args.include_path else [])
    task_manager = TaskManager(include_path=include, include_defaults=args.include_defaults)
    unknown = [task for task in tasks if task not in task_manager.all_tasks]
    if unknown:
        raise RecipeError(f"Unknown lm-eval task(s) {unknown}; check the names or --include_path.")
    loaded = load_model(args.model, args.adapter, revision=args.revision, dtype=args.dtype, device=args.device)
    lm = HFLM(pretrained=loaded.model, tokenizer=loaded.tokenizer, batch_size=args.batch_size)
    try:
        results = lm_eval.simple_evaluate(
            model=lm,
            tasks=tasks,
            num_fewshot=args.num_fewshot,
            limit=args.limit,
            task_manager=task_manager,
            log_samples=False,
        )
    except (ConnectionError, OSError) as err:
        raise RecipeError(
            f"lm-eval could not load the data of {tasks}: {err}. MMLU comes from the Hub dataset cais/mmlu; run once "
            "with network access so it is cached, or point --include_path at task YAMLs that read local files."
        ) from err

    output_dir = results_dir(args.model, args.adapter, args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    report = {
        "tasks": tasks,
        "num_fewshot": args.num_fewshot,
        "limit": args.limit,
        "model": loaded.info,
        "results": results["results"],
        "groups": results.get("groups", {}),
        "versions": results.get("versions", {}),
        "n-shot": results.get("n-shot", {}),
        "n-samples": results.get("n-samples", {}),
        "lm_eval_version": getattr(lm_eval, "__version__", None),
    }
    report_path = output_dir / f"lm_eval_{'_'.join(tasks)}_{args.num_fewshot}shot.json"
    report_path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    results_path = write_eval_results(output_dir, harness_eval_results(results, tasks, args.num_fewshot))
    from lm_eval.utils import make_table

    print(make_table(results))
    print(f"[eval] wrote {report_path} and {results_path}")
    report["report_path"], report["eval_results_path"] = str(report_path), str(results_path)
    return report
