"""lm-evaluation-harness: the MusicTheoryBench tasks agree with the runner's ppl mode; the MMLU command's wiring."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

lm_eval = pytest.importorskip("lm_eval")

from lm_eval.models.huggingface import HFLM  # noqa: E402
from lm_eval.tasks import TaskManager  # noqa: E402

from chatmusician_hf import cli  # noqa: E402
from chatmusician_hf.configs import RecipeError  # noqa: E402
from chatmusician_hf.eval import harness, prompts  # noqa: E402
from chatmusician_hf.eval.bench_data import load_bench  # noqa: E402
from chatmusician_hf.eval.ppl_scoring import score_questions  # noqa: E402
from chatmusician_hf.model_loader import load_model  # noqa: E402

FIXTURE = Path(__file__).parent / "fixtures" / "music_theory_bench" / "single_split.jsonl"
TASKS_DIR = harness.LM_EVAL_TASKS_DIR


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    return load_model(str(tiny_model_dir), device="cpu")


@pytest.fixture(scope="module")
def task_manager():
    # Only this package's tasks: indexing lm-eval's thousands of built-in task files costs tens of seconds.
    return TaskManager(
        include_path=str(TASKS_DIR), include_defaults=False, metadata={"dataset_source": str(FIXTURE)}
    )


def harness_predictions(samples: list[dict]) -> dict[str, str]:
    """Question id -> the letter lm-eval's `acc` chose (highest loglikelihood of " X" after the prompt)."""
    chosen = {}
    for sample in samples:
        logliks = [loglik for loglik, _ in sample["filtered_resps"]]
        chosen[sample["doc"]["id"]] = prompts.LETTERS[max(range(4), key=logliks.__getitem__)]
    return chosen


@pytest.mark.parametrize("shots, limit", [(0, None), (5, 4)])
def test_harness_task_reports_the_runners_ppl_accuracy(tiny, task_manager, shots, limit):
    group = "music_theory_bench" if shots == 0 else "music_theory_bench_5shot"
    suffix = "" if shots == 0 else "_5shot"
    out = lm_eval.simple_evaluate(
        model=HFLM(pretrained=tiny.model, tokenizer=tiny.tokenizer, batch_size=8),
        tasks=[group],
        task_manager=task_manager,
        limit=limit,
        log_samples=True,
        bootstrap_iters=0,
    )

    bench = load_bench(str(FIXTURE))
    per_subject = {
        s: [r for r in bench.test if r["subject"] == s][:limit] for s in ("knowledge", "reasoning")
    }
    questions = per_subject["knowledge"] + per_subject["reasoning"]
    scored = score_questions(
        tiny.model, tiny.tokenizer, [prompts.ppl_candidates(r, bench.dev[:shots]) for r in questions]
    )
    runner = {row["id"]: prompts.LETTERS[s.best] for row, s in zip(questions, scored, strict=True)}

    harness_choice = {}
    for subject, rows in per_subject.items():
        task = f"music_theory_bench_{subject}{suffix}"
        harness_choice |= harness_predictions(out["samples"][task])
        runner_accuracy = sum(runner[r["id"]] == r["answer"] for r in rows) / len(rows)
        assert out["results"][task]["acc,none"] == pytest.approx(runner_accuracy)
    assert harness_choice == runner  # the same option for every question, not only the same count
    overall = sum(runner[r["id"]] == r["answer"] for r in questions) / len(questions)
    assert out["results"][group]["acc,none"] == pytest.approx(overall)


def test_harness_prompt_is_the_runners_prompt(task_manager):
    """The 5-shot context lm-eval builds is byte for byte the runner's context (same exemplars, same order)."""
    task = task_manager.load(["music_theory_bench_reasoning_5shot"])["tasks"][
        "music_theory_bench_reasoning_5shot"
    ]
    bench = load_bench(str(FIXTURE), subject="reasoning")
    doc = next(iter(task.test_docs()))
    assert task.fewshot_context(doc, num_fewshot=5) == prompts.ppl_context(bench.test[0], bench.dev)


