"""The README's "Train on your own tunes": a folder of .abc files to CPT, SFT on abc-tasks, and a chat, end to end with
the tiny recipes (a few steps each), run exactly as the README writes the commands; and ``preprocess`` on the folder.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SESSION = Path(__file__).parent / "fixtures" / "tunebooks" / "session.abc"
# what makes a quickstart-sized run of each command quick; the commands themselves are the README's
SHORT = {
    "cpt": ["--max_steps", "12", "--per_device_train_batch_size", "8", "--max_length", "256", "--eval_strategy", "no", "--save_strategy", "no",
            "--logging_steps", "5", "--disable_tqdm", "true"],
    "sft": ["--max_steps", "8", "--max_rows", "200", "--save_strategy", "no", "--logging_steps", "4",
            "--disable_tqdm", "true"],
    "chat": ["--max_new_tokens", "60", "--seed", "0"],
}  # fmt: skip


def readme_commands() -> list[list[str]]:
    readme = (REPO / "README.md").read_text()
    section = readme.split("### Train on your own tunes", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [shlex.split(line) for line in block.strip().splitlines()]


@pytest.fixture(scope="module")
def my_tunes(tmp_path_factory):
    """A folder of tunebooks as a user has them: the session book, a music21 tunebook, and a latin-1 file."""
    from music21 import corpus

    folder = tmp_path_factory.mktemp("user") / "my_tunes"
    (folder / "airs").mkdir(parents=True)
    shutil.copy(SESSION, folder / "session.abc")
    oneill = next(p for p in corpus.getPaths(fileExtensions=["abc"]) if str(p).endswith("0001-0050.abc"))
    shutil.copy(oneill, folder / "airs" / "oneills.abc")
    (folder / "airs" / "old.abc").write_bytes(
        "X:1\nT:Caf\xe9 Air\nM:3/4\nL:1/8\nK:G\nG2 B2 d2|g6|]\n".encode("latin-1")
    )
    return folder


def run(argv: list[str], cwd: Path, stdin: str = "") -> str:
    assert argv[0] == "chatmusician-hf"
    command = [sys.executable, "-m", "chatmusician_hf.cli", *argv[1:], *SHORT[argv[1]]]
    done = subprocess.run(command, cwd=cwd, input=stdin, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    return done.stdout


def test_the_readme_runs_from_a_folder_of_tunes_to_a_chat(my_tunes, tiny_model_dir):
    cpt, sft, chat = readme_commands()
    assert [argv[1] for argv in (cpt, sft, chat)] == ["cpt", "sft", "chat"]
    work = my_tunes.parent
    shutil.copytree(tiny_model_dir, work / "outputs" / "tiny-base")

    printed = run(cpt, work)
    # the latin-1 file is read, with a warning (validate says which byte)
    assert (
        "[tunebooks] my_tunes/: 3 file(s), 56 tune(s); 0 repeated left out; 1 reading warning(s)" in printed
    )
    assert "; 56 kept" in printed
    out = work / "outputs" / "my-cpt"
    assert yaml_value(out / "recipe.yaml", "dataset_name") == "my_tunes/"
    losses = [entry["loss"] for entry in json.loads((out / "trainer_state.json").read_text())["log_history"]
              if "loss" in entry]  # fmt: skip
    assert losses[-1] < losses[0] - 1.0, losses  # it learned from the tunes

    printed = run(sft, work)
    assert "[tunebooks] abc-tasks:my_tunes/: 3 file(s), 56 tune(s)" in printed
    assert (work / "outputs" / "my-sft" / "adapter_model.safetensors").is_file()
    assert yaml_value(work / "outputs" / "my-sft" / "recipe.yaml", "dataset_name") == "abc-tasks:my_tunes/"

    prompt = "Using ABC notation, recreate the given text as a musical score.\nMeter 3/4\nKey G\n\n"
    printed = run(chat, work, stdin=prompt)
    assert "+ adapter outputs/my-sft" in printed and "ChatMusician: " in printed
    assert len(printed.split("ChatMusician: ", 1)[1].strip()) > 0  # it answered


def yaml_value(path: Path, key: str):
    import yaml

    return yaml.safe_load(path.read_text())[key]


def test_preprocess_on_a_folder_of_tunes(my_tunes, tiny_model_dir, tmp_path):
    from chatmusician_hf.cli import main as cli

    common = ["--model_name_or_path", str(tiny_model_dir), "--data_cache_dir", str(tmp_path / "cache")]
    cpt_out, sft_out = tmp_path / "cpt", tmp_path / "sft"
    assert cli(["preprocess", "--config", "tiny/cpt", "--dataset_name", str(my_tunes), "--abc_filter", "valid",
                "--preprocessed_dir", str(cpt_out), *common]) == 0  # fmt: skip
    counts = json.loads(next((tmp_path / "cache" / "tunebooks").glob("*/counts.json")).read_text())
    summary = json.loads((cpt_out / "preprocess_summary.json").read_text())["splits"]
    assert summary["train"]["rows"] + summary["validation"]["rows"] == counts["kept"] < counts["tunes"]
    assert set(summary["train"]["tokens_per_src"]) == {"my_tunes"}
    assert cli(["preprocess", "--stage", "sft", "--config", "tiny/sft", "--dataset_name", f"abc-tasks:{my_tunes}",
                "--preprocessed_dir", str(sft_out), *common]) == 0  # fmt: skip
    sft = json.loads((sft_out / "preprocess_summary.json").read_text())["splits"]["train"]
    assert {src.split("/")[0] for src in sft["tokens_per_src"]} == {"my_tunes-tasks"} and sft[
        "loss_tokens"
    ] > 0
