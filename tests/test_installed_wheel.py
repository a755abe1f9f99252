"""The package as a user installs it: the wheel, in a fresh virtual environment, run from a folder outside the checkout.

The wheel is built from a copy of the source tree (so a stale ``build/`` folder cannot leak into it) and installed
without dependencies into a new venv that borrows them from this interpreter's site-packages (torch and the rest are
not installed twice). Commands run there with no ``PYTHONPATH`` from a temporary folder, so only the installed files
can be found: a shortened quickstart, then ``eval music-theory-bench`` on a local copy of benchmark-schema data.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "chatmusician_hf"
NOT_IN_THE_SOURCE_COPY = (".git", "build", "dist", "*.egg-info", "outputs", "test-artifacts", "__pycache__", ".venv",
                          ".pytest_cache", ".ruff_cache", ".hypothesis")
SHORT = ["--cpt_max_steps", "4", "--sft_max_steps", "2", "--save_steps", "2", "--eval_prompts", "2",
         "--eval_batch_size", "2", "--max_new_tokens", "48"]
# Code that finds its files next to the checkout instead of in the package works only from a clone.
REACHES_OUT_OF_THE_PACKAGE = re.compile(r"parents\[\d+\].*(tests|recipes|evaluate_metrics)|REPO_ROOT\s*/")

pytestmark = pytest.mark.slow


def run(cmd: list, timeout: float, **kwargs) -> str:
    result = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, **kwargs)
    assert result.returncode == 0, f"{cmd}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict:
    """The wheel, a venv holding it, and a folder outside the checkout to run in."""
    work = tmp_path_factory.mktemp("installed")
    source = work / "source"
    shutil.copytree(REPO, source, symlinks=True, ignore=shutil.ignore_patterns(*NOT_IN_THE_SOURCE_COPY))
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", source, "-w", work / "dist"], timeout=900)
    (wheel,) = (work / "dist").glob("chatmusician_hf-*.whl")
    venv = work / "venv"
    # No pip of its own: this interpreter's pip, seen through the system site-packages, installs into the venv.
    run([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", venv], timeout=300)
    run([venv / "bin" / "python", "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel], timeout=300)
    elsewhere = work / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return {"wheel": wheel, "venv": venv, "bin": venv / "bin", "cwd": elsewhere, "env": env}


def in_venv(installed: dict, *cmd, timeout: float = 600) -> str:
    return run([installed["bin"] / cmd[0], *cmd[1:]], timeout=timeout, cwd=installed["cwd"], env=installed["env"])


@pytest.fixture(scope="module")
def quickstart(installed) -> Path:
    out = installed["cwd"] / "qs"
    in_venv(installed, "chatmusician-hf", "quickstart", "--output_dir", out, *SHORT, timeout=2400)
    return out


def test_package_sources_do_not_reach_into_the_checkout():
    offenders = [f"{path.relative_to(REPO)}:{number}: {line.strip()}"
                 for path in sorted(PACKAGE.rglob("*.py"))
                 for number, line in enumerate(path.read_text().splitlines(), 1)
                 if REACHES_OUT_OF_THE_PACKAGE.search(line)]
    assert not offenders, offenders


def test_wheel_ships_what_runs_and_no_test_helpers(installed):
    names = set(zipfile.ZipFile(installed["wheel"]).namelist())
    for needed in ("chatmusician_hf/recipes/tiny/cpt.yaml", "chatmusician_hf/recipes/tiny/sft.yaml",
                   "chatmusician_hf/recipes/chatmusician-7b/cpt.yaml", "chatmusician_hf/metrics/abc_quality.py",
                   "chatmusician_hf/metrics/music_theory_bench.py",
                   "chatmusician_hf/resources/music_theory_bench_sample.jsonl"):
        assert needed in names, needed
    assert not [n for n in names if n.startswith(("chatmusician_hf/testing/", "tests/", "recipes/"))]
    imported = in_venv(installed, "python", "-c", "import chatmusician_hf; print(chatmusician_hf.__file__)")
    assert Path(imported.strip()).is_relative_to(installed["venv"]), imported


def test_shortened_quickstart_runs_from_the_installed_wheel(quickstart):
    for step in ("init-tiny", "data", "cpt", "sft", "merge", "eval", "example", "report"):
        assert (quickstart / "steps" / f"{step}.json").is_file(), step
    bench = json.loads((quickstart / "eval" / "music_theory_bench_ppl_0shot.json").read_text())
    assert bench["dataset"]["test_questions"] == 20  # the sample shipped in the package
    quality = json.loads((quickstart / "steps" / "eval.json").read_text())["abc_quality"]
    assert quality["real held-out tunes"]["parse_rate"] > 0  # the packaged abc_quality metric ran
    page = (quickstart / "report.html").read_text()
    assert "<table>" in page and "<h2>ABC quality on held-out text-to-ABC prompts</h2>" in page


def test_music_theory_bench_eval_runs_from_the_installed_wheel(installed, quickstart):
    data = installed["cwd"] / "MusicTheoryBench"  # as `hf download ... --local-dir MusicTheoryBench` leaves it
    shutil.copytree(REPO / "tests" / "fixtures" / "music_theory_bench" / "two_splits", data)
    printed = in_venv(installed, "chatmusician-hf", "eval", "music-theory-bench", "--model", quickstart / "merged",
                      "--dataset", data.name, "--mode", "ppl", "--shots", "5", "--output_dir", "bench")
    report = json.loads((installed["cwd"] / "bench" / "music_theory_bench_ppl_5shot.json").read_text())
    assert report["results"]["total"] == 30 and report["dataset"]["dev_exemplars"] == 5
    assert "overall" in printed and (installed["cwd"] / "bench" / "eval_results.json").is_file()
