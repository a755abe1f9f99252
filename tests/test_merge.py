"""The shard-by-shard LoRA merge: equal to PEFT, verified before it is published, careful with vocabularies."""

from __future__ import annotations

import json
import math

import pytest
import torch

from chatmusician_hf import merge
from chatmusician_hf.errors import MergeError, ModelLoadError, VerificationError
from chatmusician_hf.merge import MergeArguments
from chatmusician_hf.merging import shards
from chatmusician_hf.merging.adapter import load_adapter
from chatmusician_hf.merging.safetensors_io import iter_output_tensors
from chatmusician_hf.vocabulary import grow_vocabulary

from helpers.adapters import make_lora_adapter, save_sharded_copy


@pytest.fixture(scope="module", autouse=True)
def single_thread():
    """Tiny matrices run fastest on one thread; more threads only contend on a loaded 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def sharded_base(tiny_model_dir, tmp_path_factory):
    """The tiny model saved in 1 MB shards (6 files), so the merge walks several shards."""
    out = save_sharded_copy(tiny_model_dir, tmp_path_factory.mktemp("sharded-base") / "base", "1MB")
    assert len(list(out.glob("model-*.safetensors"))) > 2
    return out


@pytest.fixture(scope="module")
def adapter_dir(sharded_base, tmp_path_factory):
    """LoRA on every projection plus trained embed_tokens / lm_head copies, all perturbed."""
    return make_lora_adapter(sharded_base, tmp_path_factory.mktemp("adapter") / "lora")


@pytest.fixture(scope="module")
def merged_dir(sharded_base, adapter_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("merged") / "model"
    merge.main(
        MergeArguments(
            base=str(sharded_base), adapter=str(adapter_dir), output_dir=str(out), max_shard_size="2MB"
        )
    )
    return out


def peft_merge_and_unload(base_dir, adapter_path, vocab_size=None):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(base_dir))
    if vocab_size:
        grow_vocabulary(model, vocab_size)
    return PeftModel.from_pretrained(model, str(adapter_path)).merge_and_unload()


def probe_logits(model, token_ids):
    with torch.no_grad():
        return model(input_ids=torch.tensor([token_ids])).logits[0]


def test_shard_merge_equals_peft_merge_and_unload(sharded_base, adapter_dir, merged_dir):
    index = json.loads((merged_dir / "model.safetensors.index.json").read_text())
    shards = sorted(merged_dir.glob("model-*.safetensors"))
    assert len(shards) >= 2 and set(index["weight_map"].values()) == {p.name for p in shards}
    assert all(p.stat().st_size <= 2_000_000 + 100_000 for p in shards)  # limit plus the safetensors header

    merged = dict(iter_output_tensors(merged_dir))
    assert index["metadata"]["total_size"] == sum(t.numel() * t.element_size() for t in merged.values())
    reference = peft_merge_and_unload(sharded_base, adapter_dir).state_dict()
    assert set(merged) == set(reference)
    base = dict(iter_output_tensors(sharded_base))
    for key, tensor in reference.items():
        assert torch.equal(merged[key], tensor), key
    changed = [k for k in reference if not torch.equal(base[k], merged[k])]
    # every projection of every layer plus embed_tokens and lm_head was changed by the adapter
    assert len(changed) == 4 * 7 + 2


def test_merged_model_reloads_with_base_plus_adapter_logits(sharded_base, adapter_dir, merged_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    from chatmusician_hf.chat_format import CHATMUSICIAN_GENERATION_DEFAULTS, inference_prompt

    tokenizer = AutoTokenizer.from_pretrained(str(merged_dir))
    ids = tokenizer(inference_prompt("Compose a jig in G major. X:1\nK:G\n|:GAB"), add_special_tokens=False)[
        "input_ids"
    ]
    merged = AutoModelForCausalLM.from_pretrained(str(merged_dir)).eval()
    peft_model = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(str(sharded_base)), str(adapter_dir)
    )
    plain_base = AutoModelForCausalLM.from_pretrained(str(sharded_base)).eval()
    expected = probe_logits(peft_model.eval(), ids)
    torch.testing.assert_close(probe_logits(merged, ids), expected, rtol=0, atol=1e-4)
    assert (
        probe_logits(plain_base, ids) - expected
    ).abs().max() > 0.1  # the adapter really changes the model

    generation = GenerationConfig.from_pretrained(str(merged_dir))
    assert {
        k: getattr(generation, k) for k in CHATMUSICIAN_GENERATION_DEFAULTS
    } == CHATMUSICIAN_GENERATION_DEFAULTS
    assert tokenizer.chat_template and "Assistant: " in tokenizer.chat_template
    card = (merged_dir / "README.md").read_text()
    assert "base_model_relation: merge" in card
    assert not list(merged_dir.parent.glob(".*merging*"))  # the temporary folder was renamed, not left behind


def test_grown_vocabulary_with_trainable_tokens(tiny_model_dir, tmp_path):
    adapter = make_lora_adapter(
        tiny_model_dir, tmp_path / "lora", trainable_tokens=True, added_tokens=("<chat>",)
    )
    out = tmp_path / "merged"
    merge.main(MergeArguments(base=str(tiny_model_dir), adapter=str(adapter), output_dir=str(out)))

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(out))
    base_vocab = json.loads((tiny_model_dir / "config.json").read_text())["vocab_size"]
    assert json.loads((out / "config.json").read_text())["vocab_size"] == base_vocab + 1 == len(tokenizer)
    assert tokenizer.convert_tokens_to_ids("<chat>") == base_vocab

    merged = dict(iter_output_tensors(out))
    reference = peft_merge_and_unload(tiny_model_dir, adapter, vocab_size=base_vocab + 1).state_dict()
    for key, tensor in reference.items():
        torch.testing.assert_close(merged[key], tensor, rtol=0, atol=0, msg=key)
    base_embed = dict(iter_output_tensors(tiny_model_dir))["model.embed_tokens.weight"]
    # rows 5..7 and the new token were trained; an untrained row is the base's
    assert not torch.equal(merged["model.embed_tokens.weight"][5], base_embed[5])
    assert torch.equal(merged["model.embed_tokens.weight"][100], base_embed[100])


def corrupt_adapter(adapter_dir, dest, edit):
    import shutil

    from safetensors.torch import load_file, save_file

    shutil.copytree(adapter_dir, dest)
    tensors = load_file(str(dest / "adapter_model.safetensors"))
    edit(tensors)
    save_file(tensors, str(dest / "adapter_model.safetensors"))
    return dest


def test_corrupted_adapter_is_refused_and_nothing_is_written(sharded_base, adapter_dir, tmp_path, capsys):
    key = "base_model.model.model.layers.2.mlp.down_proj.lora_B.weight"
    bad = corrupt_adapter(adapter_dir, tmp_path / "bad", lambda t: t[key].view(-1)[7:9].fill_(math.nan))
    out = tmp_path / "merged"
    with pytest.raises(VerificationError, match=r"verification failed .* logit difference is nan"):
        merge.main(MergeArguments(base=str(sharded_base), adapter=str(bad), output_dir=str(out)))
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [bad]  # no temporary folder left either

    truncated = tmp_path / "truncated"
    corrupt_adapter(adapter_dir, truncated, lambda t: None)
    data = (truncated / "adapter_model.safetensors").read_bytes()
    (truncated / "adapter_model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(MergeError, match="cannot be read as safetensors"):
        merge.main(MergeArguments(base=str(sharded_base), adapter=str(truncated), output_dir=str(out)))


@pytest.mark.parametrize("mode", ["full", "sample"])
def test_verification_catches_a_wrong_merge(sharded_base, adapter_dir, tmp_path, monkeypatch, mode):
    """A merge bug (here: a LoRA scale off by 10% in layer 0) is caught by comparing against PEFT's own forward."""
    correct = shards.merged_tensor

    def off_by_ten_percent(key, read_base, adapter, *args):
        if key == "model.layers.0.self_attn.v_proj.weight":
            a, b, scale, transpose = adapter.lora[key]
            adapter.lora[key] = (a, b, scale * 1.1, transpose)
        return correct(key, read_base, adapter, *args)

    monkeypatch.setattr(shards, "merged_tensor", off_by_ten_percent)
    out = tmp_path / "merged"
    args = MergeArguments(base=str(sharded_base), adapter=str(adapter_dir), output_dir=str(out), verify=mode)
    args.verify_layers = 1
    with pytest.raises(VerificationError) as err:
        merge.main(args)
    assert err.value.max_difference > err.value.allowed > 0
    assert f"logit difference is {err.value.max_difference:.6g}" in str(err.value)
    assert not out.exists()


