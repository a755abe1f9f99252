"""The MusicTheoryBench runner: data loading, the paper's prompt, one-pass ppl scoring, reports, gen mode, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from chatmusician_hf import cli
from chatmusician_hf.errors import ModelLoadError
from chatmusician_hf.eval import prompts
from chatmusician_hf.eval.bench_data import BenchDataError, load_bench
from chatmusician_hf.eval.music_theory_bench import MusicTheoryBenchArguments, main
from chatmusician_hf.eval.ppl_scoring import FULL_SEQUENCES, SHARED_PREFIX, score_questions, shared_prefix
from chatmusician_hf.model_loader import load_model

FIXTURES = Path(__file__).parent / "fixtures" / "music_theory_bench"
TWO_SPLITS = FIXTURES / "two_splits"
SINGLE_SPLIT = FIXTURES / "single_split.jsonl"


@pytest.fixture(scope="module")
def bench():
    return load_bench(str(TWO_SPLITS))


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    return load_model(str(tiny_model_dir), device="cpu")


def naive_mean_ce(model, tokenizer, texts):
    """The paper's computation with nothing shared: Hugging Face's own loss on each full sequence, one at a time."""
    losses = []
    with torch.no_grad():
        for text in texts:
            ids = torch.tensor([tokenizer(text)["input_ids"]])
            losses.append(float(model(input_ids=ids, labels=ids).loss))
    return losses


# --- data ---------------------------------------------------------------------------------------------------------


def test_both_split_layouts_load_the_same_questions(bench):
    single = load_bench(str(SINGLE_SPLIT))
    assert (len(bench.dev), len(bench.test)) == (5, 30)
    assert [r["id"] for r in single.dev] == [r["id"] for r in bench.dev] == [f"dev-0{i}" for i in range(1, 6)]
    assert single.test == bench.test
    assert set(bench.test[0]["options"]) == {"A", "B", "C", "D"}
    reasoning = load_bench(str(SINGLE_SPLIT), subject="reasoning")
    assert len(reasoning.test) == 10 and len(reasoning.dev) == 5  # the exemplars stay whole


def test_missing_columns_fail_with_the_file_and_column(tmp_path):
    broken = tmp_path / "broken.jsonl"
    rows = [json.loads(line) for line in SINGLE_SPLIT.read_text().splitlines()]
    broken.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "answer"}) + "\n" for r in rows))
    with pytest.raises(BenchDataError, match=r"broken\.jsonl.*missing column\(s\) \['answer'\]"):
        load_bench(str(broken))
    bad_answer = tmp_path / "bad.jsonl"
    bad_answer.write_text(json.dumps({**rows[6], "answer": "E"}) + "\n")
    with pytest.raises(BenchDataError, match=r"bad\.jsonl.*row 0.*'answer' must be one of A-D"):
        load_bench(str(bad_answer))


def test_unreachable_hub_and_missing_paths_explain_what_to_do(tmp_path):
    # conftest sets HF_HUB_OFFLINE / HF_DATASETS_OFFLINE: the Hub ID cannot be fetched here
    with pytest.raises(BenchDataError, match=r"m-a-p/MusicTheoryBench.*--dataset"):
        load_bench("m-a-p/MusicTheoryBench")
    with pytest.raises(BenchDataError, match="not found"):
        load_bench(str(tmp_path / "nowhere.jsonl"))


# --- prompt -------------------------------------------------------------------------------------------------------


def test_paper_prompt_literally_on_a_row_with_an_abc_score(bench):
    row = next(r for r in bench.test if r["id"] == "test-22")
    assert row["abc_score"] and row["stem"].startswith(prompts.EXAMPLE_SENTENCE)
    expected = (
        "Read the following questions from the four options (A, B, C and D) given in each question. "
        "Choose the best option.\n"
        "In which key is this melody written?\n"
        "X:3\nT:Fixture air\nM:3/4\nL:1/4\nK:F\nF A c|B G E|F3|]\n"
        "A. G major\nB. D major\nC. C major\nD. F major\n"
        "Answer:"
    )
    assert prompts.ppl_context(row) == expected
    assert prompts.ppl_candidates(row) == [expected + " A", expected + " B", expected + " C", expected + " D"]


def test_five_shot_prompt_puts_solved_dev_items_first(bench):
    row = bench.test[0]
    context = prompts.ppl_context(row, bench.dev)
    blocks = context.split("\n\n")
    assert blocks[0].startswith(prompts.INSTRUCTION + "\nHow many semitones are in a perfect fifth?")
    assert [b.rsplit("\n", 1)[-1] for b in blocks[:5]] == [f"Answer: {r['answer']}" for r in bench.dev]
    assert blocks[5] == prompts.question_block(row)


def test_gen_prompt_uses_the_chatmusician_format(bench):
    row = bench.test[0]
    prompt = prompts.gen_prompt(row, bench.dev[:2], role_play=True, chain_of_thought=True)
    assert prompt.startswith("Human: " + prompts.ROLE_PLAY_PREFIX + prompts.INSTRUCTION)
    assert prompt.endswith(prompts.COT_SUFFIX + " </s> Assistant: ")
    # the exemplars are earlier turns whose answers end in the format the metric extracts
    assert prompt.count(" </s> Assistant: ") == 3
    assert f"{bench.dev[0]['analysis']} The answer is (C). </s>" in prompt


# --- ppl scoring --------------------------------------------------------------------------------------------------


def test_shared_prefix_detection():
    assert shared_prefix([[1, 2, 3], [1, 2, 4], [1, 2, 5], [1, 2, 6]]) == [1, 2]
    assert shared_prefix([[1, 2, 3], [1, 7, 4]]) is None  # differs before the last token
    assert shared_prefix([[1, 2, 3], [1, 2, 3, 4]]) is None  # the letter took two tokens
    assert shared_prefix([[1, 2, 3], [1, 2, 3]]) is None  # candidates must differ


@pytest.mark.parametrize("shots", [0, 5])
def test_one_pass_scores_equal_the_four_sequence_computation(tiny, bench, shots):
    # a sample with and without ABC excerpts; the naive reference costs four full passes per question
    questions = bench.test[10:22] if shots == 0 else bench.test[20:24]
    candidates = [prompts.ppl_candidates(row, bench.dev[:shots]) for row in questions]
    fast = score_questions(tiny.model, tiny.tokenizer, candidates, batch_size=8)
    assert {s.path for s in fast} == {SHARED_PREFIX}
    naive = [naive_mean_ce(tiny.model, tiny.tokenizer, texts) for texts in candidates]
    for one_pass, reference in zip(fast, naive, strict=True):
        assert one_pass.scores == pytest.approx(reference, abs=1e-4)
        assert one_pass.best == min(range(4), key=reference.__getitem__)


def test_batch_size_does_not_change_results(tiny, bench):
    candidates = [prompts.ppl_candidates(row) for row in bench.test[:16]]
    runs = {
        size: score_questions(tiny.model, tiny.tokenizer, candidates, batch_size=size) for size in (1, 3, 16)
    }
    for size in (3, 16):
        assert [s.best for s in runs[size]] == [s.best for s in runs[1]]
        for a, b in zip(runs[size], runs[1], strict=True):
            assert a.scores == pytest.approx(b.scores, abs=1e-5)


def test_candidates_without_a_shared_prefix_fall_back_to_full_sequences(tiny, bench):
    # Word answers tokenize to different lengths, as a letter merged into the preceding token would.
    row = bench.test[8]
    context = prompts.ppl_context(row)
    words = [context + " major", context + " minor triad", context + " diminished", context + " augmented"]
    letters = prompts.ppl_candidates(bench.test[0])
    scored = score_questions(tiny.model, tiny.tokenizer, [words, letters], batch_size=4)
    assert [s.path for s in scored] == [FULL_SEQUENCES, SHARED_PREFIX]
    assert scored[0].scores == pytest.approx(naive_mean_ce(tiny.model, tiny.tokenizer, words), abs=1e-4)
    assert scored[1].scores == pytest.approx(naive_mean_ce(tiny.model, tiny.tokenizer, letters), abs=1e-4)


# --- the runner end to end ----------------------------------------------------------------------------------------


def test_ppl_run_writes_report_and_eval_results(tiny_model_dir, tmp_path, capsys):
    from huggingface_hub import EvalResult

    args = MusicTheoryBenchArguments(
        model=str(tiny_model_dir), dataset=str(SINGLE_SPLIT), output_dir=str(tmp_path)
    )
    report = main(args)
    saved = json.loads((tmp_path / "music_theory_bench_ppl_0shot.json").read_text())
    assert saved["results"] == report["results"]
    questions = saved["questions"]
    assert (
        len(questions) == 30 and saved["settings"]["mode"] == "ppl" and saved["model"]["revision"] == "local"
    )
    for q in questions:
        assert q["prediction"] == min(q["scores"], key=q["scores"].get) == q["extracted"]
        assert q["correct"] == (q["prediction"] == q["answer"])
    by_subject = {
        s: [q["correct"] for q in questions if q["subject"] == s] for s in ("knowledge", "reasoning")
    }
    assert saved["results"]["accuracy"] == pytest.approx(sum(q["correct"] for q in questions) / 30)
    assert saved["results"]["reasoning_accuracy"] == pytest.approx(sum(by_subject["reasoning"]) / 10)
    rows = json.loads((tmp_path / "eval_results.json").read_text())
    assert [r["dataset_config"] for r in rows] == ["knowledge", "reasoning", "all"]
    assert rows[2]["metric_value"] == pytest.approx(saved["results"]["accuracy"], abs=1e-4)
    assert all(isinstance(EvalResult(**r), EvalResult) for r in rows)
    assert "overall" in capsys.readouterr().out

    # a second protocol adds its rows; rerunning one replaces its rows instead of duplicating them
    reasoning_only = MusicTheoryBenchArguments(
        model=str(tiny_model_dir),
        dataset=str(SINGLE_SPLIT),
        output_dir=str(tmp_path),
        subject="reasoning",
        limit=3,
    )
    main(reasoning_only)
    main(reasoning_only)
    rows = json.loads((tmp_path / "eval_results.json").read_text())
    assert sorted(r["metric_config"] for r in rows) == sorted(
        [
            "ppl_0shot_knowledge",
            "ppl_0shot_reasoning",
            "ppl_0shot",
            "ppl_0shot_reasoning_reasoning",
            "ppl_0shot_reasoning",
        ]
    )


def test_gen_mode_extracts_with_the_metric(tiny_model_dir, tmp_path):
    report = main(
        MusicTheoryBenchArguments(
            model=str(tiny_model_dir),
            dataset=str(TWO_SPLITS),
            output_dir=str(tmp_path),
            mode="gen",
            shots=5,
            chain_of_thought=True,
            limit=3,
            max_new_tokens=6,
            batch_size=2,
        )
    )
    questions = report["questions"]
    assert len(questions) == 3 and report["settings"]["tag"] == "gen_5shot_cot"
    assert all(
        q["prompt"].endswith(" </s> Assistant: ") and q["prompt"].count("Human: ") == 6 for q in questions
    )
    # an untrained model's text rarely holds an answer: unextracted ones are counted and scored wrong
    unextracted = sum(q["extracted"] is None for q in questions)
    assert report["results"]["unextracted"] == unextracted
    assert report["results"]["correct"] == sum(q["extracted"] == q["answer"] for q in questions)


def test_bad_model_path_and_dataset_fail_cleanly(tmp_path, tiny_model_dir, capsys):
    with pytest.raises(ModelLoadError, match="Model path does not exist"):
        load_model(str(tmp_path / "no-such-model"))
    code = cli.main(
        [
            "eval",
            "music-theory-bench",
            "--model",
            str(tmp_path / "no-such-model"),
            "--dataset",
            str(SINGLE_SPLIT),
        ]
    )
    assert code == 2 and "Model path does not exist" in capsys.readouterr().err
    no_options = tmp_path / "no_options.jsonl"
    no_options.write_text(json.dumps({"id": "1", "stem": "?", "subject": "knowledge", "answer": "A"}) + "\n")
    code = cli.main(
        ["eval", "music-theory-bench", "--model", str(tiny_model_dir), "--dataset", str(no_options)]
    )
    assert code == 2 and "missing column(s) ['options']" in capsys.readouterr().err
    code = cli.main(
        [
            "eval",
            "music-theory-bench",
            "--model",
            str(tiny_model_dir),
            "--dataset",
            str(SINGLE_SPLIT),
            "--shots",
            "6",
        ]
    )
    assert code == 2 and "--shots 6 needs that many dev exemplars" in capsys.readouterr().err


def test_cli_help_and_unknown_benchmark(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["eval", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "music-theory-bench" in out and "mmlu" in out
    assert cli.main(["eval", "gsm8k"]) == 2
    assert "unknown benchmark 'gsm8k'" in capsys.readouterr().err
    assert cli.main(["eval", "music-theory-bench", "--model", "x", "--shot", "5"]) == 2
    assert "Did you mean '--shots'" in capsys.readouterr().err
