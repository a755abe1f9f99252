"""Pretraining preprocessing throughput and streaming memory, against ChatMusician's own approach, in one run.

1. Throughput (tokens/s): the music21 corpus repeated to ``--tokens`` tokens (default 50M) in a JSONL file, prepared
   by ``chatmusician_hf.data.pretraining.pack_pretraining`` (piece-cached batch tokenisation in ``num_proc`` forked
   processes, packing into ``--max_length`` blocks, Arrow output) and by the original ChatMusician preprocessing
   (``datasets.map`` calling the tokenizer once per row, ``input_ids`` and a ``labels`` copy, no packing) with the
   same number of processes. The baseline is slow, so by default it runs on the first ``--baseline_share`` of the
   rows; its rate is what is compared. Both read the same already-converted Arrow data. The baseline calls the same
   Rust-backed fast tokenizer as ours; ChatMusician's own LLaMA tokenizer was also a fast one by default, but a slow
   (pure Python) tokenizer would make the baseline far slower, so this is the generous comparison. On the same rows
   as the baseline, the suite's path is also timed with the Rust batch encoder instead of the piece encoder, to show
   what each part contributes.
2. Memory: the highest RSS of a child process while it streams the corpus through tokenisation and packing, for
   an input of N and of 10N rows; streaming should keep it flat (within 20%).

    python benchmarks/preprocess_throughput.py --tokenizer outputs/tiny-base            # ~5 min on 2 cores
    python benchmarks/preprocess_throughput.py --tokenizer outputs/tiny-base --tokens 5e6  # quick look
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
from pathlib import Path


def tokenizer_dir(path: str | None, work: Path) -> str:
    if path:
        return path
    from chatmusician_hf.tiny import InitTinyArguments
    from chatmusician_hf.tiny import main as init_tiny

    return str(init_tiny(InitTinyArguments(output_dir=str(work / "tiny"))))


def write_corpus(path: Path, repeats: int, rows_per_pass: int | None = None) -> int:
    from chatmusician_hf.data.corpus import build_music21_corpus

    train = build_music21_corpus()["train"]
    texts, srcs = list(train["text"]), list(train["src"])
    if rows_per_pass is not None:
        texts, srcs = texts[:rows_per_pass], srcs[:rows_per_pass]
    with path.open("w") as f:
        for r in range(repeats):
            for i, (text, src) in enumerate(zip(texts, srcs, strict=True)):
                f.write(json.dumps({"id": f"{r}-{i}", "text": text, "src": src}) + "\n")
    return repeats * len(texts)


def cpu_seconds() -> float:
    """CPU time of this process and of its finished child processes (the worker pools of both pipelines)."""
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def original_chatmusician(dataset, tokenizer, num_proc: int):
    """ChatMusician's ``data_preprocess.py --tokenize_fn pt``: one tokenizer call per row, labels copied, no packing."""

    def tokenize_function_pt(sample):
        result = tokenizer(sample["text"], return_attention_mask=False, add_special_tokens=False)
        return {"input_ids": result["input_ids"], "labels": result["input_ids"]}

    return dataset.map(tokenize_function_pt, num_proc=num_proc, remove_columns=dataset.column_names)


