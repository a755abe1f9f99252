"""The MusicTheoryBench `evaluate` metric: offline loading, hand-computed scores, every extraction rule, errors."""

from __future__ import annotations

import doctest
import importlib.util
import json
import socket
import subprocess
import sys
from pathlib import Path

import evaluate
import pytest

ROOT = Path(__file__).resolve().parents[1]
METRIC_DIR = ROOT / "evaluate_metrics" / "music_theory_bench"
FIXTURE = ROOT / "tests" / "fixtures" / "music_theory_bench" / "single_split.jsonl"


@pytest.fixture(scope="module")
def metric():
    return evaluate.load(str(METRIC_DIR))


@pytest.fixture(scope="module")
def test_rows():
    rows = [json.loads(line) for line in FIXTURE.read_text().splitlines()]
    return [row for row in rows if row["split"] == "test"]


def hand_made_predictions(rows):
    """Rows 0-9 right letters, 10-14 right via a statement, 15-19 wrong letters, 20-24 no answer,
    25-29 the right option's text (test-26's right option is the one-character 'g', too short for rule 5)."""
    predictions = []
    for i, row in enumerate(rows):
        if i < 10:
            predictions.append(row["answer"])
        elif i < 15:
            predictions.append(f"After some thought, the answer is ({row['answer']}).")
        elif i < 20:
            predictions.append("ABCD"[("ABCD".index(row["answer"]) + 1) % 4])
        elif i < 25:
            predictions.append("I am not sure about this one.")
        else:
            predictions.append(f"It must be {row['options'][row['answer']]}.")
    return predictions


def test_hand_computed_scores_on_fixture(metric, test_rows):
    # The fixture's test split: test-01..test-20 are knowledge, test-21..test-30 reasoning.
    assert [r["subject"] for r in test_rows] == ["knowledge"] * 20 + ["reasoning"] * 10
    results = metric.compute(
        predictions=hand_made_predictions(test_rows),
        references=[r["answer"] for r in test_rows],
        subjects=[r["subject"] for r in test_rows],
        ids=[r["id"] for r in test_rows],
        options=[r["options"] for r in test_rows],
    )
    # knowledge: 10 letters + 5 statements right, 5 wrong -> 15/20; reasoning: 5 unextracted, 'g' unextracted,
    # 4 option texts right -> 4/10; overall 19/30.
    assert results["knowledge_correct"] == 15 and results["knowledge_total"] == 20
    assert results["knowledge_accuracy"] == pytest.approx(0.75)
    assert results["reasoning_correct"] == 4 and results["reasoning_total"] == 10
    assert results["reasoning_accuracy"] == pytest.approx(0.4)
    assert results["correct"] == 19 and results["total"] == 30
    assert results["accuracy"] == pytest.approx(19 / 30)
    assert results["unextracted"] == 6
    assert results["unextracted_ids"] == [f"test-{i}" for i in range(21, 27)]
    assert results["wrong_ids"] == [f"test-{i}" for i in range(16, 27)]


def test_without_options_the_option_text_rule_is_off(metric, test_rows):
    results = metric.compute(
        predictions=hand_made_predictions(test_rows), references=[r["answer"] for r in test_rows]
    )
    assert results["correct"] == 15 and results["unextracted"] == 10
    assert "knowledge_accuracy" not in results and "wrong_ids" not in results


@pytest.mark.parametrize(
    "text, expected",
    [
        # rule 1: bare letter
        ("B", "B"),
        ("  (C). ", "C"),
        ("**D**", "D"),
        # rule 2: answer statement, last wins, note names excluded
        ("The answer is (B).", "B"),
        ("Answer: C", "C"),
        ("the answer would be option D because it resolves", "D"),
        ("The correct answer is **A**", "A"),
        ("Option A looks tempting, but the answer is C.", "C"),
        ("First I thought the answer is A; on reflection the answer is B.", "B"),
        # rule 3: leading letter with a delimiter
        ("A. Perfect fifth", "A"),
        ("(C) because the dominant resolves to the tonic", "C"),
        ("D) Augmented", "D"),
        # rule 4: exactly one parenthesised letter
        ("Counting semitones, (D) is right.", "D"),
    ],
)
def test_extraction_rules(metric, text, expected):
    assert metric.extract_answer(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "A perfect fifth spans seven semitones.",  # the article "A"
        "the answer is a perfect fifth",  # lower-case "a" is never an option letter
        "Answer: A minor",  # a key name, not option A
        "Answer: Bb",  # a note name with an accidental
        "I think B or C",  # two candidate letters, no commitment
        "Either (A) or (B).",  # two parenthesised letters
        "X:1\nT:Tune\nM:4/4\nK:D\nABcd efga|",  # ABC notes are letters too
        "",
        None,
    ],
)
def test_known_false_positives_extract_nothing(metric, text):
    assert metric.extract_answer(text) is None


