"""Continued pretraining: the tiny recipe learns, optimizer groups, frozen base, resume after SIGKILL, misconfigs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from chatmusician_hf.errors import CheckpointError, RecipeError

REPO = Path(__file__).resolve().parents[1]
TINY_CPT = REPO / "recipes" / "tiny" / "cpt_lora.yaml"
# Small enough for 2 CPU cores, large enough that the tiny model visibly learns.
FAST = ["--max_length", "128", "--per_device_train_batch_size", "8", "--logging_steps", "1", "--report_to", "none",
        "--disable_tqdm", "true"]


def cpt_args(model_dir, output_dir, *extra):
    return ["--config", str(TINY_CPT), "--model_name_or_path", str(model_dir), "--output_dir", str(output_dir),
            *FAST, *extra]


def run_cpt_inprocess(argv):
    from chatmusician_hf import cpt

    return cpt.main(*cpt.make_parser().parse_args_and_config(argv))


@pytest.fixture(scope="module")
def trained(tiny_model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("cpt")
    trainer = run_cpt_inprocess(
        cpt_args(tiny_model_dir, out, "--max_steps", "60", "--eval_steps", "60", "--eval_on_start", "true",
                 "--save_steps", "60", "--learning_rate", "3e-3", "--embedding_learning_rate", "1e-3")
    )
    return trainer, out


def test_tiny_cpt_held_out_loss_drops(trained):
    trainer, out = trained
    evals = [e["eval_loss"] for e in trainer.state.log_history if "eval_loss" in e]
    # Untrained: ~ln(2048) = 7.6 nats/token. 60 steps of 1k tokens reach ~4; 1.5 nats is a margin that still
    # fails if the adapter, the embedding copies or the packing broke.
    assert evals[0] > 7.0 and evals[-1] < evals[0] - 1.5, evals
    assert (out / "loss_curve.png").stat().st_size > 1000
    info = json.loads((out / "training_info.json").read_text())
    assert info["global_step"] == 60 and info["final_eval_loss"] == pytest.approx(evals[-1])
    assert "embedding_learning_rate" in (out / "recipe.yaml").read_text()


def test_optimizer_groups_give_embeddings_their_own_rate(trained):
    trainer, _ = trained
    groups = trainer.optimizer.param_groups
    names = {id(p): n for n, p in trainer.model.named_parameters()}
    embedding_groups = [g for g in groups if any("modules_to_save" in names[id(p)] for p in g["params"])]
    assert len(embedding_groups) == 1
    group = embedding_groups[0]
    assert group["initial_lr"] == 1e-3 and group["weight_decay"] == 0.0
    assert {names[id(p)].split(".modules_to_save")[0].rsplit(".", 1)[-1] for p in group["params"]} == {
        "embed_tokens", "lm_head"}
    lora = [g for g in groups if g is not group and g["params"]]
    assert lora and all(g["initial_lr"] == 3e-3 for g in lora)
    assert all("lora_" in names[id(p)] for g in lora for p in g["params"])


def test_embedding_copies_trained_and_base_frozen(trained, tiny_model_dir):
    from safetensors.torch import load_file

    trainer, out = trained
    base = load_file(tiny_model_dir / "model.safetensors")
    adapter = load_file(out / "adapter_model.safetensors")
    embed = next(v for k, v in adapter.items() if "embed_tokens" in k)
    head = next(v for k, v in adapter.items() if "lm_head" in k)
    assert not torch.equal(embed, base["model.embed_tokens.weight"])
    assert not torch.equal(head, base["lm_head.weight"])
    state = trainer.model.get_base_model().state_dict()
    frozen = [k for k in base if "layers." in k and "proj" in k]
    for key in frozen:
        live = state[key.replace(".weight", ".base_layer.weight")]
        assert torch.equal(live, base[key]), key


def test_saved_adapter_reloads_to_the_trained_model(trained, tiny_model_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    trainer, out = trained
    reloaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), out).eval()
    live = trainer.model.eval()
    ids = torch.randint(4, 2000, (2, 64))
    with torch.no_grad():
        torch.testing.assert_close(reloaded(input_ids=ids).logits, live(input_ids=ids.to(live.device)).logits)


def test_packed_documents_do_not_attend_to_each_other(tiny_model_dir):
    """With per-document position ids (what the collator passes), a document's logits equal those it gets alone."""
    from transformers import AutoModelForCausalLM

    from chatmusician_hf.cpt import PackedBlockCollator

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    doc_a, doc_b = list(range(10, 40)), list(range(50, 70))
    batch = PackedBlockCollator(pad_token_id=3)([{"input_ids": doc_a + doc_b, "position_ids": list(range(30)) + list(range(20))}])
    assert batch["labels"][0, 30] == -100  # doc_b's first token is not predicted from doc_a
    with torch.no_grad():
        packed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits[0, 30:]
        alone = model(input_ids=torch.tensor([doc_b]), use_cache=False).logits[0]
    torch.testing.assert_close(packed, alone, atol=1e-4, rtol=1e-4)


