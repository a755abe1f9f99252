"""Inference latency on CPU for the tiny model, and render latency for a 32-bar tune, each against a baseline run here.

* Streaming (``chatmusician_hf.inference.stream_answer``): time to the first streamed piece, and tokens/s, against
  plain ``model.generate`` of the same number of tokens with no streamer (the cost of streaming).
* Music-aware decoding (``--constrain abc``): tokens/s against unconstrained decoding.
* Rendering (``chatmusician_hf.music.render_abc``) of a 32-bar two-voice tune to SVG + MIDI + WAV, against the
  validation alone it starts with; target < 0.5 s.

The page-show time (score and audio visible in Chromium after clicking Render) is printed by
``tests/test_space.py::test_browser_pastes_a_two_voice_tune_and_sees_score_and_audio`` (run pytest with ``-s``).

    python benchmarks/inference.py [--model DIR] [--tokens 64] [--repeats 5] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path

PROMPT = "Using ABC notation, recreate the given text as a musical score.\nMeter C\nKey D\nNote Length 1/8\nRhythm reel"


def tune_32_bars() -> str:
    melody = ["GABc dedB", "c2ec B2dB", "c2A2 A2BA", "GABc dedB", "dedB dedB", "c2ec B2dB", "A2F2 G4", "G8"]
    bass = ["G,2D,2 G,2D,2", "C,2G,2 G,2D,2", "D,2A,2 D,2A,2", "G,2D,2 G,2B,,2"]
    lines = ["X:1", "T:Benchmark tune", "M:4/4", "L:1/8", "Q:1/4=120", "K:G", "V:1"]
    lines += ["|".join(melody[(i + j) % 8] for j in range(4)) + "|" for i in range(0, 32, 4)]
    lines += ["V:2 clef=bass"]
    lines += ["|".join(bass[(i + j) % 4] for j in range(4)) + "|" for i in range(0, 32, 4)]
    return "\n".join(lines) + "\n"


def timed(function, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def bench_generation(model_dir: str, tokens: int, repeats: int) -> None:
    import torch

    from chatmusician_hf.inference import (
        GenerationArguments,
        ModelArguments,
        fit_prompt,
        generation_kwargs,
        load_model,
        stream_answer,
    )

    loaded = load_model(ModelArguments(model=model_dir))
    prompt = fit_prompt(loaded.tokenizer, PROMPT, [], 1536)
    # Exactly `tokens` new tokens in every variant, so the rates compare like with like.
    args = GenerationArguments(max_new_tokens=tokens, min_new_tokens=tokens, seed=0)
    input_ids = torch.tensor([prompt.input_ids])

    def plain():
        # In a worker thread, as stream_answer runs it: on a busy machine torch's thread pool behaves very
        # differently in the main thread (measured 5-10x slower here), which would swamp the streamer's cost.
        def work():
            with torch.inference_mode():
                loaded.model.generate(
                    input_ids=input_ids,
                    attention_mask=torch.ones_like(input_ids),
                    **generation_kwargs(loaded, args, input_ids.shape[1]),
                )

        worker = threading.Thread(target=work)
        worker.start()
        worker.join()

    def streamed(model=loaded):
        start = time.perf_counter()
        first = None
        for _ in stream_answer(model, prompt, args):
            if first is None:
                first = time.perf_counter() - start
        return first

    variants = {"plain": plain, "streamed": streamed}
    try:
        from dataclasses import replace

        constrained = replace(loaded, constrain="abc")
        streamed(constrained)  # fails here when the constrained decoder is missing
        variants["constrained"] = lambda: streamed(constrained)
    except RuntimeError as err:
        print(f"--constrain abc not measured: {err}")
    plain()  # warm-up
    # Interleaved runs, so that load from other processes on the machine hits every variant alike.
    times: dict[str, list[float]] = {name: [] for name in variants}
    firsts = []
    for _ in range(repeats):
        for name, function in variants.items():
            start = time.perf_counter()
            result = function()
            times[name].append(time.perf_counter() - start)
            if name == "streamed":
                firsts.append(result)
    median = {name: statistics.median(values) for name, values in times.items()}
    print(f"tiny model, CPU, prompt {len(prompt.input_ids)} tokens, {tokens} new tokens, median of {repeats}")
    print(f"  plain generate (no streamer) {tokens / median['plain']:8.1f} tokens/s   (baseline)")
    print(
        f"  streamed (stream_answer)    {tokens / median['streamed']:8.1f} tokens/s   "
        f"ratio {median['plain'] / median['streamed']:.2f}x of baseline"
    )
    print(f"  time to first streamed piece {statistics.median(firsts) * 1000:7.1f} ms")
    if "constrained" in median:
        print(
            f"  streamed, --constrain abc   {tokens / median['constrained']:8.1f} tokens/s   "
            f"{median['constrained'] / median['streamed']:.2f}x the time of unconstrained streaming"
        )


def bench_render(repeats: int) -> None:
    from chatmusician_hf.music import render_abc, validate_abc

    abc = tune_32_bars()
    report = validate_abc(abc)
    assert report.is_valid, report.summary()
    with tempfile.TemporaryDirectory() as out:
        validate_s, _ = timed(lambda: validate_abc(abc), repeats)
        render_s, result = timed(lambda: render_abc(abc, out, formats=("svg", "mid", "wav")), repeats)
        wav_kb = Path(result.paths["wav"]).stat().st_size / 1024
        parts = {
            fmt: timed(lambda f=fmt: render_abc(abc, out, formats=(f,)), repeats)[0] for fmt in ("svg", "mid")
        }
        parts["wav"] = (
            render_s - parts["mid"] + validate_s
        )  # WAV is synthesized from the MIDI render_abc made
    print(f"render of a 32-bar two-voice tune ({report.n_bars} bars over both voices), median of {repeats}")
    print(f"  validate_abc alone         {validate_s * 1000:8.1f} ms   (baseline)")
    print(
        f"  render SVG + MIDI + WAV    {render_s * 1000:8.1f} ms   ratio {render_s / validate_s:.2f}x of baseline; "
        f"target < 500 ms: {'met' if render_s < 0.5 else 'NOT met'} (WAV {wav_kb:.0f} KiB)"
    )
    print(
        "  of which (validation included in each): "
        + ", ".join(f"{fmt} {seconds * 1000:.0f} ms" for fmt, seconds in parts.items())
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model", help="Model folder (default: build the tiny model with init-tiny in a temp dir)."
    )
    parser.add_argument("--tokens", type=int, default=64, help="New tokens per generation.")
    parser.add_argument(
        "--repeats", type=int, default=5, help="Runs per measurement (the median is printed)."
    )
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default).")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as scratch:
        model_dir = args.model
        if model_dir is None:
            from chatmusician_hf.tiny import InitTinyArguments
            from chatmusician_hf.tiny import main as init_tiny

            model_dir = str(init_tiny(InitTinyArguments(output_dir=f"{scratch}/tiny")))
        bench_generation(model_dir, args.tokens, args.repeats)
    bench_render(args.repeats)


if __name__ == "__main__":
    main()
