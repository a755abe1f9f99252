"""Peak memory and time of the shard-by-shard LoRA merge against PEFT's ``merge_and_unload``, in the same run.

A random-weight LLaMA of about 1.06B parameters (hidden 2048, 18 layers, MLP 5632, vocabulary 32000, bf16) is
written to disk shard by shard, never whole in memory, with a ChatMusician-shaped adapter: LoRA r=64 on all seven
projections plus full ``embed_tokens`` / ``lm_head`` copies (``modules_to_save``). Each merge then runs in its own
subprocess, which reports its peak resident memory (``VmHWM``) and wall time:

* ``shard``: ``load_adapter`` + ``merge_shards`` from ``chatmusician_hf.merging`` (what ``chatmusician-hf merge`` runs
  before verification);
* ``peft``: ``AutoModelForCausalLM.from_pretrained`` + ``PeftModel.from_pretrained`` + ``merge_and_unload`` +
  ``save_pretrained``, the usual recipe.

Both write shards of the same size; the outputs are compared tensor by tensor. Target: shard peak <= 35% of PEFT's.
(Building the model takes a few minutes on 2 cores; ``--workdir DIR --keep`` lets a second run reuse it.)

    python benchmarks/merge_memory.py [--layers 18] [--max_shard_size 500MB] [--workdir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LORA_TARGETS = {
    "self_attn.q_proj": ("hidden", "hidden"),
    "self_attn.k_proj": ("hidden", "hidden"),
    "self_attn.v_proj": ("hidden", "hidden"),
    "self_attn.o_proj": ("hidden", "hidden"),
    "mlp.gate_proj": ("intermediate", "hidden"),
    "mlp.up_proj": ("intermediate", "hidden"),
    "mlp.down_proj": ("hidden", "intermediate"),
}  # module -> (out_features, in_features)


def base_tensor_shapes(args) -> list[tuple[str, tuple[int, ...]]]:
    dims = {"hidden": args.hidden, "intermediate": args.intermediate}
    shapes = [("model.embed_tokens.weight", (args.vocab, args.hidden))]
    for layer in range(args.layers):
        prefix = f"model.layers.{layer}"
        shapes += [(f"{prefix}.input_layernorm.weight", (args.hidden,))]
        shapes += [(f"{prefix}.{m}.weight", (dims[o], dims[i])) for m, (o, i) in LORA_TARGETS.items()]
        shapes += [(f"{prefix}.post_attention_layernorm.weight", (args.hidden,))]
    return shapes + [("model.norm.weight", (args.hidden,)), ("lm_head.weight", (args.vocab, args.hidden))]


def build_base(args, folder: Path) -> int:
    """Write the random base shard by shard; returns the parameter count."""
    import torch
    from safetensors.torch import save_file
    from transformers import LlamaConfig

    torch.manual_seed(0)
    limit = 500 * 10**6
    shards, current, size = [], {}, 0
    n_params = 0
    names = []

    def flush():
        nonlocal current, size
        if current:
            name = f"model-{len(names) + 1:05d}.safetensors"
            save_file(current, str(folder / name), metadata={"format": "pt"})
            names.append((name, list(current)))
        current, size = {}, 0

    for key, shape in base_tensor_shapes(args):
        if len(shape) == 1:
            tensor = torch.ones(shape, dtype=torch.bfloat16)
        else:
            tensor = (torch.randn(shape) * 0.02).to(torch.bfloat16)
        n_params += tensor.numel()
        if size + tensor.numel() * 2 > limit:
            flush()
        current[key] = tensor
        size += tensor.numel() * 2
    flush()
    del shards
    total = len(names)
    weight_map = {}
    for i, (name, keys) in enumerate(names):
        final = f"model-{i + 1:05d}-of-{total:05d}.safetensors"
        (folder / name).rename(folder / final)
        weight_map.update({k: final for k in keys})
    index = {"metadata": {"total_size": n_params * 2}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    config = LlamaConfig(
        vocab_size=args.vocab,
        hidden_size=args.hidden,
        intermediate_size=args.intermediate,
        num_hidden_layers=args.layers,
        num_attention_heads=args.hidden // 128,
        num_key_value_heads=args.hidden // 128,
        tie_word_embeddings=False,
        dtype="bfloat16",
    )
    config.architectures = ["LlamaForCausalLM"]
    config.save_pretrained(str(folder))
    return n_params


def build_adapter(args, folder: Path) -> int:
    """A PEFT-format adapter: LoRA factors for every projection and bf16 copies of embed_tokens / lm_head."""
    import torch
    from peft import LoraConfig
    from safetensors.torch import save_file

    torch.manual_seed(1)
    dims = {"hidden": args.hidden, "intermediate": args.intermediate}
    tensors = {}
    for layer in range(args.layers):
        for module, (out_name, in_name) in LORA_TARGETS.items():
            prefix = f"base_model.model.model.layers.{layer}.{module}"
            tensors[f"{prefix}.lora_A.weight"] = torch.randn(args.rank, dims[in_name]) * 0.01
            tensors[f"{prefix}.lora_B.weight"] = torch.randn(dims[out_name], args.rank) * 0.01
    for key in ("model.embed_tokens.weight", "lm_head.weight"):
        tensors[f"base_model.model.{key}"] = (torch.randn(args.vocab, args.hidden) * 0.02).to(torch.bfloat16)
    save_file(tensors, str(folder / "adapter_model.safetensors"), metadata={"format": "pt"})
    LoraConfig(
        r=args.rank,
        lora_alpha=16,
        target_modules=[m.split(".")[-1] for m in LORA_TARGETS],
        modules_to_save=["embed_tokens", "lm_head"],
        task_type="CAUSAL_LM",
        base_model_name_or_path=str(folder.parent / "base"),
    ).save_pretrained(str(folder))
    return sum(t.numel() for t in tensors.values())


def child(kind: str, base: str, adapter: str, out: str, max_shard_size: str) -> None:
    start = time.perf_counter()
    Path(out).mkdir(parents=True, exist_ok=True)
    if kind == "shard":
        from chatmusician_hf.merging.adapter import load_adapter
        from chatmusician_hf.merging.shards import merge_shards

        merge_shards(Path(base), load_adapter(Path(adapter)), Path(out), max_shard_size)
    else:
        import torch
        from peft import PeftModel
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.bfloat16)
        model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
        model.save_pretrained(out, max_shard_size=max_shard_size)
    print(json.dumps({"peak_mb": peak_rss_mb(), "seconds": time.perf_counter() - start}))


def peak_rss_mb() -> float:
    """Peak resident memory of this process image.

    ``VmHWM`` rather than ``ru_maxrss``: Linux carries ``ru_maxrss`` across fork+exec, so a child started by a
    parent that has just built a 2 GB model would report the parent's peak; ``VmHWM`` belongs to the new image."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux: kilobytes, inherited caveat