def test_half_precision_base_merges_within_dtype_tolerance(tiny_model_dir, tmp_path, capsys):
    base = save_sharded_copy(tiny_model_dir, tmp_path / "bf16", "1MB", dtype=torch.bfloat16)
    adapter = make_lora_adapter(base, tmp_path / "lora")
    out = tmp_path / "merged"
    merge.main(MergeArguments(base=str(base), adapter=str(adapter), output_dir=str(out), verify="sample"))
    merged = dict(iter_output_tensors(out))
    assert {t.dtype for t in merged.values()} == {torch.bfloat16}
    assert "verified (first 2 layers, bfloat16)" in capsys.readouterr().out


def test_inputs_are_checked_before_any_work(sharded_base, adapter_dir, tmp_path):
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "keep.txt").write_text("x")
    with pytest.raises(MergeError, match="--overwrite"):
        merge.main(MergeArguments(base=str(sharded_base), adapter=str(adapter_dir), output_dir=str(occupied)))
    with pytest.raises(ModelLoadError, match="base model 'no-such-user/no-such-model' is not a local folder"):
        merge.main(MergeArguments(base="no-such-user/no-such-model", adapter=str(adapter_dir),
                                  output_dir=str(tmp_path / "fresh")))
    with pytest.raises(MergeError, match="no adapter_config.json"):
        load_adapter(sharded_base)
    assert shards.parse_size("5GB") == 5 * 10**9 and shards.parse_size("500MiB") == 500 * 2**20