def throughput(args, work: Path, tok_path: str) -> dict:
    import datasets
    from transformers import AutoTokenizer

    from chatmusician_hf.data.config import DataArguments
    from chatmusician_hf.data.corpus import build_music21_corpus
    from chatmusician_hf.data.encoding import clear_encoder_cache, encode_batch
    from chatmusician_hf.data.pretraining import pack_pretraining
    from chatmusician_hf.data.token_batches import Tokenization

    tokenizer = AutoTokenizer.from_pretrained(tok_path)
    texts = list(build_music21_corpus()["train"]["text"])
    alone = {}
    for label, fast in (
        ("Rust batch encoder", False),
        ("piece encoder, cold", True),
        ("piece encoder, warm", True),
    ):
        if label.endswith("cold") or not fast:
            clear_encoder_cache()
        start = time.perf_counter()
        pass_tokens = sum(
            len(encode_batch(tokenizer, texts[i : i + 1000], pieces=fast)[0]) for i in range(0, len(texts), 1000)
        )
        alone[label] = pass_tokens / (time.perf_counter() - start)
        print(f"tokenizer alone, one pass, one process, {label}: {alone[label]:,.0f} tokens/s")
    clear_encoder_cache()
    repeats = math.ceil(args.tokens / pass_tokens)
    corpus = work / "corpus.jsonl"
    rows = write_corpus(corpus, repeats)
    print(f"corpus: {rows:,} rows, {repeats} passes of {pass_tokens:,} tokens (+1 EOS per row in ours)")
    source = datasets.load_dataset(
        "json", data_files=str(corpus), split="train"
    )  # convert to Arrow once, untimed

    data_args = DataArguments(
        dataset_name=str(corpus),
        validation_fraction=0,
        num_proc=args.num_proc,
        data_cache_dir=str(work / "cache"),
    )
    start, cpu = time.perf_counter(), cpu_seconds()
    packed, stats = pack_pretraining(data_args, tokenizer, args.max_length)
    ours_s, ours_cpu = time.perf_counter() - start, cpu_seconds() - cpu
    start = time.perf_counter()
    pack_pretraining(data_args, tokenizer, args.max_length)
    cached_s = time.perf_counter() - start

    subset = source.select(range(int(len(source) * args.baseline_share)))
    start, cpu = time.perf_counter(), cpu_seconds()
    baseline = original_chatmusician(subset, tokenizer, args.num_proc)
    base_s, base_cpu = time.perf_counter() - start, cpu_seconds() - cpu
    base_tokens = sum(len(ids) for ids in baseline.with_format("arrow")["input_ids"].to_pylist())

    # The suite's path on the baseline's rows with the Rust batch encoder (its own cache folder, cold).
    clear_encoder_cache()
    rust_args = DataArguments(
        dataset_name=str(corpus),
        validation_fraction=0,
        num_proc=args.num_proc,
        max_rows=len(subset),
        data_cache_dir=str(work / "cache-rust"),
    )
    start = time.perf_counter()
    _, rust_stats = pack_pretraining(rust_args, tokenizer, args.max_length, tokenization=Tokenization(pieces=False))
    rust_s = time.perf_counter() - start

    ours_rate, base_rate = stats.tokens / ours_s, base_tokens / base_s
    result = {
        "tokens": stats.tokens,
        "blocks": stats.blocks,
        "padding_fraction": stats.padding_fraction,
        "ours_s": ours_s,
        "ours_tokens_per_s": ours_rate,
        "cached_rerun_s": cached_s,
        "baseline_tokens": base_tokens,
        "baseline_s": base_s,
        "baseline_tokens_per_s": base_rate,
        "speedup": ours_rate / base_rate,
        "ours_tokens_per_cpu_s": stats.tokens / ours_cpu,
        "baseline_tokens_per_cpu_s": base_tokens / base_cpu,
        "rust_encoder_path_tokens": rust_stats.tokens,
        "rust_encoder_path_tokens_per_s": rust_stats.tokens / rust_s,
        "tokenizer_alone_tokens_per_s": alone,
    }
    print(
        f"ours    : {stats.tokens:,} tokens -> {stats.blocks:,} blocks of {args.max_length} in {ours_s:.1f} s "
        f"= {ours_rate:,.0f} tokens/s (padding {stats.padding_fraction:.3%}); cached rerun {cached_s:.1f} s"
    )
    print(
        f"original: {base_tokens:,} tokens in {base_s:.1f} s = {base_rate:,.0f} tokens/s (per-row, unpacked)"
    )
    print(
        f"ours with the Rust batch encoder instead of the piece encoder, baseline's rows: {rust_stats.tokens:,} "
        f"tokens in {rust_s:.1f} s = {rust_stats.tokens / rust_s:,.0f} tokens/s ({rust_stats.tokens / rust_s / base_rate:.1f}x)"
    )
    print(f"speedup : {ours_rate / base_rate:.1f}x (target >= 5x)")
    print(
        f"per CPU-second (all processes; less sensitive to other load on the machine): ours "
        f"{stats.tokens / ours_cpu:,.0f}, original {base_tokens / base_cpu:,.0f} tokens = "
        f"{stats.tokens / ours_cpu / (base_tokens / base_cpu):.1f}x"
    )
    print("load average (1, 5, 15 min) at the end: " + ", ".join(f"{x:.1f}" for x in os.getloadavg()))
    del packed
    return result


