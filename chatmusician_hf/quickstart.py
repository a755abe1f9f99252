"""``chatmusician-hf quickstart``: the whole ChatMusician pipeline on the embedded default, with no network.

init-tiny -> data -> CPT (accelerate launch; a verified merge follows when the CPT recipe trains an adapter) ->
SFT with LoRA (accelerate launch) -> verified merge ->
evaluation (MusicTheoryBench fixture in ppl mode, ABC quality of tunes generated for held-out prompts, with and
without music-aware decoding, against the held-out real tunes) -> an example tune rendered -> report.md/report.html.

Every step writes ``steps/<name>.json`` when it finishes; a rerun skips finished steps, and the training steps resume
from their last checkpoint, so the quickstart can be killed anywhere and run again.
"""

from __future__ import annotations

import html
import json
import math
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from .chat_format import CHATMUSICIAN_GENERATION_DEFAULTS
from .configs import RecipeError, make_stage_parser

REPO_ROOT = Path(__file__).resolve().parents[1]
README_PROMPT = (
    "Using ABC notation, recreate the given text as a musical score.\n"
    "Meter C\n"
    "Notes The parts are commonly interchanged.\n"
    "Transcription 1997 by John Chambers\n"
    "Key D\n"
    "Note Length 1/8\n"
    "Rhythm reel"
)
# The held-out evaluation and the example sample the way `chat`, `generate` and the Space do by default:
# ChatMusician's own generation settings, so the report judges what a user of the model gets.
EVAL_SAMPLING = {k: v for k, v in CHATMUSICIAN_GENERATION_DEFAULTS.items() if k != "max_new_tokens"}


@dataclass
class QuickstartArguments:
    output_dir: str = field(default="outputs/quickstart", metadata={"help": "Folder for every artefact of the run."})
    recipes_dir: str = field(
        default=str(REPO_ROOT / "recipes" / "tiny"), metadata={"help": "Folder holding the tiny cpt.yaml and sft.yaml."}
    )
    cpt_max_steps: int | None = field(default=None, metadata={"help": "Override the CPT recipe's max_steps."})
    sft_max_steps: int | None = field(default=None, metadata={"help": "Override the SFT recipe's max_steps."})
    save_steps: int | None = field(
        default=None, metadata={"help": "Override the recipes' checkpoint interval (steps)."}
    )
    eval_prompts: int = field(default=40, metadata={"help": "Held-out text-to-ABC prompts generated for evaluation."})
    eval_batch_size: int = field(default=20, metadata={"help": "Prompts generated together."})
    max_new_tokens: int = field(default=400, metadata={"help": "Longest generated answer in tokens."})
    benchmark_data: str = field(
        default=str(REPO_ROOT / "tests" / "fixtures" / "music_theory_bench" / "single_split.jsonl"),
        metadata={"help": "MusicTheoryBench-schema questions (default: the project's own fixture, not the benchmark)."},
    )
    seed: int = field(default=42, metadata={"help": "Seed for generation."})


