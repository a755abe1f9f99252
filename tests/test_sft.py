"""SFT with TRL's SFTTrainer: assistant-only loss on the label mask, learning a small task, starting from CPT."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
TINY_SFT = REPO / "recipes" / "tiny" / "sft.yaml"


def run_sft(argv):
    from chatmusician_hf import sft

    return sft.main(*sft.make_parser().parse_args_and_config(argv))


@pytest.fixture(scope="module")
def sft_run(trained_tiny_model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("sft")
    trainer = run_sft([
        "--config", str(TINY_SFT), "--model_name_or_path", str(trained_tiny_model_dir), "--output_dir", str(out),
        "--max_steps", "40", "--max_length", "512", "--max_prompt_length", "384", "--eval_strategy", "steps",
        "--eval_steps", "40",
        "--eval_on_start", "true", "--save_strategy", "no", "--logging_steps", "5", "--disable_tqdm", "true",
        "--max_rows", "600",
    ])
    return trainer, out


def test_loss_mask_covers_exactly_the_answers_and_their_eos(sft_run):
    trainer, _ = sft_run
    tokenizer = trainer.processing_class
    batch = next(iter(trainer.get_train_dataloader()))
    ids, labels = batch["input_ids"][0].tolist(), batch["labels"][0].tolist()
    spans, current = [], []
    for token, label in zip(ids, labels):
        if label != -100:
            assert label == token
            current.append(token)
        elif current:
            spans.append(current)
            current = []
    if current:
        spans.append(current)
    assert spans, "no token carries loss"
    text = tokenizer.decode(ids)
    for span in spans:
        answer = tokenizer.decode(span)
        assert answer.endswith(" </s>") and "Human:" not in answer and "Assistant:" not in answer
        # Each loss span is preceded by the assistant marker: it is an answer, not a prompt.
        assert text.count("Assistant: " + answer) >= 1
    masked = tokenizer.decode([t for t, label in zip(ids, labels) if label == -100])
    assert "Human: " in masked


def test_sft_learns_the_task_set(sft_run):
    trainer, out = sft_run
    evals = [e["eval_loss"] for e in trainer.state.log_history if "eval_loss" in e]
    # Answer-only loss of the CPT model on the task set, before and after 40 steps: the answers' formats
    # (keys, meters, bar counts, tunes) are learnable quickly; 0.3 nats is well above run-to-run noise.
    assert evals[-1] < evals[0] - 0.3, evals
    info = json.loads((out / "training_info.json").read_text())
    assert info["stage"] == "sft" and (out / "adapter_model.safetensors").is_file()
    assert (out / "loss_curve.png").is_file()


def test_sft_starts_from_a_cpt_adapter_folder(tiny_model_dir, tmp_path):
    """A CPT output (an adapter folder) as model_name_or_path: its base loads and the adapter merges in memory."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from chatmusician_hf import sft
    from chatmusician_hf.training.loading import load_model_for_training, load_tokenizer_for_training

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    adapted = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj"], init_lora_weights=False))
    adapter_dir = tmp_path / "cpt-adapter"
    adapted.save_pretrained(adapter_dir)
    (adapter_dir / "adapter_config.json").write_text(
        json.dumps({**json.loads((adapter_dir / "adapter_config.json").read_text()),
                    "base_model_name_or_path": str(tiny_model_dir)}))
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(adapter_dir)
    _, training_args, model_args = sft.make_parser().parse_args_and_config(
        ["--config", str(TINY_SFT), "--model_name_or_path", str(adapter_dir), "--output_dir", str(tmp_path / "o")])
    model = load_model_for_training(model_args, training_args, load_tokenizer_for_training(model_args))
    ids = torch.randint(4, 2000, (1, 16))
    expected = adapted.eval()(input_ids=ids).logits
    with model.disable_adapter():
        got = model.eval()(input_ids=ids).logits
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
