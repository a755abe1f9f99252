"""The project's ``evaluate`` metrics, one script each: the one home of their scoring rules.

The package loads them from here, so evaluation works wherever it is installed. In the repository
``evaluate_metrics/<name>/<name>.py`` is a link to the script, beside the metric's card and Space files, and
``chatmusician-hf push --publish_spaces`` publishes a metric only when its script is this one byte for byte.
``music_theory_bench`` imports only ``evaluate`` and ``datasets``, so a Hub user needs nothing else; ``abc_quality``
uses this package's ABC layer.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def metric_script(name: str):
    """The packaged script of metric ``name`` (an ``importlib.resources`` traversable; it may not exist)."""
    return resources.files(__name__) / f"{name}.py"


def load_metric(name: str, path: str | Path | None = None):
    """``evaluate.load`` (offline) on metric ``name``: its packaged script, or ``path``, a metric folder or script."""
    import evaluate

    if path is not None:
        script = Path(path) / f"{name}.py" if Path(path).is_dir() else Path(path)
        if not script.is_file():
            from ..configs import RecipeError

            raise RecipeError(f"No {name} metric at {path}: expected {name}.py or a folder holding it.")
        return evaluate.load(str(script))
    with resources.as_file(metric_script(name)) as script:
        return evaluate.load(str(script))