class Quickstart:
    """Runs the steps in order, each at most once per output folder."""

    def __init__(self, args: QuickstartArguments):
        self.args = args
        self.out = Path(args.output_dir)
        self.steps_dir = self.out / "steps"
        self.steps_dir.mkdir(parents=True, exist_ok=True)
        self.results: dict[str, dict] = {}
        self.paths = {
            name: self.out / name for name in ("tiny-base", "cpt", "cpt-merged", "sft", "merged", "eval", "example")
        }

    def run(self, steps: list[tuple[str, Callable[[], dict]]]) -> dict:
        for index, (name, step) in enumerate(steps, 1):
            marker = self.steps_dir / f"{name}.json"
            if marker.is_file():
                self.results[name] = json.loads(marker.read_text())
                print(f"[quickstart {index}/{len(steps)}] {name}: done earlier ({self.results[name]['seconds']:.0f}s)")
                continue
            print(f"[quickstart {index}/{len(steps)}] {name} ...", flush=True)
            start = time.perf_counter()
            result = step()
            result["seconds"] = round(time.perf_counter() - start, 1)
            marker.write_text(json.dumps(result, indent=2) + "\n")
            self.results[name] = result
            print(f"[quickstart {index}/{len(steps)}] {name}: {result['seconds']:.0f}s", flush=True)
        return self.results

    @cached_property
    def cpt_is_adapter(self) -> bool:
        return bool(self._recipe("cpt").get("use_peft", False))

    @property
    def cpt_model(self) -> Path:
        """The full model SFT starts from: CPT's own output, or its adapter merged into the base."""
        return self.paths["cpt-merged"] if self.cpt_is_adapter else self.paths["cpt"]

    # -- steps -------------------------------------------------------------------------------------------------
    def init_tiny(self) -> dict:
        from .tiny import InitTinyArguments
        from .tiny import main as init_tiny

        init_tiny(InitTinyArguments(output_dir=str(self.paths["tiny-base"]), seed=self.args.seed))
        return {"model": str(self.paths["tiny-base"])}

    def data(self) -> dict:
        from transformers import AutoTokenizer

        from .data.config import DataArguments, default_cache_dir
        from .data.pretraining import pack_pretraining
        from .data.tasks import cached_music21_tasks

        tokenizer = AutoTokenizer.from_pretrained(self.paths["tiny-base"])
        max_length = int(self._recipe("cpt")["max_length"])
        _, stats = pack_pretraining(DataArguments(dataset_name="music21"), tokenizer, max_length, "train")
        tasks = cached_music21_tasks(default_cache_dir())
        return {"pretraining": stats.to_dict(), "sft_rows": {split: len(ds) for split, ds in tasks.items()}}

    def train(self, stage: str, model: Path) -> dict:
        recipe = Path(self.args.recipes_dir) / f"{stage}.yaml"
        # --cpu: without it accelerate sets OMP_NUM_THREADS=1 and the trainer uses one core of the machine's.
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "1", "--num_machines", "1",
               "--mixed_precision", "no", "--dynamo_backend", "no", "-m", f"chatmusician_hf.{stage}",
               "--config", str(recipe), "--model_name_or_path", str(model), "--output_dir", str(self.paths[stage]),
               "--resume_from_checkpoint", "auto"]
        max_steps = self.args.cpt_max_steps if stage == "cpt" else self.args.sft_max_steps
        if max_steps:
            cmd += ["--max_steps", str(max_steps)]
        if self.args.save_steps:
            cmd += ["--save_steps", str(self.args.save_steps)]
        print("  $ accelerate launch -m chatmusician_hf." + stage + " --config " + str(recipe), flush=True)
        if subprocess.run(cmd).returncode != 0:
            raise RuntimeError(f"{stage} failed; rerun the quickstart to resume from its last checkpoint.")
        return json.loads((self.paths[stage] / "training_info.json").read_text())

    def merge(self, base: Path, adapter: Path, output: Path) -> dict:
        from .merge import MergeArguments
        from .merge import main as merge

        merge(MergeArguments(base=str(base), adapter=str(adapter), output_dir=str(output), overwrite=True,
                             datasets=["music21"]))
        return {"model": str(output)}

    def evaluate(self) -> dict:
        from .eval.music_theory_bench import MusicTheoryBenchArguments, accuracy_rows
        from .eval.music_theory_bench import main as bench

        report = bench(MusicTheoryBenchArguments(model=str(self.paths["merged"]), dataset=self.args.benchmark_data,
                                                 mode="ppl", shots=0, output_dir=str(self.paths["eval"])))
        quality = self._abc_quality()
        losses = {name: self._held_out_loss(path) for name, path in (
            ("untrained", self.paths["tiny-base"]), ("after CPT", self.cpt_model), ("after SFT", self.paths["merged"]))}
        accuracy = {name: acc for name, _, _, acc in accuracy_rows(report["results"])}
        return {"music_theory_bench": accuracy, "abc_quality": quality, "held_out_loss": losses}

    def example(self) -> dict:
        from .inference import GenerationArguments, ModelArguments, fit_prompt, generate_batch, load_model
        from .music import extract_tunes, render_abc

        loaded = load_model(ModelArguments(model=str(self.paths["merged"]), device="cpu", constrain="abc"))
        generation = GenerationArguments(max_new_tokens=self.args.max_new_tokens, seed=self.args.seed, **EVAL_SAMPLING)
        prompt = fit_prompt(loaded.tokenizer, README_PROMPT, [], generation.max_prompt_tokens)
        answer = generate_batch(loaded, [prompt], generation)[0]
        tunes = extract_tunes(answer)
        out = self.paths["example"]
        out.mkdir(parents=True, exist_ok=True)
        (out / "answer.txt").write_text(answer + "\n")
        if not tunes:
            return {"answer": answer, "files": {}, "valid": False}
        rendered = render_abc(tunes[0].abc, out, formats=("abc", "svg", "mid", "wav"), stem="example")
        return {"answer": answer, "files": {k: str(v) for k, v in rendered.paths.items()},
                "valid": rendered.report.is_valid, "messages": [i.message for i in rendered.report.errors]}

    def report(self) -> dict:
        from .model_card import build_model_card

        md, page = write_report(self.out, self.results)
        build_model_card(self.paths["merged"], base_model=str(self.paths["tiny-base"]), relation="merge",
                         datasets=["music21"], recipe=Path(self.args.recipes_dir) / "sft.yaml",
                         training_info=self.results.get("sft"))
        return {"report_md": str(md), "report_html": str(page), "model_card": str(self.paths["merged"] / "README.md")}

    # -- helpers ---------------------------------------------------------------------------------------------
    def _recipe(self, stage: str) -> dict:
        import yaml

        path = Path(self.args.recipes_dir) / f"{stage}.yaml"
        if not path.is_file():
            raise RecipeError(f"{path} not found: run the quickstart from a clone of the repository, or pass --recipes_dir.")
        return yaml.safe_load(path.read_text())

    def _held_out_loss(self, model_dir: Path, blocks: int = 64) -> float:
        """Mean cross-entropy per token on the first held-out packed blocks of the music21 corpus."""
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from .cpt import PackedBlockCollator
        from .data.config import DataArguments
        from .data.pretraining import build_pretraining_dataset

        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
        dataset = build_pretraining_dataset(DataArguments(dataset_name="music21"), tokenizer,
                                            int(self._recipe("cpt")["max_length"]), "validation")
        collate = PackedBlockCollator(tokenizer.pad_token_id)
        total, count = 0.0, 0
        with torch.inference_mode():
            for start in range(0, min(blocks, len(dataset)), 16):
                batch = collate([dataset[i] for i in range(start, min(start + 16, blocks, len(dataset)))])
                logits = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits
                labels = batch["labels"][:, 1:]
                loss = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), labels.flatten(),
                                                         ignore_index=-100, reduction="sum")
                total += loss.item()
                count += int((labels != -100).sum())
        return round(total / count, 4)

    def _abc_quality(self) -> dict:
        import evaluate

        from .data.config import default_cache_dir
        from .data.sft_format import sft_messages
        from .data.tasks import cached_music21_tasks, split_header
        from .inference import GenerationArguments, ModelArguments, fit_prompt, generate_batch, load_model

        tasks = cached_music21_tasks(default_cache_dir())
        held_out = [row for row in tasks["validation"] if row["src"].endswith("text_to_abc")][: self.args.eval_prompts]
        real = [row["output"] for row in held_out]
        requested = [{k: v for k, v in split_header(tune)[0] if k in ("K", "M", "L")} for tune in real]
        train_tunes = [row["output"] for row in tasks["train"] if row["src"].endswith("text_to_abc")]
        metric = evaluate.load(str(REPO_ROOT / "evaluate_metrics" / "abc_quality"))
        rows = {"real held-out tunes": real}
        for constrain in ("none", "abc"):
            loaded = load_model(ModelArguments(model=str(self.paths["merged"]), device="cpu", constrain=constrain))
            generation = GenerationArguments(max_new_tokens=self.args.max_new_tokens, seed=self.args.seed,
                                             **EVAL_SAMPLING)
            prompts = [fit_prompt(loaded.tokenizer, sft_messages(row)[0]["content"], [], generation.max_prompt_tokens)
                       for row in held_out]
            answers: list[str] = []
            for start in range(0, len(prompts), self.args.eval_batch_size):
                answers += generate_batch(loaded, prompts[start:start + self.args.eval_batch_size], generation)
                print(f"  generated {len(answers)}/{len(prompts)} ({'music-aware' if constrain == 'abc' else 'plain'})",
                      flush=True)
            rows["music-aware decoding" if constrain == "abc" else "plain sampling"] = answers
            (self.paths["eval"] / f"generations_{constrain}.jsonl").write_text(
                "".join(json.dumps({"prompt": p.text, "answer": a}) + "\n" for p, a in zip(prompts, answers)))
        return {name: metric.compute(predictions=texts, requested_headers=requested, reference_tunes=train_tunes)
                for name, texts in rows.items()}