def test_option_text_rule():
    options = {"A": "Major sixth", "B": "Minor sixth", "C": "Perfect fifth", "D": "Tritone"}
    module = _metric_module()
    assert module.extract_answer("It is a  MINOR sixth.", options) == "B"
    # two options quoted: ambiguous
    assert module.extract_answer("Not a major sixth but a minor sixth", options) is None
    # the option text must stand alone, not inside a longer word
    assert module.extract_answer("Tritones are rare", options) is None
    key_options = {"A": "A minor", "B": "E minor", "C": "C minor", "D": "D minor"}
    assert module.extract_answer("Answer: A minor", key_options) == "A"


def test_a_hub_user_loads_the_metric_without_chatmusician_hf(tmp_path):
    """The Hub metric's script needs only evaluate and datasets: it loads where chatmusician_hf cannot be imported."""
    code = (
        "import sys; sys.modules['chatmusician_hf'] = None  # import chatmusician_hf now fails\n"
        "import evaluate\n"
        f"metric = evaluate.load({str(METRIC_DIR)!r})\n"
        "print(metric.compute(predictions=['B', 'The answer is (C).'], references=['B', 'A'])['accuracy'])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "0.5"


def test_the_package_loads_its_own_copy_or_says_where_none_was_found(tmp_path):
    from chatmusician_hf.configs import RecipeError
    from chatmusician_hf.metrics import load_metric

    packaged = load_metric("music_theory_bench")
    assert packaged.compute(predictions=["The answer is (C)."], references=["C"])["accuracy"] == 1.0
    with pytest.raises(RecipeError, match=f"No music_theory_bench metric at {tmp_path}: expected music_theory_bench"):
        load_metric("music_theory_bench", tmp_path)


def _metric_module():
    spec = importlib.util.spec_from_file_location("mtb_metric_file", METRIC_DIR / "music_theory_bench.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_invalid_inputs_raise_clear_errors(metric):
    # evaluate checks the pairing before the metric runs; its message is as clear as ours
    with pytest.raises(ValueError, match=r"number of predictions \(2\) and references \(1\)"):
        metric.compute(predictions=["A", "B"], references=["A"])
    with pytest.raises(ValueError, match=r"index 1 is 'E'.*A, B, C, D"):
        metric.compute(predictions=["A", "B"], references=["A", "E"])
    with pytest.raises(ValueError, match=r"id 'q2'"):
        metric.compute(predictions=["A", "B"], references=["A", "b"], ids=["q1", "q2"])
    with pytest.raises(ValueError, match="Unknown subjects"):
        metric.compute(predictions=["A"], references=["A"], subjects=["harmony"])
    with pytest.raises(ValueError, match="`subjects` has 1 entries but there are 2"):
        metric.compute(predictions=["A", "B"], references=["A", "B"], subjects=["knowledge"])


EXACT_MATCH_METRIC = """
import datasets
import evaluate

class LetterExactMatch(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(description="exact match", citation="", inputs_description="",
            features=datasets.Features({"predictions": datasets.Value("string"), "references": datasets.Value("string")}))

    def _compute(self, predictions, references):
        return {"exact_match": sum(p == r for p, r in zip(predictions, references)) / len(references)}
"""


def test_combine_with_another_metric(metric, tmp_path):
    other_dir = tmp_path / "letter_exact_match"
    other_dir.mkdir()
    (other_dir / "letter_exact_match.py").write_text(EXACT_MATCH_METRIC)
    combined = evaluate.combine([metric, evaluate.load(str(other_dir))])
    results = combined.compute(predictions=["B", "The answer is (C).", "D"], references=["B", "C", "A"])
    # exact match sees the raw text; MusicTheoryBench extracts the letter from the second prediction
    assert results["exact_match"] == pytest.approx(1 / 3)
    assert results["accuracy"] == pytest.approx(2 / 3)


def test_metric_card_examples_run(monkeypatch):
    monkeypatch.chdir(ROOT)  # the card loads the metric by its path in the repository
    readme = METRIC_DIR / "README.md"
    assert readme.read_text().startswith("---\ntitle: MusicTheoryBench\n")
    failures, tried = doctest.testfile(str(readme), module_relative=False, optionflags=doctest.ELLIPSIS)
    assert tried >= 4 and failures == 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_gradio_app_serves_the_metric(monkeypatch):
    """The metric's app.py (written for gradio 6, without evaluate's broken widget), served on 127.0.0.1."""
    pytest.importorskip("gradio")
    from gradio_client import Client

    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    spec = importlib.util.spec_from_file_location("mtb_metric_app", METRIC_DIR / "app.py")
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    demo = app.build_demo()
    demo.launch(server_name="127.0.0.1", server_port=_free_port(), prevent_thread_lock=True, quiet=True)
    try:
        client = Client(demo.local_url, verbose=False)
        result = client.predict(
            "B\nThe answer is (C).\nI am not sure",
            "B\nC\nA",
            "knowledge\nreasoning\nreasoning",
            api_name="/score",
        )
        assert result["accuracy"] == pytest.approx(2 / 3) and result["reasoning_accuracy"] == pytest.approx(
            0.5
        )
        assert result["unextracted"] == 1
        with pytest.raises(Exception, match=r"predictions \(2\) and references \(1\)"):
            client.predict("A\nB", "A", "", api_name="/score")
    finally:
        demo.close()
