"""Continued-pretraining throughput: the suite's CPT trainer against the plain transformers + PEFT loop.

The workload is the seed's (shared/REFERENCE.md §6): a LLaMA-2-7B-shaped model with random weights (no download),
LoRA r64/alpha16/dropout0.1 on q,k,v,o,gate,up,down plus trained embed_tokens and lm_head copies, 2048-token packed
blocks, bf16. Each variant runs in its own process (a fresh GPU, and an OOM stays a row in the table).

    python benchmarks/train_throughput.py --shape 7b --device cuda        # one H100/H200, ~4 minutes
    python benchmarks/train_throughput.py --shape tiny --device cpu        # the same comparison on the tiny model

Prints tokens/s, MFU, peak memory and the ratio to the plain loop, and the largest difference between the two loss
curves over the measured steps (same seed, same data).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time

SHAPES = {
    "7b": dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32, vocab_size=32000),
    "tiny": dict(hidden_size=128, intermediate_size=352, num_hidden_layers=4, num_attention_heads=4, vocab_size=2048),
}
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def flops_per_token(shape: dict, seq_len: int) -> float:
    """Training FLOPs per token with a frozen base: 4 x frozen matmul weights (forward + input gradients, no weight
    gradients), 6 x the trained lm_head, plus attention scores. 29.9 GFLOP for LLaMA-2-7B at 2048, the
    convention of shared/REFERENCE.md §6 (29.3 G); LoRA's own FLOPs (<2%) are left out."""
    h, i, n, v = shape["hidden_size"], shape["intermediate_size"], shape["num_hidden_layers"], shape["vocab_size"]
    frozen = n * (4 * h * h + 3 * h * i)
    return 4 * frozen + 6 * v * h + 12 * n * h * seq_len


