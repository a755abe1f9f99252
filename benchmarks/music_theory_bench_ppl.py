"""Perplexity-mode MusicTheoryBench: one forward pass per question against the four-pass baseline.

The test-split fixture (tests/fixtures/music_theory_bench, NOT the benchmark) is repeated to about the benchmark's
size (~370 questions) and scored twice in the same process, alternating, with the same model and batch size:

- baseline: every candidate ``... Answer: X`` is its own sequence (four sequences per question), as the paper does;
- one-pass: one sequence per question, the shared prefix, whose last logits give all four letters' losses.

It checks that both pick the same option for every question and prints the times and the ratio.

    python benchmarks/music_theory_bench_ppl.py                 # builds the tiny model in a temp folder (~30 s)
    python benchmarks/music_theory_bench_ppl.py --model PATH --shots 5 --batch_size 8
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

FIXTURE = (
    Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "music_theory_bench" / "single_split.jsonl"
)


def repeated_questions(rows: list[dict], n: int) -> list[dict]:
    return [{**rows[i % len(rows)], "id": f"{rows[i % len(rows)]['id']}#{i // len(rows)}"} for i in range(n)]


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model", help="Model folder or Hub ID (default: build the tiny model in a temp folder)."
    )
    parser.add_argument("--questions", type=int, default=370, help="Questions after repeating the fixture.")
    parser.add_argument("--shots", type=int, default=0, help="Dev exemplars per prompt (0 or 5).")
    parser.add_argument("--batch_size", type=int, default=8, help="Sequences per forward pass, both methods.")
    parser.add_argument(
        "--repeats", type=int, default=2, help="Alternating timed runs of each method; best kept."
    )
    args = parser.parse_args()

    import torch

    from chatmusician_hf.eval.bench_data import load_bench
    from chatmusician_hf.eval.ppl_scoring import SHARED_PREFIX, score_questions
    from chatmusician_hf.eval.prompts import ppl_candidates
    from chatmusician_hf.model_loader import load_model

    with tempfile.TemporaryDirectory() as tmp:
        model_path = args.model
        if model_path is None:
            from chatmusician_hf.tiny import InitTinyArguments
            from chatmusician_hf.tiny import main as init_tiny

            model_path = str(init_tiny(InitTinyArguments(output_dir=tmp)))
        loaded = load_model(model_path)
        bench = load_bench(str(FIXTURE))
        questions = repeated_questions(bench.test, args.questions)
        candidates = [ppl_candidates(row, bench.dev[: args.shots]) for row in questions]
        n_tokens = sum(len(loaded.tokenizer(c[0])["input_ids"]) for c in candidates)

        def run(shared: bool):
            return score_questions(
                loaded.model, loaded.tokenizer, candidates, args.batch_size, use_shared_prefix=shared
            )

        run(True)  # warm-up: first-call allocations and kernel selection
        baseline_times, fast_times = [], []
        for _ in range(args.repeats):
            seconds, baseline = timed(lambda: run(False))
            baseline_times.append(seconds)
            seconds, fast = timed(lambda: run(True))
            fast_times.append(seconds)

    same = [a.best for a in baseline] == [b.best for b in fast]
    max_diff = max(
        abs(x - y)
        for a, b in zip(baseline, fast, strict=True)
        for x, y in zip(a.scores, b.scores, strict=True)
    )
    one_pass = sum(s.path == SHARED_PREFIX for s in fast)
    base, quick = min(baseline_times), min(fast_times)
    device = next(loaded.model.parameters()).device
    print(
        f"model: {model_path} on {device} ({torch.get_num_threads()} threads); {len(questions)} questions, "
        f"{args.shots}-shot, ~{n_tokens // len(questions)} tokens per candidate, batch size {args.batch_size}"
    )
    print(f"questions scored in one pass: {one_pass}/{len(questions)}")
    print(
        f"four-pass baseline : {base:8.2f} s  ({len(questions) / base:7.1f} questions/s)  runs: "
        + ", ".join(f"{t:.2f}" for t in baseline_times)
    )
    print(
        f"one pass/question  : {quick:8.2f} s  ({len(questions) / quick:7.1f} questions/s)  runs: "
        + ", ".join(f"{t:.2f}" for t in fast_times)
    )
    print(
        f"speed-up           : {base / quick:8.2f}x   identical predictions: {same}   "
        f"max |score difference|: {max_diff:.2e}"
    )
    if not same:
        raise SystemExit("predictions differ between the two methods")


if __name__ == "__main__":
    main()