MMLU_DEV = [
    ("What is the boiling point of water at sea level in degrees Celsius?", ["90", "100", "110", "120"], 1),
    ("Which planet is closest to the Sun?", ["Venus", "Earth", "Mercury", "Mars"], 2),
    ("What is 7 times 8?", ["54", "56", "58", "64"], 1),
    (
        "Which gas do plants take in for photosynthesis?",
        ["Oxygen", "Nitrogen", "Carbon dioxide", "Helium"],
        2,
    ),
    ("Who wrote 'Hamlet'?", ["William Shakespeare", "Jane Austen", "Homer", "Dante"], 0),
]
MMLU_TEST = [
    ("What is the chemical symbol for gold?", ["Ag", "Au", "Gd", "Go"], 1),
    ("How many sides does a hexagon have?", ["Five", "Six", "Seven", "Eight"], 1),
    ("Which ocean is the largest?", ["Atlantic", "Indian", "Arctic", "Pacific"], 3),
    ("What is the square root of 81?", ["7", "8", "9", "10"], 2),
]


def write_mmlu_shaped_task(folder: Path) -> None:
    """A four-question task in MMLU's own format: lm-eval's MMLU template, data from local files."""
    template = Path(lm_eval.__file__).parent / "tasks" / "mmlu" / "default" / "_default_template_yaml"
    assert template.is_file()
    for split, rows in (("dev", MMLU_DEV), ("test", MMLU_TEST)):
        (folder / f"{split}.jsonl").write_text(
            "".join(
                json.dumps({"question": q, "subject": "general", "choices": c, "answer": a}) + "\n"
                for q, c, a in rows
            )
        )
    (folder / "mmlu_tiny.yaml").write_text(
        f"include: {template}\n"
        "task: mmlu_tiny\n"
        "dataset_path: json\n"
        "dataset_kwargs:\n"
        "  data_files:\n"
        f"    dev: {folder / 'dev.jsonl'}\n"
        f"    test: {folder / 'test.jsonl'}\n"
    )


def test_mmlu_command_wiring_on_a_local_mmlu_shaped_task(tiny_model_dir, tmp_path):
    from huggingface_hub import EvalResult

    tasks_dir = tmp_path / "tasks"
    tasks_dir.mkdir()
    write_mmlu_shaped_task(tasks_dir)
    out_dir = tmp_path / "out"
    code = cli.main(
        [
            "eval",
            "mmlu",
            "--model",
            str(tiny_model_dir),
            "--tasks",
            "mmlu_tiny",
            "--include_path",
            str(tasks_dir),
            "--include_defaults",
            "false",
            "--output_dir",
            str(out_dir),
            "--batch_size",
            "4",
        ]
    )
    assert code == 0
    report = json.loads((out_dir / "lm_eval_mmlu_tiny_5shot.json").read_text())
    assert report["n-shot"] == {"mmlu_tiny": 5} and report["n-samples"]["mmlu_tiny"]["effective"] == 4
    accuracy = report["results"]["mmlu_tiny"]["acc,none"]
    assert accuracy in (0.0, 0.25, 0.5, 0.75, 1.0)
    (row,) = json.loads((out_dir / "eval_results.json").read_text())
    assert row["metric_value"] == pytest.approx(accuracy) and row["metric_config"] == "lm-eval_5shot"
    assert isinstance(EvalResult(**row), EvalResult)


def test_mmlu_command_rejects_unknown_tasks_before_loading_the_model(tmp_path):
    with pytest.raises(RecipeError, match="Unknown lm-eval task"):
        harness.main(
            harness.HarnessArguments(
                model=str(tmp_path / "never-loaded"), tasks="mmlu_does_not_exist", include_defaults=False
            )
        )
