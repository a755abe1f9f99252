"""Training recipe, dataset and loading-option mistakes: found before any weights load, reported as one line, once,
with exit status 2, under ``chatmusician-hf``, ``python -m`` and ``accelerate launch``.

The model folder these tests train from has its config and tokenizer but no weights: a stage that reached
``from_pretrained`` would fail with a ModelLoadError ("Could not load model"), not the error each test expects.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from chatmusician_hf import cli
from chatmusician_hf.errors import ModelLoadError, RecipeError

REPO = Path(__file__).resolve().parents[1]
RECIPES = {"cpt": REPO / "recipes" / "tiny" / "cpt_lora.yaml", "sft": REPO / "recipes" / "tiny" / "sft.yaml"}


@pytest.fixture(scope="module")
def weightless_model(tiny_model_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("weightless")
    for f in tiny_model_dir.iterdir():
        if f.suffix != ".safetensors":
            (folder / f.name).write_bytes(f.read_bytes())
    return folder


@pytest.fixture(scope="module")
def bad_datasets(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad-data")
    (folder / "empty.jsonl").write_text("")
    (folder / "body.jsonl").write_text('{"body": "X:1\\nK:G\\nGABc|"}\n')
    return folder


def stage_argv(stage, model_dir, output_dir, *extra):
    return ["--config", str(RECIPES[stage]), "--model_name_or_path", str(model_dir), "--output_dir", str(output_dir),
            "--max_steps", "1", "--disable_tqdm", "true", *extra]


@pytest.mark.parametrize(
    "stage, dataset, message",
    [
        ("cpt", "missing.jsonl", "missing.jsonl: no such file or folder."),
        ("cpt", "empty.jsonl", "empty.jsonl: the file is empty; it holds no rows."),
        ("cpt", "body.jsonl", "body.jsonl: no text column 'text' (columns: body); set text_column."),
        ("sft", "empty.jsonl", "empty.jsonl: the file is empty; it holds no rows."),
        ("sft", "body.jsonl", "body.jsonl: SFT rows need instruction/input/output columns"),
    ],
)
def test_dataset_errors_come_before_the_weights(stage, dataset, message, weightless_model, bad_datasets, tmp_path,
                                                capsys):
    code = cli.main([stage, *stage_argv(stage, weightless_model, tmp_path / "o",
                                        "--dataset_name", str(bad_datasets / dataset))])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    # datasets' progress bars may precede it; the error is one line, the last
    assert err.count("error: ") == 1 and err.strip().splitlines()[-1].startswith(f"chatmusician-hf {stage}: error: ")
    assert message in err.strip().splitlines()[-1], err


def test_python_m_prints_one_line_and_exits_2(weightless_model, bad_datasets, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "chatmusician_hf.sft",
         *stage_argv("sft", weightless_model, tmp_path / "o", "--dataset_name", str(bad_datasets / "body.jsonl"))],
        capture_output=True, text=True, timeout=300, cwd=REPO,
    )
    assert result.returncode == 2, result.stderr
    # (transformers' deprecation warnings about the recipe's keys may come first)
    assert result.stderr.count("error: ") == 1 and result.stderr.strip().splitlines()[-1] == (
        f"chatmusician-hf sft: error: {bad_datasets / 'body.jsonl'}: SFT rows need instruction/input/output columns "
        "(MusicPile-sft's schema); missing instruction, output (columns: body)."
    )
    assert "Traceback" not in result.stdout + result.stderr


def _accelerate(args, weightless_model, bad_datasets, tmp_path):
    argv = stage_argv("cpt", weightless_model, tmp_path / "o", "--dataset_name", str(bad_datasets / "empty.jsonl"))
    return subprocess.run(
        ["accelerate", "launch", *args, "-m", "chatmusician_hf.cpt", *argv], capture_output=True, text=True,
        timeout=600, cwd=REPO, env=dict(os.environ, OMP_NUM_THREADS="1"),
    )


@pytest.mark.slow
def test_accelerate_launch_reports_the_error_once(weightless_model, bad_datasets, tmp_path):
    """Two ranks find the same mistake; only rank 0 prints it. torchrun then adds its own failure summary and
    accelerate exits 1 (its launcher raises for any failed process; nothing the process can do removes that)."""
    line = f"chatmusician-hf cpt: error: {bad_datasets / 'empty.jsonl'}: the file is empty; it holds no rows."
    config = REPO / "recipes" / "accelerate_configs" / "ddp_cpu.yaml"
    result = _accelerate(["--config_file", str(config)], weightless_model, bad_datasets, tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and output.count(line) == 1, output
    assert "exitcode  : 2" in output  # both ranks exited with the documented status
    # With one process, `accelerate launch -q` leaves the line alone (the README's advice).
    quiet = _accelerate(["-q", "--cpu", "--num_processes", "1", "--num_machines", "1", "--mixed_precision", "no",
                         "--dynamo_backend", "no"], weightless_model, bad_datasets, tmp_path)
    assert quiet.returncode == 1 and (quiet.stdout + quiet.stderr).strip() == line, quiet.stdout + quiet.stderr


@pytest.mark.parametrize("option", ["load_in_4bit", "load_in_8bit"])
def test_quantized_loading_is_refused_before_loading_when_it_cannot_run(option, weightless_model, tmp_path):
    """No CUDA here (and no bitsandbytes unless installed): the refusal names what is missing."""
    import importlib.util

    from chatmusician_hf import cpt

    parsed = cpt.make_parser().parse_args_and_config(stage_argv("cpt", weightless_model, tmp_path / "o",
                                                                f"--{option}", "true"))
    with pytest.raises(ModelLoadError) as info:
        cpt.main(*parsed)
    message = str(info.value)
    assert message.startswith(f"{option} needs bitsandbytes on a CUDA GPU, but here ")
    assert "no CUDA GPU is visible" in message
    assert ("bitsandbytes is not installed" in message) == (importlib.util.find_spec("bitsandbytes") is None)


def test_both_quantizations_at_once_is_a_recipe_error(weightless_model, tmp_path):
    """TRL's own check, raised while the recipe is parsed, is reported like ours."""
    from chatmusician_hf import cpt

    argv = stage_argv("cpt", weightless_model, tmp_path / "o", "--load_in_4bit", "true", "--load_in_8bit", "true")
    with pytest.raises(RecipeError, match=f"{re.escape(str(RECIPES['cpt']))}: You can't use 8 bit and 4 bit"):
        cpt.make_parser().parse_args_and_config(argv)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--bnb_4bit_quant_type", "fp4"], "bnb_4bit_quant_type only apply with load_in_4bit"),
        (["--load_in_8bit", "true", "--use_bnb_nested_quant", "true"], "use_bnb_nested_quant only apply with"),
        (["--load_in_4bit", "true", "--use_peft", "false"], "only an adapter can train; set use_peft: true"),
        (["--lora_task_type", "SEQ_CLS"], "lora_task_type: SEQ_CLS; the CPT and SFT stages train CAUSAL_LM only"),
        (["--lora_target_parameters", "mlp.experts.gate_up_proj"], "lora_target_parameters (LoRA on raw parameters"),
    ],
)
def test_model_options_the_stages_cannot_honour_are_refused(extra, message, weightless_model, tmp_path):
    from chatmusician_hf import cpt

    parsed = cpt.make_parser().parse_args_and_config(stage_argv("cpt", weightless_model, tmp_path / "o", *extra))
    with pytest.raises(RecipeError, match=re.escape(message)):
        cpt.main(*parsed)
