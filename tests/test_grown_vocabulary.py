"""An adapter trained on a base whose vocabulary grows in training (LLaMA-2 has no pad token; training adds ``<pad>``)
works everywhere a model loads: chat, generate, evaluation and the merge, through the one model loader.

The base here is the tiny model with its ``<pad>`` token renamed away, so training adds ``<pad>`` as id 2048 and the
embeddings grow from 2,048 to 2,049 rows, exactly LLaMA-2's 32,000 -> 32,001. Everything below compares the
adapter loaded on its base with the merged model: the same greedy tokens and the same benchmark scores.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
import torch

from chatmusician_hf.inference import (
    GenerationArguments,
    ModelArguments,
    fit_prompt,
    generate_batch,
    load_model,
)

REPO = Path(__file__).resolve().parents[1]
GREEDY = dict(do_sample=False, max_new_tokens=12, min_new_tokens=12)
PROMPTS = ["Compose a reel in D", "Continue:\nX:1\nM:4/4\nL:1/8\nK:G\nGABc dedB|"]
BENCH = REPO / "tests" / "fixtures" / "music_theory_bench" / "two_splits"


def _rename_pad(obj):
    """The tokenizer files with every '<pad>' renamed, so the token no longer exists as a pad token."""
    if isinstance(obj, dict):
        return {("<unused0>" if k == "<pad>" else k): _rename_pad(v) for k, v in obj.items() if k != "pad_token"}
    if isinstance(obj, list):
        return [_rename_pad(v) for v in obj]
    return "<unused0>" if obj == "<pad>" else obj


@pytest.fixture(scope="module")
def grown(tiny_model_dir, tmp_path_factory):
    """(base without a pad token, adapter trained on it, merged model)."""
    from chatmusician_hf import cpt
    from chatmusician_hf.merge import MergeArguments
    from chatmusician_hf.merge import main as merge

    work = tmp_path_factory.mktemp("grown")
    base = work / "base"
    shutil.copytree(tiny_model_dir, base)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (base / name).write_text(json.dumps(_rename_pad(json.loads((base / name).read_text()))))
    for name in ("config.json", "generation_config.json"):
        config = json.loads((base / name).read_text())
        config.pop("pad_token_id", None)
        (base / name).write_text(json.dumps(config))
    argv = ["--config", str(REPO / "recipes" / "tiny" / "cpt_lora.yaml"), "--model_name_or_path", str(base),
            "--output_dir", str(work / "adapter"), "--max_steps", "30", "--max_length", "128",
            "--per_device_train_batch_size", "8", "--eval_strategy", "no", "--save_strategy", "no",
            "--disable_tqdm", "true"]
    cpt.main(*cpt.make_parser().parse_args_and_config(argv))
    merge(MergeArguments(base=str(base), adapter=str(work / "adapter"), output_dir=str(work / "merged")))
    return base, work / "adapter", work / "merged"


def test_training_grew_the_vocabulary_by_the_pad_token(grown):
    from safetensors import safe_open
    from transformers import AutoTokenizer

    base, adapter, merged = grown
    assert AutoTokenizer.from_pretrained(base).pad_token is None
    tokenizer = AutoTokenizer.from_pretrained(adapter)
    assert tokenizer.pad_token == "<pad>" and tokenizer.pad_token_id == 2048 and len(tokenizer) == 2049
    with safe_open(str(adapter / "adapter_model.safetensors"), "pt") as weights:
        rows = {k: weights.get_slice(k).get_shape()[0] for k in weights.keys() if "embed_tokens" in k or "lm_head" in k}
    assert rows and set(rows.values()) == {2049}, rows
    assert json.loads((merged / "config.json").read_text())["vocab_size"] == 2049


def _answers(loaded):
    prompts = [fit_prompt(loaded.tokenizer, text, [], 1536) for text in PROMPTS]
    return generate_batch(loaded, prompts, GenerationArguments(**GREEDY))


def test_generation_with_the_adapter_equals_the_merged_model(grown):
    """Batched (so left-padded with the new pad id) greedy answers of base + adapter, of the adapter folder named
    alone, and of the merged model agree token for token."""
    base, adapter, merged = grown
    with_adapter = load_model(ModelArguments(model=str(base), adapter=str(adapter), device="cpu"))
    assert with_adapter.tokenizer.pad_token_id == 2048
    assert with_adapter.model.get_input_embeddings().weight.shape[0] == 2049
    expected = _answers(load_model(ModelArguments(model=str(merged), device="cpu")))
    assert _answers(with_adapter) == expected
    alone = load_model(ModelArguments(model=str(adapter), device="cpu"))  # its base is read from adapter_config.json
    assert alone.info["adapter"] == str(adapter) and _answers(alone) == expected


def test_chat_and_generate_load_the_adapter(grown, tmp_path):
    from chatmusician_hf.chat import ChatArguments, ChatSession
    from chatmusician_hf.generate import GenerateArguments
    from chatmusician_hf.generate import main as generate

    base, adapter, merged = grown
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"id": i, "prompt": p}) + "\n" for i, p in enumerate(PROMPTS)))
    responses = {}
    for name, model_args in (("adapter", ModelArguments(model=str(base), adapter=str(adapter))),
                             ("merged", ModelArguments(model=str(merged)))):
        out = tmp_path / f"{name}.jsonl"
        generate(model_args, GenerationArguments(**GREEDY), GenerateArguments(input=str(prompts), output=str(out)))
        responses[name] = [json.loads(line)["response"] for line in out.read_text().splitlines()]
    assert responses["adapter"] == responses["merged"] and all(responses["adapter"])

    loaded = load_model(ModelArguments(model=str(base), adapter=str(adapter), device="cpu"))
    session = ChatSession(loaded, GenerationArguments(**GREEDY), ChatArguments(), "grown")
    session.run(io.StringIO(f"{PROMPTS[0]}\n\n"), io.StringIO())
    assert session.history[0][1] == responses["merged"][0]


def test_evaluation_with_the_adapter_scores_as_the_merged_model(grown, tmp_path):
    from chatmusician_hf.eval.music_theory_bench import MusicTheoryBenchArguments
    from chatmusician_hf.eval.music_theory_bench import main as evaluate

    base, adapter, merged = grown
    reports = {
        name: evaluate(MusicTheoryBenchArguments(model=str(model), adapter=adapter_dir, dataset=str(BENCH), limit=6,
                                                 output_dir=str(tmp_path / name), device="cpu"))
        for name, model, adapter_dir in (("adapter", base, str(adapter)), ("merged", merged, None))
    }
    assert reports["adapter"]["model"]["adapter"] == str(adapter)
    with_adapter, merged_scores = (r["questions"] for r in (reports["adapter"], reports["merged"]))
    assert [q["prediction"] for q in with_adapter] == [q["prediction"] for q in merged_scores]
    for a, m in zip(with_adapter, merged_scores, strict=True):
        assert a["scores"] == pytest.approx(m["scores"], abs=1e-4)


def test_new_rows_follow_the_one_mean_rule(grown):
    """The pad row the adapter never trained is the mean of the base rows, in training and in every later load."""
    from safetensors.torch import load_file

    from chatmusician_hf.model_loader import load_model as load_any

    base, adapter, _ = grown
    base_embed = load_file(base / "model.safetensors")["model.embed_tokens.weight"]
    loaded = load_any(str(base), device="cpu", vocab_size=2049)
    grown_embed = loaded.model.get_input_embeddings().weight.detach()
    torch.testing.assert_close(grown_embed[2048], base_embed.float().mean(dim=0))
    torch.testing.assert_close(grown_embed[:2048], base_embed)