def run_child(kind: str, base: Path, adapter: Path, out: Path, max_shard_size: str) -> dict:
    command = [sys.executable, __file__, "--child", kind, "--base", str(base), "--adapter", str(adapter)]
    command += ["--out", str(out), "--max_shard_size", max_shard_size]
    result = subprocess.run(command, capture_output=True, text=True, timeout=3600)
    if result.returncode != 0:
        raise SystemExit(f"{kind} merge failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def compare_outputs(shard_out: Path, peft_out: Path) -> dict:
    """Tensor-by-tensor comparison of the two merged checkpoints (names, shapes, dtypes, values)."""
    import torch
    from safetensors import safe_open

    def index(folder):
        return json.loads((folder / "model.safetensors.index.json").read_text())["weight_map"]

    ours, theirs = index(shard_out), index(peft_out)
    if set(ours) != set(theirs):
        raise SystemExit(f"different tensor names: {sorted(set(ours) ^ set(theirs))[:5]}")
    identical, max_difference = 0, 0.0
    for key in sorted(ours):
        with (
            safe_open(str(shard_out / ours[key]), "pt") as a,
            safe_open(str(peft_out / theirs[key]), "pt") as b,
        ):
            x, y = a.get_tensor(key), b.get_tensor(key)
        if x.shape != y.shape or x.dtype != y.dtype:
            raise SystemExit(f"{key}: {tuple(x.shape)} {x.dtype} vs {tuple(y.shape)} {y.dtype}")
        if torch.equal(x, y):
            identical += 1
        else:
            max_difference = max(max_difference, (x.float() - y.float()).abs().max().item())
    return {"tensors": len(ours), "bit_identical": identical, "max_difference": max_difference}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", type=int, default=18, help="decoder layers (18 -> 1.06B parameters)")
    parser.add_argument("--hidden", type=int, default=2048, help="hidden size")
    parser.add_argument("--intermediate", type=int, default=5632, help="MLP size")
    parser.add_argument("--vocab", type=int, default=32000, help="vocabulary size")
    parser.add_argument("--rank", type=int, default=64, help="LoRA rank (ChatMusician: 64)")
    parser.add_argument("--max_shard_size", default="500MB", help="output shard size for both merges")
    parser.add_argument(
        "--workdir", default=None, help="where to build the model (default: a temporary folder)"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the work folder (a later run reuses its model)"
    )
    parser.add_argument("--child", choices=["shard", "peft"], help=argparse.SUPPRESS)
    parser.add_argument("--base", help=argparse.SUPPRESS)
    parser.add_argument("--adapter", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.base, args.adapter, args.out, args.max_shard_size)
        return

    work = Path(args.workdir or tempfile.mkdtemp(prefix="merge-memory-"))
    base, adapter = work / "base", work / "adapter"
    base.mkdir(parents=True, exist_ok=True)
    adapter.mkdir(parents=True, exist_ok=True)
    try:
        start = time.perf_counter()
        if (base / "model.safetensors.index.json").is_file() and (adapter / "adapter_config.json").is_file():
            print(
                f"reusing the model and adapter in {work}"
            )  # from an earlier --keep run with the same sizes
        else:
            n_params = build_base(args, base)
            n_adapter = build_adapter(args, adapter)
            n_shards = len(list(base.glob("model-*.safetensors")))
            print(
                f"built base: {n_params / 1e9:.3f}B parameters, bf16, {n_shards} shards; adapter: "
                f"{n_adapter / 1e6:.1f}M parameters ({time.perf_counter() - start:.0f}s)"
            )
        results = {}
        for kind in ("shard", "peft"):
            out = work / f"merged-{kind}"
            shutil.rmtree(out, ignore_errors=True)
            results[kind] = run_child(kind, base, adapter, out, args.max_shard_size)
            print(
                f"{kind:>5}: peak RSS {results[kind]['peak_mb']:8.0f} MB, {results[kind]['seconds']:6.1f} s"
            )
        comparison = compare_outputs(work / "merged-shard", work / "merged-peft")
        ratio = results["shard"]["peak_mb"] / results["peft"]["peak_mb"]
        print(
            f"peak memory shard/peft = {ratio:.1%} (target <= 35%: {'met' if ratio <= 0.35 else 'NOT met'}); "
            f"time shard/peft = {results['shard']['seconds'] / results['peft']['seconds']:.2f}x"
        )
        print(
            f"tensors: {comparison['bit_identical']}/{comparison['tensors']} bit-identical"
            + (
                f", max |difference| {comparison['max_difference']:.3g}"
                if comparison["max_difference"]
                else ""
            )
        )
        assert math.isfinite(ratio)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
