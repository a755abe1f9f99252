"""Generation speed with and without the ABC logits processor, same model, prompts and seed, in one run.

    python benchmarks/constrained_decoding.py                       # tiny model (built with init-tiny), CPU
    python benchmarks/constrained_decoding.py --model outputs/tiny-cpt
    python benchmarks/constrained_decoding.py --device cuda --shape 7b   # LLaMA-2-7B shape, random weights, bf16

Prints tokens/s of both runs, the overhead of the processor (target: <= 15% of unconstrained decoding time), and
the share of generated tunes that abc2midi accepts and of inner bars that fit, with and without it.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    LogitsProcessorList,
)

from chatmusician_hf.constrain import build_abc_logits_processor

HEADERS = [
    "X:1\nT:Jig\nM:6/8\nL:1/8\nK:G\n",
    "X:1\nT:Reel\nM:4/4\nL:1/8\nK:D\n",
    "X:1\nT:Waltz\nM:3/4\nL:1/8\nK:Am\n",
    "X:1\nT:Polka\nM:2/4\nL:1/16\nK:A\n",
    "X:1\nT:Hornpipe\nM:C|\nL:1/8\nK:Em\n",
    "X:1\nT:Slip jig\nM:9/8\nL:1/8\nK:Ador\n",
    "X:1\nT:March\nM:C\nL:1/8\nK:F\n",
    "X:1\nT:Air\nM:3/4\nL:1/4\nK:Bb\n",
]
LLAMA2_7B = dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32)


def load(args):
    if args.model:
        tokenizer = AutoTokenizer.from_pretrained(args.model)
        model = AutoModelForCausalLM.from_pretrained(args.model)
    else:
        from chatmusician_hf.tiny import InitTinyArguments
        from chatmusician_hf.tiny import main as init_tiny

        folder = init_tiny(InitTinyArguments(output_dir=tempfile.mkdtemp(prefix="bench-tiny-")))
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForCausalLM.from_pretrained(folder)
    if args.shape == "7b":
        # LLaMA-2-7B's shape with random weights and its 32,000-token vocabulary (ids past the tokenizer add no text)
        config = LlamaConfig(vocab_size=32000, **LLAMA2_7B, bos_token_id=1, eos_token_id=2, pad_token_id=0)
        with torch.device(args.device):
            model = LlamaForCausalLM(config).to(torch.bfloat16)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:  # (a LLaMA-2-style tokenizer has none; the end token pads, as ChatMusician does)
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer, model.to(args.device).eval()


def run(model, tokenizer, args, processor):
    prompts = (HEADERS * (args.batch // len(HEADERS) + 1))[: args.batch]
    inputs = tokenizer(prompts, return_tensors="pt", padding=True).to(args.device)
    sampling = dict(do_sample=True, temperature=args.temperature, top_k=40, top_p=0.9)
    torch.manual_seed(args.seed)
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = model.generate(
        **inputs,
        **sampling,
        max_new_tokens=args.max_new_tokens,
        min_new_tokens=args.max_new_tokens,  # same token count in both runs
        logits_processor=LogitsProcessorList([processor] if processor else []),
        pad_token_id=tokenizer.pad_token_id,
    )
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    generated = out[:, inputs["input_ids"].shape[1] :]
    texts = [
        p + tokenizer.decode(row, skip_special_tokens=True) for p, row in zip(prompts, generated, strict=True)
    ]
    return generated.numel() / seconds, texts


class TimedProcessor:
    """The processor, with the time spent inside it added up."""

    def __init__(self, processor):
        self.processor, self.seconds = processor, 0.0

    def __call__(self, input_ids, scores):
        start = time.perf_counter()
        try:
            return self.processor(input_ids, scores)
        finally:
            self.seconds += time.perf_counter() - start


def quality(texts):
    from chatmusician_hf.music import extract_tunes, validate_abc

    reports = [validate_abc(tune.abc) for text in texts for tune in extract_tunes(text)[:1]]
    if not reports:
        return "no tunes"
    bars = sum(r.n_bars for r in reports) or 1
    parses = sum(r.parses for r in reports) / len(reports)
    fit = 1 - sum(r.n_bad_bars for r in reports) / bars
    return f"{len(reports)} tunes: abc2midi parses {parses:.0%}, inner bars fitting {fit:.1%}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="Model folder (default: a fresh init-tiny model).")
    parser.add_argument("--device", default="cpu", help="cpu or cuda.")
    parser.add_argument(
        "--shape", choices=["tiny", "7b"], default="tiny", help="7b: LLaMA-2-7B shape, random."
    )
    parser.add_argument("--batch", type=int, default=4, help="Prompts generated together.")
    parser.add_argument("--max-new-tokens", type=int, default=128, help="Tokens generated per prompt.")
    parser.add_argument("--temperature", type=float, default=0.8, help="Sampling temperature.")
    parser.add_argument("--repeats", type=int, default=2, help="Timed runs of each variant (best is kept).")
    parser.add_argument("--seed", type=int, default=0, help="Sampling seed (same for both variants).")
    parser.add_argument("--no-quality", action="store_true", help="Skip the abc2midi check of the outputs.")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)."
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    tokenizer, model = load(args)
    processor = build_abc_logits_processor(
        tokenizer, top_k=40, top_p=0.9, temperature=args.temperature, max_new_tokens=args.max_new_tokens
    )
    run(model, tokenizer, argparse.Namespace(**{**vars(args), "max_new_tokens": 4}), None)  # warm-up
    # the variants alternate, so a machine whose load changes during the run slows both alike
    free_runs, constrained_runs = [], []
    for _ in range(args.repeats):
        free_runs.append(run(model, tokenizer, args, None))
        constrained_runs.append(run(model, tokenizer, args, processor))
    free_speed, free_texts = max(free_runs, key=lambda r: r[0])
    constrained_speed, constrained_texts = max(constrained_runs, key=lambda r: r[0])
    overhead = free_speed / constrained_speed - 1
    # the same overhead measured from the inside: the processor's own time, against one unconstrained run --
    # steadier than the difference of two timings on a machine whose load changes
    timed = TimedProcessor(processor)
    run(model, tokenizer, args, timed)
    tokens = args.batch * args.max_new_tokens
    print(
        f"device {args.device}, shape {args.shape}, batch {args.batch}, {args.max_new_tokens} new tokens each"
    )
    print(f"unconstrained: {free_speed:8.1f} tokens/s")
    print(f"constrained:   {constrained_speed:8.1f} tokens/s")
    print(f"overhead: {overhead:+.1%} of unconstrained decoding time (target <= 15%)")
    print(
        f"processor's own time: {timed.seconds:.2f} s for {tokens} tokens = "
        f"{timed.seconds * free_speed / tokens:+.1%} of unconstrained decoding time"
    )
    print(f"processor: {processor.stats}")
    if not args.no_quality:
        print(f"unconstrained quality: {quality(free_texts)}")
        print(f"constrained quality:   {quality(constrained_texts)}")
    return overhead


if __name__ == "__main__":
    main()
