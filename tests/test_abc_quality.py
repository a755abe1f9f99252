"""The ABC-quality metric loaded the way users load it: ``evaluate.load`` of the local folder, offline."""

from __future__ import annotations

import doctest
import math
import subprocess
import sys
from pathlib import Path

import evaluate
import pytest

REPO = Path(__file__).resolve().parents[1]
METRIC_DIR = REPO / "evaluate_metrics" / "abc_quality"
GOOD = "Here you go:\nX:1\nM:2/4\nL:1/4\nK:C\nCD|EF|CD|G2|]"
BAD = "X:1\nM:2/4\nL:1/4\nK:G\nGA|Bcd|G2|]"
REFUSAL = "Sorry, I cannot write music."
DUET = "X:1\nM:2/4\nL:1/4\nK:C\nV:1\nCD|EF|\nV:2\nC,D,|E,F,|G,2|"


@pytest.fixture(scope="module")
def metric():
    return evaluate.load(str(METRIC_DIR))


def test_hand_computed_values(metric):
    results = metric.compute(
        predictions=[GOOD, BAD, REFUSAL, DUET],
        requested_headers=[{"K": "C", "M": "2/4"}, {"K": "D"}, {"K": "C"}, {"K": "C major", "L": "1/8"}],
        reference_tunes=[["X:2\nT:renamed\nK:C\nCD|EF|CD|G2|"], ["X:1\nK:G\nAB|"], [], ["X:1\nK:C\nCD|"]],
    )
    assert results["n_predictions"] == 4
    assert results["extraction_rate"] == 3 / 4
    assert results["parse_rate"] == 3 / 4
    # GOOD is fully right; BAD has an overfull bar; DUET's bars are right but its voices have 2 and 3 bars
    assert results["bar_duration_correct_rate"] == 2 / 4
    assert results["valid_rate"] == 1 / 4
    assert results["bar_correct_share"] == (4 + 2 + 5) / (4 + 3 + 5)
    assert results["voice_alignment_rate"] == 0.0
    # first-tune lengths: GOOD 4, BAD 3, REFUSAL 0 (no tune), DUET 3 (its longer voice)
    assert results["median_bars"] == 3.0 and results["mean_bars"] == (4 + 3 + 0 + 3) / 4
    # matched: GOOD K, M; DUET K ("C major" == "C") -- missed: BAD K, REFUSAL K, DUET L (1/4 written, 1/8 asked)
    assert results["header_adherence"] == 3 / 6
    assert results["header_adherence_K"] == 2 / 4 and results["header_adherence_M"] == 1.0
    assert results["header_adherence_L"] == 0.0
    good_entropy = -(2 * (2 / 7) * math.log2(2 / 7) + 3 * (1 / 7) * math.log2(1 / 7))
    bad_entropy = -((2 / 6) * math.log2(2 / 6) + 4 * (1 / 6) * math.log2(1 / 6))
    # DUET: C, D, E, F twice each (once per voice), G once
    duet_entropy = -(4 * (2 / 9) * math.log2(2 / 9) + (1 / 9) * math.log2(1 / 9))
    assert results["pitch_class_entropy"] == pytest.approx((good_entropy + bad_entropy + duet_entropy) / 3)
    assert results["bar_repetition_rate"] == pytest.approx((1 / 4 + 0 + 0) / 3)
    # GOOD copies its reference (new title and number, same music); BAD and DUET do not
    assert results["copy_rate"] == 1 / 3


def test_optional_inputs_are_reported_as_none(metric):
    results = metric.compute(predictions=[GOOD])
    assert results["header_adherence"] is None and results["copy_rate"] is None
    assert results["voice_alignment_rate"] is None


def test_mismatched_requested_headers_fail_clearly(metric):
    with pytest.raises(ValueError, match="requested_headers has 1 entries for 2 predictions"):
        metric.compute(predictions=[GOOD, BAD], requested_headers=[{"K": "C"}])


def test_documented_examples_hold(monkeypatch):
    """The doctest examples in the metric's kwargs description and card produce the values they show."""
    monkeypatch.chdir(REPO)
    loaded = evaluate.load(str(METRIC_DIR))
    card = (METRIC_DIR / "README.md").read_text()
    examples = card.split("### Examples", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    for name, text in (("kwargs", loaded.inputs_description), ("card", examples)):
        test = doctest.DocTestParser().get_doctest(text, {}, name, None, 0)
        runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
        runner.run(test)
        assert runner.summarize(verbose=False).failed == 0, name
        assert test.examples, name


def test_without_chatmusician_hf_loading_says_what_to_install(tmp_path):
    """Unlike music_theory_bench, this metric needs the package's ABC layer; a Hub user without it is told so."""
    code = f"import sys; sys.modules['chatmusician_hf'] = None\nimport evaluate\nevaluate.load({str(METRIC_DIR)!r})"
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1] == (
        "ImportError: The abc_quality metric uses the chatmusician-hf ABC layer: pip install chatmusician-hf "
        "(from https://github.com/chatmusician-hf/chatmusician-hf) and apt-get install abcmidi"
    )