def _child_peak_rss(args, tok_path: str, corpus: Path) -> tuple[float, float, int]:
    """(RSS before streaming, highest RSS sampled while streaming) in MiB, and the tokens streamed.

    The process high-water mark (ru_maxrss) is set by importing torch/transformers, so the stream's own use is
    sampled from /proc/self/status every 20 blocks instead."""
    code = f"""
from transformers import AutoTokenizer
from chatmusician_hf.data.config import DataArguments
from chatmusician_hf.data.pretraining import build_pretraining_dataset

def rss_mib():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

tok = AutoTokenizer.from_pretrained({tok_path!r})
blocks = build_pretraining_dataset(
    DataArguments(dataset_name={str(corpus)!r}, validation_fraction=0, streaming=True), tok, {args.max_length}
)
before, peak, n = rss_mib(), 0.0, 0
for i, block in enumerate(blocks):
    n += len(block["input_ids"])
    if i % 20 == 0:
        peak = max(peak, rss_mib())
print(before, max(peak, rss_mib()), n)
"""
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout.split()
    return float(out[-3]), float(out[-2]), int(out[-1])


def memory(args, work: Path, tok_path: str) -> dict:
    result = {}
    for factor in (1, 10):
        corpus = work / f"stream-{factor}.jsonl"
        rows = write_corpus(corpus, factor, rows_per_pass=args.memory_rows)
        before, peak, tokens = _child_peak_rss(args, tok_path, corpus)
        result[factor] = {"rows": rows, "tokens": tokens, "rss_before_mb": before, "peak_rss_mb": peak}
        print(
            f"streaming {rows:>7,} rows / {tokens:>10,} tokens: RSS {before:,.0f} MiB before, "
            f"{peak:,.0f} MiB at most while streaming"
        )
    growth = result[10]["peak_rss_mb"] / result[1]["peak_rss_mb"] - 1
    print(f"peak RSS growth for 10x input: {growth:+.1%} (target within 20%)")
    result["growth"] = growth
    return result


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tokenizer", help="Tokenizer folder (default: build the tiny one with init-tiny).")
    parser.add_argument(
        "--tokens", type=float, default=50e6, help="Corpus size in tokens for the throughput run."
    )
    parser.add_argument("--max_length", type=int, default=2048, help="Packed block length.")
    parser.add_argument("--num_proc", type=int, default=os.cpu_count(), help="Processes for both pipelines.")
    parser.add_argument(
        "--baseline_share", type=float, default=0.1, help="Share of the rows the baseline runs on."
    )
    parser.add_argument(
        "--memory_rows", type=int, default=1500, help="Tunes per pass in the memory test (N)."
    )
    parser.add_argument("--skip_memory", action="store_true", help="Only measure throughput.")
    parser.add_argument("--skip_throughput", action="store_true", help="Only measure streaming memory.")
    args = parser.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
    with tempfile.TemporaryDirectory(prefix="cm-bench-") as tmp:
        work = Path(tmp)
        os.environ["HF_DATASETS_CACHE"] = str(work / "hf-datasets")  # a cold, private datasets cache
        tok_path = tokenizer_dir(args.tokenizer, work)
        results = {}
        if not args.skip_throughput:
            results["throughput"] = throughput(args, work, tok_path)
        if not args.skip_memory:
            results["memory"] = memory(args, work, tok_path)
    return results


if __name__ == "__main__":
    main()
