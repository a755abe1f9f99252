"""``chatmusician-hf quickstart``: the whole ChatMusician pipeline on the embedded default, with no network.

init-tiny -> data -> CPT (accelerate launch; a verified merge follows when the CPT recipe trains an adapter) ->
SFT with LoRA (accelerate launch) -> verified merge ->
evaluation (MusicTheoryBench-schema sample in ppl mode, ABC quality of tunes generated for held-out prompts, with and
without music-aware decoding, against the held-out real tunes) -> an example tune rendered -> report.md/report.html.

Every step writes ``steps/<name>.json`` when it finishes; a rerun skips finished steps, and the training steps resume
from their last checkpoint, so the quickstart can be killed anywhere and run again. Everything it reads ships with the
package (recipes, the question sample, the metrics), so it runs from any folder once the package is installed.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path

from .chat_format import CHATMUSICIAN_GENERATION_DEFAULTS
from .configs import load_recipe, make_stage_parser, recipe_file
from .quickstart_report import write_report
from .training.cpu_launch import batch_split, default_processes, launch_command

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
        default="tiny",
        metadata={"help": "Folder holding the cpt.yaml and sft.yaml to train, or a packaged recipe set "
                          "(tiny: recipes/tiny of the repository)."},
    )
    cpt_max_steps: int | None = field(default=None, metadata={"help": "Override the CPT recipe's max_steps."})
    sft_max_steps: int | None = field(default=None, metadata={"help": "Override the SFT recipe's max_steps."})
    save_steps: int | None = field(
        default=None, metadata={"help": "Override the recipes' checkpoint interval (steps)."}
    )
    num_processes: int | None = field(
        default=None,
        metadata={"help": "Training processes (data parallel over gloo, the cores shared between them). Default: 2 on a "
                          "machine with at least 2 cores, which trains the tiny model faster than one process with "
                          "every core (benchmarks/cpu_processes.py). The recipe's batch per optimizer step is kept."},
    )
    eval_prompts: int = field(default=40, metadata={"help": "Held-out text-to-ABC prompts generated for evaluation."})
    eval_batch_size: int = field(default=20, metadata={"help": "Prompts generated together."})
    max_new_tokens: int = field(default=400, metadata={"help": "Longest generated answer in tokens."})
    benchmark_data: str | None = field(
        default=None,
        metadata={"help": "MusicTheoryBench-schema questions (default: a sample the project wrote, shipped with the "
                          "package; not the benchmark)."},
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

        from .data.config import DataArguments
        from .data.pretraining import pack_pretraining

        tokenizer = AutoTokenizer.from_pretrained(self.paths["tiny-base"])
        max_length = int(self._recipe("cpt")["max_length"])
        _, stats = pack_pretraining(DataArguments(dataset_name="music21"), tokenizer, max_length, "train")
        return {"pretraining": stats.to_dict(), "sft_rows": {split: len(ds) for split, ds in self.tasks.items()}}

    def train(self, stage: str, model: Path) -> dict:
        recipe = self._recipe_reference(stage)
        processes = self.args.num_processes or default_processes()
        args = ["--config", recipe, "--model_name_or_path", str(model), "--output_dir", str(self.paths[stage]),
                "--resume_from_checkpoint", "auto", *batch_split(self._recipe(stage), processes)]
        max_steps = self.args.cpt_max_steps if stage == "cpt" else self.args.sft_max_steps
        if max_steps:
            args += ["--max_steps", str(max_steps)]
        if self.args.save_steps:
            args += ["--save_steps", str(self.args.save_steps)]
        cmd, env = launch_command(f"chatmusician_hf.{stage}", args, processes)
        print(f"  $ accelerate launch ({processes} process{'es' if processes > 1 else ''}) -m chatmusician_hf.{stage} "
              f"--config {recipe}", flush=True)
        if subprocess.run(cmd, env=env).returncode != 0:
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

        sample = resources.files("chatmusician_hf.resources") / "music_theory_bench_sample.jsonl"
        with resources.as_file(sample) as sample_path:
            report = bench(MusicTheoryBenchArguments(
                model=str(self.paths["merged"]), dataset=self.args.benchmark_data or str(sample_path), mode="ppl",
                shots=0, output_dir=str(self.paths["eval"])))
        quality = self._abc_quality()
        collections: dict[str, int] = {}
        for row in self.held_out_prompts:
            name = row["id"].split("/")[1]  # music21/<collection>/<file>#<n>/text_to_abc
            collections[name] = collections.get(name, 0) + 1
        measured_on = {"prompts": sum(collections.values()), "collections": collections,
                       "max_new_tokens": self.args.max_new_tokens, "fields_compared": ["K", "M", "L"]}
        bpc = {name: self._held_out_bits_per_character(path) for name, path in (
            ("untrained", self.paths["tiny-base"]), ("after CPT", self.cpt_model), ("after SFT", self.paths["merged"]))}
        accuracy = {name: acc for name, _, _, acc in accuracy_rows(report["results"])}
        return {"music_theory_bench": accuracy, "abc_quality": quality, "abc_quality_measured_on": measured_on,
                "held_out_bits_per_character": bpc}

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

        md, page = write_report(self.out, self.results, README_PROMPT, EVAL_SAMPLING)
        with recipe_file(self._recipe_reference("sft")) as recipe:
            build_model_card(self.paths["merged"], base_model=str(self.paths["tiny-base"]), relation="merge",
                             datasets=["music21"], recipe=recipe, training_info=self.results.get("sft"))
        return {"report_md": str(md), "report_html": str(page), "model_card": str(self.paths["merged"] / "README.md")}

    # -- helpers ---------------------------------------------------------------------------------------------
    def _recipe_reference(self, stage: str) -> str:
        """``<recipes_dir>/<stage>.yaml``: a file where there is one, else a packaged recipe's name."""
        return f"{self.args.recipes_dir}/{stage}.yaml"

    def _recipe(self, stage: str) -> dict:
        return load_recipe(self._recipe_reference(stage))

    def _held_out_bits_per_character(self, model_dir: Path) -> float:
        """Bits per character on the corpus's held-out tunes (comparable across tokenizers)."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from .eval.held_out import bits_per_character, held_out_tunes

        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        model = AutoModelForCausalLM.from_pretrained(model_dir)
        return round(bits_per_character(model, tokenizer, held_out_tunes()), 4)

    @cached_property
    def tasks(self):
        """The music21 task set SFT trains on, with its held-out split."""
        from .data.config import default_cache_dir
        from .data.tasks import cached_music21_tasks

        return cached_music21_tasks(default_cache_dir())

    @cached_property
    def held_out_prompts(self) -> list[dict]:
        """The first ``eval_prompts`` held-out text-to-ABC rows (their tunes are in no training row)."""
        rows = self.tasks["validation"]
        return [row for row in rows if row["src"].endswith("text_to_abc")][: self.args.eval_prompts]

    def _abc_quality(self, decodings: tuple[str, ...] = ("none", "abc")) -> dict:
        """abc_quality of the held-out real tunes and of the merged model's answers with each ``--constrain`` choice."""
        from .data.sft_format import sft_messages
        from .data.tasks import split_header
        from .inference import GenerationArguments, ModelArguments, fit_prompt, generate_batch, load_model
        from .metrics import load_metric

        held_out = self.held_out_prompts
        real = [row["output"] for row in held_out]
        requested = [{k: v for k, v in split_header(tune)[0] if k in ("K", "M", "L")} for tune in real]
        train_tunes = [row["output"] for row in self.tasks["train"] if row["src"].endswith("text_to_abc")]
        metric = load_metric("abc_quality")
        rows = {"real held-out tunes": real}
        for constrain in decodings:
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