def make_blocks(n_blocks: int, seq_len: int, vocab: int, seed: int = 0):
    """Synthetic packed blocks: documents of random length, per-document position ids (what the data stage emits)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    blocks = []
    for _ in range(n_blocks):
        ids = torch.randint(3, vocab, (seq_len,), generator=g)
        positions, start = [], 0
        while start < seq_len:
            length = int(torch.randint(64, seq_len, (1,), generator=g))
            positions += list(range(min(length, seq_len - start)))
            start += length
        blocks.append({"input_ids": ids.tolist(), "position_ids": positions})
    return blocks


def build_model(shape: dict, dtype, device: str, seed: int):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(**shape, num_key_value_heads=shape["num_attention_heads"], max_position_embeddings=4096,
                         tie_word_embeddings=False, attn_implementation="sdpa")
    torch.manual_seed(seed)
    with torch.device(device):
        model = LlamaForCausalLM(config).to(dtype)
    return model


def lora_config():
    from peft import LoraConfig

    return LoraConfig(task_type="CAUSAL_LM", r=64, lora_alpha=16, lora_dropout=0.1, target_modules=TARGETS,
                      modules_to_save=["embed_tokens", "lm_head"])


def run_plain(opts: dict) -> dict:
    """The plain way: fp32 weights, PEFT LoRA, torch AdamW, bf16 autocast, a hand-written loop."""
    import torch
    from peft import get_peft_model

    from chatmusician_hf.cpt import PackedBlockCollator

    device = opts["device"]
    model = get_peft_model(build_model(SHAPES[opts["shape"]], torch.float32, device, opts["seed"]), lora_config())
    if opts["gradient_checkpointing"]:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0)
    collate = PackedBlockCollator(pad_token_id=0)
    blocks = make_blocks(opts["micro_batch"] * opts["steps"], opts["seq_len"], SHAPES[opts["shape"]]["vocab_size"])
    losses, times = [], []
    for step in range(opts["steps"]):
        batch = {k: v.to(device) for k, v in collate(blocks[step * opts["micro_batch"]:(step + 1) * opts["micro_batch"]]).items()}
        start = time.perf_counter()
        with torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16, enabled=opts["bf16"]):
            loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())  # .item() synchronises, so the step time is complete
        times.append(time.perf_counter() - start)
    return {"losses": losses, "times": times}


def run_suite(opts: dict) -> dict:
    """The suite's way: CPTTrainer + CPTConfig with the 7B recipe's performance settings."""
    import torch
    from datasets import Dataset
    from peft import get_peft_model
    from transformers import TrainerCallback

    from chatmusician_hf.cpt import CPTConfig, CPTTrainer, PackedBlockCollator
    from chatmusician_hf.training.loading import upcast_trainable_parameters

    device = opts["device"]
    dtype = torch.bfloat16 if opts["bf16"] else torch.float32
    model = get_peft_model(build_model(SHAPES[opts["shape"]], dtype, device, opts["seed"]), lora_config())
    upcast_trainable_parameters(model)
    blocks = make_blocks(opts["micro_batch"] * opts["steps"], opts["seq_len"], SHAPES[opts["shape"]]["vocab_size"])

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.times, self.losses, self._start = [], [], None

        def on_step_begin(self, args, state, control, **kwargs):
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            self._start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            self.times.append(time.perf_counter() - self._start)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                self.losses.append(logs["loss"])

    timer = StepTimer()
    with tempfile.TemporaryDirectory() as out:
        args = CPTConfig(
            output_dir=out, per_device_train_batch_size=opts["micro_batch"], max_steps=opts["steps"],
            learning_rate=1e-4, lr_scheduler_type="constant", max_grad_norm=1.0, weight_decay=0.0,
            bf16=opts["bf16"], use_cpu=device == "cpu", logging_steps=1, save_strategy="no", report_to="none",
            gradient_checkpointing=opts["gradient_checkpointing"], use_liger_kernel=opts["liger"],
            dataloader_num_workers=0, seed=opts["seed"], data_seed=opts["seed"], disable_tqdm=True,
        )
        trainer = CPTTrainer(model=model, args=args, train_dataset=Dataset.from_list(blocks),
                             data_collator=PackedBlockCollator(0), callbacks=[timer])
        # Keep the block order of the plain loop so the loss curves are comparable.
        trainer._get_train_sampler = lambda *a, **k: torch.utils.data.SequentialSampler(blocks)
        trainer.train()
    return {"losses": timer.losses, "times": timer.times}


def child(opts: dict) -> None:
    import torch

    if opts["device"].startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    try:
        result = (run_plain if opts["variant"] == "plain" else run_suite)(opts)
        result["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30 if opts["device"].startswith("cuda") else None
    except torch.OutOfMemoryError:
        result = {"error": "OOM"}
    print("RESULT " + json.dumps(result))


def spawn(opts: dict) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(opts)], capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    return {"error": (proc.stderr or proc.stdout).strip().splitlines()[-1][:200] if (proc.stderr or proc.stdout) else "no output"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", choices=sorted(SHAPES), default="tiny")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seq-len", type=int, default=None, help="default: 2048 for 7b, 512 for tiny")
    parser.add_argument("--steps", type=int, default=None, help="measured optimizer steps (default 20 on GPU, 12 on CPU)")
    parser.add_argument("--warmup", type=int, default=3, help="first steps left out of the timing")
    parser.add_argument("--plain-micro-batch", type=int, default=None, help="default: 2 (7b), 8 (tiny)")
    parser.add_argument("--suite-micro-batch", type=int, default=None, help="default: 4 (7b), 8 (tiny)")
    parser.add_argument("--liger", action="store_true", help="suite variant with Liger kernels (needs liger-kernel)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(json.loads(args.child))

    gpu = args.device.startswith("cuda")
    seq_len = args.seq_len or (2048 if args.shape == "7b" else 512)
    steps = args.steps or (20 if gpu else 12)
    common = dict(shape=args.shape, device=args.device, seq_len=seq_len, steps=steps, seed=0, bf16=gpu,
                  gradient_checkpointing=False, liger=False)
    variants = {
        "plain (fp32 weights, autocast)": dict(common, variant="plain",
                                               micro_batch=args.plain_micro_batch or (2 if args.shape == "7b" else 8)),
        "suite CPTTrainer (bf16 frozen base)": dict(common, variant="suite",
                                                    micro_batch=args.suite_micro_batch or (4 if args.shape == "7b" else 8)),
    }
    if args.liger:
        variants["suite CPTTrainer + Liger"] = dict(variants["suite CPTTrainer (bf16 frozen base)"], liger=True)

    fpt = flops_per_token(SHAPES[args.shape], seq_len)
    peak_flops = 798e12 if gpu else None  # measured bf16 dense matmul on the H100 (REFERENCE §6)
    rows, baseline, curves = [], None, {}
    for name, opts in variants.items():
        result = spawn(opts)
        if "error" in result:
            rows.append((name, opts["micro_batch"], None, None, None, result["error"]))
            continue
        timed = result["times"][args.warmup:]
        tps = opts["micro_batch"] * seq_len * len(timed) / sum(timed)
        baseline = baseline or tps
        curves[name] = result["losses"]
        mfu = tps * fpt / peak_flops if peak_flops else None
        rows.append((name, opts["micro_batch"], tps, mfu, result.get("peak_gib"), f"{tps / baseline:.2f}x"))

    print(f"\nshape={args.shape} device={args.device} seq_len={seq_len} steps={steps} (first {args.warmup} untimed)")
    print(f"{'variant':40s} {'mb':>3s} {'tokens/s':>10s} {'MFU':>6s} {'peak GiB':>9s}  vs plain")
    for name, mb, tps, mfu, peak, ratio in rows:
        print(f"{name:40s} {mb:3d} {tps or 0:10.0f} {'' if mfu is None else f'{mfu:.0%}':>6s} "
              f"{'' if peak is None else f'{peak:.1f}':>9s}  {ratio}")
    names = list(curves)
    if len(names) >= 2:
        a, b = curves[names[0]], curves[names[1]]
        # Different micro-batches see different blocks per step, so compare the smoothed level, not step by step.
        n = min(len(a), len(b))
        level = lambda c: sum(c[n // 2:n]) / max(1, n - n // 2)
        print(f"loss level over the second half of the run: {names[0]} {level(a):.4f}, {names[1]} {level(b):.4f} "
              f"(relative difference {abs(level(a) - level(b)) / level(a):.2%})")
        if any(math.isnan(x) for x in a + b):
            print("WARNING: NaN in a loss curve")


if __name__ == "__main__":
    main()