def _launch(argv, env=None):
    return subprocess.Popen([sys.executable, "-m", "chatmusician_hf.cpt", *argv], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_sigkill_then_resume_gives_the_uninterrupted_adapter(tiny_model_dir, tmp_path):
    from safetensors.torch import load_file

    common = ["--max_steps", "24", "--save_steps", "8", "--eval_strategy", "no", "--save_total_limit", "5"]
    straight = _launch(cpt_args(tiny_model_dir, tmp_path / "straight", *common))
    killed_dir = tmp_path / "killed"
    victim = _launch(cpt_args(tiny_model_dir, killed_dir, *common))
    deadline = time.time() + 600
    while not (killed_dir / "checkpoint-16" / "trainer_state.json").exists():
        assert victim.poll() is None, victim.stdout.read()
        assert time.time() < deadline
        time.sleep(0.2)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert not (killed_dir / "training_info.json").exists()
    # A checkpoint torn apart mid-save must be skipped in favour of the previous one.
    torn = killed_dir / "checkpoint-20"
    torn.mkdir(exist_ok=True)
    (torn / "trainer_state.json").write_text("{")
    resumed = _launch(cpt_args(tiny_model_dir, killed_dir, *common))
    log = resumed.communicate(timeout=600)[0]
    assert resumed.returncode == 0, log
    assert "skipping checkpoint-20: scheduler.pt, model or adapter weights (*.safetensors), optimizer.pt missing" in log
    assert "resuming from" in log and "checkpoint-16" in log
    assert straight.wait(timeout=600) == 0, straight.stdout.read()
    a = load_file(tmp_path / "straight" / "adapter_model.safetensors")
    b = load_file(killed_dir / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-6, rtol=1e-5)


def test_every_unreadable_checkpoint_file_falls_back_to_the_previous_checkpoint(tiny_model_dir, tmp_path, capsys):
    """Kill a run after its second checkpoint, then cut each file of that checkpoint in half in turn (a full disk, a
    kill mid-write): every rerun finishes, resuming from the first checkpoint when the cut file is one a resume
    reads, and from the second otherwise (README.md and the chat template are text nobody reads on resume)."""
    import shutil

    from chatmusician_hf.training.resume import checkpoint_problem

    common = ["--max_steps", "6", "--save_steps", "2", "--eval_strategy", "no", "--save_total_limit", "5"]
    killed = tmp_path / "killed"
    victim = _launch(cpt_args(tiny_model_dir, killed, *common))
    deadline = time.time() + 600
    while not (killed / "checkpoint-4").is_dir() or checkpoint_problem(killed / "checkpoint-4") is not None:
        assert victim.poll() is None, victim.stdout.read()
        assert time.time() < deadline
        time.sleep(0.2)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    shutil.rmtree(killed / "checkpoint-6", ignore_errors=True)  # had it got that far, make it a kill after step 4
    unread_on_resume = {"README.md", "chat_template.jinja"}
    files = sorted(p.name for p in (killed / "checkpoint-4").iterdir() if p.is_file())
    assert {"optimizer.pt", "scheduler.pt", "rng_state.pth", "trainer_state.json", "adapter_model.safetensors",
            "adapter_config.json"} <= set(files)
    for name in files:
        run = tmp_path / f"cut-{name}"
        shutil.copytree(killed, run)
        cut = run / "checkpoint-4" / name
        cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
        capsys.readouterr()
        trainer = run_cpt_inprocess(cpt_args(tiny_model_dir, run, *common))
        log = capsys.readouterr().out
        assert trainer.state.global_step == 6 and (run / "adapter_model.safetensors").is_file(), name
        expected = "checkpoint-4" if name in unread_on_resume else "checkpoint-2"
        assert f"[cpt] resuming from {run / expected}" in log, (name, log)
        if expected == "checkpoint-2":
            assert f"[resume] skipping checkpoint-4: {name}" in log, (name, log)


def test_find_resume_checkpoint_skips_partial_and_honours_paths(tmp_path):
    from chatmusician_hf.training.resume import find_resume_checkpoint

    assert find_resume_checkpoint(tmp_path, "auto") is None
    assert find_resume_checkpoint(tmp_path, None) is None
    with pytest.raises(CheckpointError, match="checkpoint-3 cannot be resumed from: no such folder"):
        find_resume_checkpoint(tmp_path, str(tmp_path / "checkpoint-3"))


def test_unknown_lora_target_fails_before_weights_load(tiny_model_dir, tmp_path):
    # A model folder whose weights are missing: reaching from_pretrained would raise ModelLoadError, not RecipeError.
    model_dir = tmp_path / "no-weights"
    model_dir.mkdir()
    for f in tiny_model_dir.iterdir():
        if f.suffix != ".safetensors":
            (model_dir / f.name).write_bytes(f.read_bytes())
    with pytest.raises(RecipeError, match=r"'q_projj' \(did you mean 'q_proj'\?\) not found"):
        run_cpt_inprocess(cpt_args(model_dir, tmp_path / "o", "--lora_target_modules", "q_projj", "v_proj"))


def test_embedding_rate_without_trained_embeddings_is_rejected(tiny_model_dir, tmp_path):
    from chatmusician_hf import cpt

    parser = cpt.make_parser()
    data_args, training_args, model_args = parser.parse_args_and_config(cpt_args(tiny_model_dir, tmp_path / "o"))
    model_args.lora_modules_to_save = None
    with pytest.raises(RecipeError, match="embedding_learning_rate is set but no embeddings are trained"):
        cpt.main(data_args, training_args, model_args)


def test_misspelled_recipe_key_names_the_recipe(tmp_path):
    recipe = tmp_path / "cpt.yaml"
    recipe.write_text(TINY_CPT.read_text().replace("embedding_learning_rate:", "embeding_learning_rate:"))
    result = subprocess.run([sys.executable, "-m", "chatmusician_hf.cli", "cpt", "--config", str(recipe)],
                            capture_output=True, text=True, timeout=300, cwd=REPO)
    assert result.returncode == 2
    assert f"{recipe}: unknown key 'embeding_learning_rate'. Did you mean 'embedding_learning_rate'?" in result.stderr


LAUNCH_CONFIGS = {
    "ddp": "ddp_cpu.yaml",
    "zero2": "zero2_cpu.yaml",
    "zero3": "zero3_cpu.yaml",
}


@pytest.fixture(scope="module")
def single_process_losses(tiny_model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("single")
    trainer = run_cpt_inprocess(cpt_args(tiny_model_dir, out, "--max_steps", "8", "--eval_strategy", "no",
                                         "--save_strategy", "no", "--per_device_train_batch_size", "8"))
    return [e["loss"] for e in trainer.state.log_history if "loss" in e]


@pytest.mark.slow
@pytest.mark.parametrize("topology", sorted(LAUNCH_CONFIGS))
def test_multi_process_training_matches_single_process(topology, tiny_model_dir, tmp_path, single_process_losses):
    """Two ranks x 4 blocks see, step by step, the same 8 blocks as one process x 8 (accelerate shards the same
    seeded permutation), so the per-step losses agree up to fp32 reduction order: 1e-3 relative."""
    out = tmp_path / topology
    cmd = ["accelerate", "launch", "--config_file", str(REPO / "recipes" / "accelerate_configs" / LAUNCH_CONFIGS[topology]),
           "-m", "chatmusician_hf.cpt", *cpt_args(tiny_model_dir, out, "--max_steps", "8", "--eval_strategy", "no",
                                                  "--save_strategy", "no", "--per_device_train_batch_size", "4")]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    info = json.loads((out / "training_info.json").read_text())
    assert info["world_size"] == 2
    state = json.loads((out / "trainer_state.json").read_text())
    losses = [e["loss"] for e in state["log_history"] if "loss" in e]
    assert len(losses) == len(single_process_losses) == 8
    for multi, single in zip(losses, single_process_losses):
        assert multi == pytest.approx(single, rel=1e-3)
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), out)
    assert any("lora_A" in n for n, _ in model.named_parameters())
