"""``chatmusician-hf eval music-theory-bench``: the paper's MusicTheoryBench protocol on any causal LM.

- ``--mode ppl`` (the paper's numbers): each question's four candidates ``... Answer: X`` are scored by mean token
  cross-entropy and the lowest wins; one forward pass per question (see ``ppl_scoring.py``).
- ``--mode gen``: the model answers in the ChatMusician chat format, optionally with a role-play prompt and chain of
  thought, and the metric's extraction rules read the letter from the reply.

Both modes hand their predictions to the ``evaluate`` metric ``chatmusician_hf/metrics/music_theory_bench.py`` (the
script published as the Hub metric), write a JSON report and ``eval_results.json`` (for the model card's
``model-index``), and print a table.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Literal

from ..metrics import load_metric
from ..model_loader import load_model
from .bench_data import HUB_ID, SUBJECTS, BenchDataError, load_bench
from .eval_results import PROJECT_URL, eval_result, results_dir, write_eval_results
from .ppl_scoring import score_questions
from .prompts import LETTERS, gen_prompt, ppl_candidates


@dataclass
class MusicTheoryBenchArguments:
    model: str = field(metadata={"help": "Model to evaluate: a Hub ID or a local folder."})
    adapter: str | None = field(
        default=None, metadata={"help": "Optional PEFT adapter (Hub ID or folder) on the model."}
    )
    revision: str | None = field(
        default=None, metadata={"help": "Model revision (branch, tag or commit) on the Hub."}
    )
    dataset: str = field(
        default=HUB_ID,
        metadata={
            "help": "Benchmark: a Hub dataset ID, a local folder (dev/test files or one file) or one "
            ".jsonl/.json/.csv/.parquet file in the MusicTheoryBench schema."
        },
    )
    dataset_revision: str | None = field(default=None, metadata={"help": "Dataset revision on the Hub."})
    mode: Literal["ppl", "gen"] = field(
        default="ppl",
        metadata={
            "help": "ppl: lowest mean cross-entropy of 'Answer: X' (the paper). gen: generate and extract."
        },
    )
    shots: int = field(
        default=0, metadata={"help": "Number of dev exemplars before each question (paper: 0 or 5)."}
    )
    subject: Literal["knowledge", "reasoning"] | None = field(
        default=None, metadata={"help": "Evaluate one subject only (default: both)."}
    )
    batch_size: int = field(
        default=8, metadata={"help": "Questions per forward pass (ppl) or per generate call (gen)."}
    )
    max_length: int | None = field(
        default=None,
        metadata={
            "help": "Keep at most this many final tokens of each ppl sequence (default: the model's context)."
        },
    )
    chain_of_thought: bool = field(
        default=False,
        metadata={"help": "gen mode: ask for step-by-step reasoning ending in 'The answer is (X)'."},
    )
    role_play: bool = field(
        default=False, metadata={"help": "gen mode: open the question with a music-expert role."}
    )
    max_new_tokens: int = field(default=256, metadata={"help": "gen mode: most tokens generated per answer."})
    do_sample: bool = field(
        default=False,
        metadata={
            "help": "gen mode: sample with ChatMusician's settings (temperature 0.2, top_k 40, top_p 0.9) "
            "instead of greedy decoding."
        },
    )
    limit: int | None = field(
        default=None, metadata={"help": "Evaluate only the first N test questions (smoke tests)."}
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
    metric_path: str | None = field(
        default=None,
        metadata={
            "help": "A music_theory_bench evaluate metric folder or script to score with (default: the packaged one)."
        },
    )


def settings_tag(args: MusicTheoryBenchArguments) -> str:
    """A short, file-name-safe description of the protocol, e.g. ``ppl_5shot`` or ``gen_0shot_cot_roleplay``."""
    parts = [args.mode, f"{args.shots}shot"]
    if args.mode == "gen" and args.chain_of_thought:
        parts.append("cot")
    if args.mode == "gen" and args.role_play:
        parts.append("roleplay")
    if args.subject:
        parts.append(args.subject)
    return "_".join(parts)


def predict_ppl(loaded, questions, exemplars, args) -> list[dict]:
    candidates = [ppl_candidates(row, exemplars) for row in questions]
    max_length = args.max_length or getattr(loaded.model.config, "max_position_embeddings", None)
    scored = score_questions(
        loaded.model, loaded.tokenizer, candidates, args.batch_size, max_length=max_length
    )
    return [
        {
            "prediction": LETTERS[s.best],
            "scores": dict(zip(LETTERS, s.scores, strict=True)),
            "scoring": s.path,
        }
        for s in scored
    ]


def predict_gen(loaded, questions, exemplars, args) -> list[dict]:
    import torch
    from tqdm.auto import tqdm
    from transformers import GenerationConfig

    from ..chat_format import CHATMUSICIAN_GENERATION_DEFAULTS

    tokenizer, model = loaded.tokenizer, loaded.model  # the loader gave the tokenizer a pad token
    tokenizer.padding_side = "left"  # generation continues from the right edge of every row
    sampling = {
        k: CHATMUSICIAN_GENERATION_DEFAULTS[k]
        for k in ("temperature", "top_k", "top_p", "repetition_penalty")
    }
    config = GenerationConfig(
        max_new_tokens=args.max_new_tokens,
        min_new_tokens=1,  # the model's own generation defaults (ChatMusician's: 10) would otherwise apply
        do_sample=args.do_sample,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **(sampling if args.do_sample else {}),
    )
    prompts = [gen_prompt(row, exemplars, args.role_play, args.chain_of_thought) for row in questions]
    outputs = []
    device = next(model.parameters()).device
    for start in tqdm(range(0, len(prompts), args.batch_size), desc="generating answers"):
        batch = prompts[start : start + args.batch_size]
        # The ChatMusician format has no BOS: the prompt text is the whole input.
        encoded = tokenizer(batch, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
        with torch.no_grad():
            generated = model.generate(**encoded, generation_config=config)
        new_tokens = generated[:, encoded["input_ids"].shape[1] :]
        outputs += tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
    return [{"prompt": p, "generated": text} for p, text in zip(prompts, outputs, strict=True)]


def accuracy_rows(results: dict) -> list[tuple[str, int, int, float]]:
    rows = [
        (s, results[f"{s}_correct"], results[f"{s}_total"], results[f"{s}_accuracy"])
        for s in SUBJECTS
        if f"{s}_total" in results
    ]
    rows.append(("overall", results["correct"], results["total"], results["accuracy"]))
    return rows


def format_table(report: dict) -> str:
    title = f"MusicTheoryBench ({report['settings']['tag']}) - {report['model']['model']}"
    lines = [title, f"{'subject':<10} {'correct':>7} {'total':>5} {'accuracy':>8}"]
    lines += [
        f"{name:<10} {correct:>7} {total:>5} {acc:>8.2%}"
        for name, correct, total, acc in accuracy_rows(report["results"])
    ]
    lines.append(
        f"unextracted answers: {report['results']['unextracted']} (scored wrong); random baseline: 25%"
    )
    return "\n".join(lines)


def eval_results_for(report: dict) -> list[dict]:
    """The report's accuracies as ``EvalResult`` fields, one per subject and one overall."""
    settings = report["settings"]
    rows = []
    for name, _, _, accuracy in accuracy_rows(report["results"]):
        rows.append(
            eval_result(
                task_type="multiple-choice",
                task_name=f"Music theory ({settings['mode']}, {settings['shots']}-shot)",
                dataset_type=report["dataset"]["id"],
                dataset_name="MusicTheoryBench",
                dataset_config=name if name != "overall" else "all",
                dataset_split="test",
                dataset_revision=report["dataset"]["revision"],
                metric_type="accuracy",
                metric_name=f"Accuracy ({name}, {settings['tag']})",
                metric_config=settings["tag"] if name == "overall" else f"{settings['tag']}_{name}",
                metric_value=round(accuracy, 4),
                metric_args={k: settings[k] for k in ("mode", "shots", "chain_of_thought", "role_play")},
                source_name="chatmusician-hf eval music-theory-bench",
                source_url=PROJECT_URL,
            )
        )
    return rows


