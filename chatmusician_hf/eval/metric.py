"""The MusicTheoryBench ``evaluate`` metric, loaded from its folder: the single home of the answer-extraction rules."""

from __future__ import annotations

from pathlib import Path

# evaluate_metrics/ sits beside the package in a source checkout (and in an editable install).
METRIC_DIR = Path(__file__).resolve().parents[2] / "evaluate_metrics" / "music_theory_bench"


def load_metric(path: str | Path | None = None):
    """``evaluate.load`` on the metric folder (offline); ``metric.extract_answer`` is the extraction function."""
    import evaluate

    folder = Path(path) if path else METRIC_DIR
    if not (folder / "music_theory_bench.py").is_file():
        raise FileNotFoundError(
            f"MusicTheoryBench metric not found at {folder} (expected music_theory_bench.py there). Run from a "
            "chatmusician-hf source checkout or pass --metric_path to a copy of evaluate_metrics/music_theory_bench."
        )
    return evaluate.load(str(folder))