def _fmt(value) -> str:
    if isinstance(value, float):
        return "–" if math.isnan(value) else f"{value:.3f}"
    return "–" if value is None else str(value)


QUALITY_COLUMNS = ["parse_rate", "valid_rate", "median_bars", "mean_bars", "bar_duration_correct_rate",
                   "bar_correct_share", "header_adherence", "pitch_class_entropy", "bar_repetition_rate", "copy_rate"]


def write_report(out: Path, results: dict) -> tuple[Path, Path]:
    """report.md and report.html: loss curves, evaluation tables, the example score and its audio."""
    evaluation = results.get("eval", {})
    quality = evaluation.get("abc_quality", {})
    columns = [c for c in QUALITY_COLUMNS if any(c in row for row in quality.values())]
    lines = ["# chatmusician-hf quickstart report", "",
             "The whole ChatMusician pipeline on the embedded default (tiny LLaMA, music21's ABC tunes), on CPU.", "",
             "## Steps", "", "| step | seconds |", "|---|---|"]
    lines += [f"| {name} | {r.get('seconds', 0):.0f} |" for name, r in results.items()]
    lines += ["", "## Training", ""]
    for stage in ("cpt", "sft"):
        info = results.get(stage)
        if info:
            lines.append(f"- **{stage}**: {info['global_step']} steps, final train loss {_fmt(info['final_train_loss'])}, "
                         f"held-out loss {_fmt(info['final_eval_loss'])} ({info['hardware']}, {info['train_runtime_s']}s)")
            if (out / stage / "loss_curve.png").is_file():
                lines += ["", f"![{stage} loss curve]({stage}/loss_curve.png)", ""]
    losses = evaluation.get("held_out_loss", {})
    if losses:
        lines += ["", "Held-out loss (nats/token, corpus validation blocks): "
                  + ", ".join(f"{name} {_fmt(value)}" for name, value in losses.items()) + "."]
    if quality:
        sampling = ", ".join(f"{k} {v}" for k, v in EVAL_SAMPLING.items() if k != "do_sample")
        lines += ["", "## ABC quality on held-out text-to-ABC prompts", "",
                  f"Sampled with ChatMusician's generation defaults ({sampling}); music-aware decoding adds "
                  "`--constrain abc` to the same sampling.", "",
                  "| source | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
        lines += [f"| {name} | " + " | ".join(_fmt(row.get(c)) for c in columns) + " |" for name, row in quality.items()]
    bench = evaluation.get("music_theory_bench")
    if bench:
        lines += ["", "## MusicTheoryBench-schema fixture (ppl mode, zero-shot; the project's questions, not the benchmark)",
                  "", "| subset | accuracy |", "|---|---|"]
        lines += [f"| {k} | {_fmt(v)} |" for k, v in bench.items()]
    example = results.get("example", {})
    if example:
        lines += ["", "## Example: the README prompt", "", "```", README_PROMPT, "```", "", "```abc",
                  example.get("answer", ""), "```", ""]
        files = example.get("files", {})
        if "svg" in files:
            lines.append(f"![score](example/{Path(files['svg']).name})")
        if "wav" in files:
            lines += ["", f"[audio](example/{Path(files['wav']).name})"]
    md = out / "report.md"
    md.write_text("\n".join(lines) + "\n")

    body = []
    for line in lines:
        if line.startswith("!["):
            src = line[line.index("(") + 1:-1]
            body.append(f'<img src="{html.escape(src)}" alt="{html.escape(line[2:line.index("]")])}" style="max-width:100%">')
        elif line.startswith("[audio]("):
            src = line[line.index("(") + 1:-1]
            body.append(f'<audio controls src="{html.escape(src)}"></audio>')
        else:
            body.append(f"<pre>{html.escape(line)}</pre>" if line else "")
    page = out / "report.html"
    page.write_text("<!doctype html><html><head><meta charset='utf-8'><title>chatmusician-hf quickstart</title>"
                    "<style>body{font-family:sans-serif;max-width:60em;margin:auto} pre{margin:0;white-space:pre-wrap}"
                    "</style></head><body>" + "\n".join(body) + "</body></html>\n")
    return md, page


def main(args: QuickstartArguments) -> dict:
    quickstart = Quickstart(args)
    paths = quickstart.paths
    start = time.perf_counter()
    results = quickstart.run([
        ("init-tiny", quickstart.init_tiny),
        ("data", quickstart.data),
        ("cpt", lambda: quickstart.train("cpt", paths["tiny-base"])),
        # A CPT recipe that trains an adapter needs it merged before SFT; the tiny recipe trains the full model.
        *([("merge-cpt", lambda: quickstart.merge(paths["tiny-base"], paths["cpt"], paths["cpt-merged"]))]
          if quickstart.cpt_is_adapter else []),
        ("sft", lambda: quickstart.train("sft", quickstart.cpt_model)),
        ("merge", lambda: quickstart.merge(quickstart.cpt_model, paths["sft"], paths["merged"])),
        ("eval", quickstart.evaluate),
        ("example", quickstart.example),
        ("report", quickstart.report),
    ])
    print(f"\n[quickstart] finished in {time.perf_counter() - start:.0f}s")
    print(f"  report:      {results['report']['report_md']} and {results['report']['report_html']}")
    print(f"  merged model (with model card, ready for `chatmusician-hf push`): {paths['merged']}")
    print(f"  example tune: {paths['example']}")
    return results


def make_parser(subparsers=None):
    return make_stage_parser(
        subparsers,
        "quickstart",
        [QuickstartArguments],
        help="Run the whole pipeline on the embedded default (tiny model, music21 tunes) with no network.",
    )


if __name__ == "__main__":
    from .cli import run_as_main

    run_as_main("quickstart")