def main(args: MusicTheoryBenchArguments) -> dict:
    bench = load_bench(args.dataset, args.dataset_revision, args.subject)
    if args.shots < 0 or args.shots > len(bench.dev):
        raise BenchDataError(
            f"--shots {args.shots} needs that many dev exemplars; {args.dataset} has {len(bench.dev)}."
        )
    questions = bench.test[: args.limit] if args.limit else bench.test
    exemplars = bench.dev[: args.shots]
    metric = load_metric("music_theory_bench", args.metric_path)
    loaded = load_model(args.model, args.adapter, revision=args.revision, dtype=args.dtype, device=args.device)

    start = time.perf_counter()
    predict = predict_ppl if args.mode == "ppl" else predict_gen
    outputs = predict(loaded, questions, exemplars, args)
    seconds = time.perf_counter() - start
    texts = [out.get("prediction", out.get("generated")) for out in outputs]
    results = metric.compute(
        predictions=texts,
        references=[row["answer"] for row in questions],
        subjects=[row["subject"] for row in questions],
        ids=[row["id"] for row in questions],
        options=[row["options"] for row in questions],
    )
    per_question = []
    for row, out in zip(questions, outputs, strict=True):
        extracted = metric.extract_answer(out.get("prediction", out.get("generated")), row["options"])
        per_question.append(
            {
                "id": row["id"],
                "subject": row["subject"],
                "answer": row["answer"],
                "extracted": extracted,
                "correct": extracted == row["answer"],
                **out,
            }
        )
    settings = {
        k: v for k, v in asdict(args).items() if k not in ("model", "adapter", "revision", "output_dir")
    }
    report = {
        "benchmark": "MusicTheoryBench",
        "dataset": {
            "id": args.dataset,
            "revision": args.dataset_revision,
            "test_questions": len(questions),
            "dev_exemplars": len(exemplars),
        },
        "model": loaded.info,
        "settings": {**settings, "tag": settings_tag(args)},
        "results": results,
        "seconds": round(seconds, 3),
        "questions": per_question,
    }
    output_dir = results_dir(args.model, args.adapter, args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    report_path = output_dir / f"music_theory_bench_{settings_tag(args)}.json"
    report_path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    results_path = write_eval_results(output_dir, eval_results_for(report))
    print(format_table(report))
    print(f"[eval] wrote {report_path} and {results_path}")
    report["report_path"], report["eval_results_path"] = str(report_path), str(results_path)
    return report
