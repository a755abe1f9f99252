"""Ablation of the embedded default: what makes the tiny model's own samples keep time.

Each variant changes levers of the quickstart's recipe (tokenizer, tune text, keys of recipes/tiny/*.yaml; see
tiny_variants.py) and is trained and judged as the quickstart does it: init-tiny, CPT and SFT launched with
``accelerate launch``, a verified merge, then plain ChatMusician-style sampling on the quickstart's 40 held-out
text-to-ABC prompts (same seeds for every variant), scored by the ``abc_quality`` metric, and held-out bits per
character of the CPT and merged models, every run on the same tunes. Budgets are training steps, not minutes: the
machine may be shared, so speed is reported as tokens/s (compare those only between runs made side by side).

    python benchmarks/tiny_ablation.py --work_dir outputs/ablation                       # every variant, then the table
    python benchmarks/tiny_ablation.py --work_dir outputs/ablation --variants atoms whitespace-bpe
    python benchmarks/tiny_ablation.py --work_dir outputs/ablation --variants \\
        --quickstart_runs whitespace-bpe=/tmp/qs-old atoms-music-only=outputs/quickstart   # whole quickstart runs

Finished steps are kept (a rerun resumes); ``--table_only`` prints the table of what has finished.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import yaml
from tiny_variants import VARIANTS, variant_data

from chatmusician_hf.quickstart import Quickstart, QuickstartArguments

REPO = Path(__file__).resolve().parents[1]


def write_recipes(variant: dict, folder: Path, data: dict[str, Path]) -> Path:
    """recipes/tiny/{cpt,sft}.yaml with the variant's overrides (and its own data files, where it has any)."""
    folder.mkdir(parents=True, exist_ok=True)
    for stage in ("cpt", "sft"):
        recipe = yaml.safe_load((REPO / "recipes" / "tiny" / f"{stage}.yaml").read_text())
        recipe.update(variant.get(stage, {}))
        if stage in data:
            recipe["dataset_name"] = str(data[stage])
        (folder / f"{stage}.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))
    return folder


def share_cpt(out: Path, source: Path) -> None:
    """Start ``out`` from ``source``'s finished init-tiny and CPT steps (a variant that changes only SFT)."""
    if not (source / "steps" / "cpt.json").is_file():
        raise SystemExit(f"{source}: its CPT has not finished; run that variant first")
    (out / "steps").mkdir(parents=True, exist_ok=True)
    for folder in ("tiny-base", "cpt"):
        if not (out / folder).exists():
            (out / folder).symlink_to(source / folder)
    for step in ("init-tiny", "cpt"):
        shutil.copy(source / "steps" / f"{step}.json", out / "steps" / f"{step}.json")


def run_variant(name: str, work_dir: Path, runs: dict[str, Path], **overrides) -> dict:
    """init-tiny, CPT, SFT, merge and plain sampling on the held-out prompts, as the quickstart runs them."""
    from chatmusician_hf.tiny import InitTinyArguments
    from chatmusician_hf.tiny import main as init_tiny

    variant = VARIANTS[name]
    out = work_dir / name
    if "same_cpt_as" in variant:
        share_cpt(out, runs.get(variant["same_cpt_as"], work_dir / variant["same_cpt_as"]))
    data = variant_data(variant.get("data", "default"), work_dir / "data")
    recipes = write_recipes(variant, out / "recipes", data)
    quickstart = Quickstart(QuickstartArguments(output_dir=str(out), recipes_dir=str(recipes), **overrides))
    paths = quickstart.paths

    def init() -> dict:
        init_tiny(InitTinyArguments(output_dir=str(paths["tiny-base"]), **variant.get("init", {})))
        return {}

    def evaluate() -> dict:
        paths["eval"].mkdir(parents=True, exist_ok=True)
        return {"abc_quality": quickstart._abc_quality(decodings=("none",))}

    return quickstart.run([
        ("init-tiny", init), ("cpt", lambda: quickstart.train("cpt", paths["tiny-base"])),
        ("sft", lambda: quickstart.train("sft", quickstart.cpt_model)),
        ("merge", lambda: quickstart.merge(quickstart.cpt_model, paths["sft"], paths["merged"])),
        ("eval", evaluate),
    ])


QUALITY = ("parse_rate", "valid_rate", "median_bars", "header_adherence", "copy_rate")


def _fmt(value) -> str:
    return "–" if value is None else f"{value:.3f}"


def _bits_per_character(run: Path, tunes: list[str], cache: Path) -> dict:
    """Bits per character of a run's CPT and merged models on ``tunes``, kept in ``cache`` (runs are read-only)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from chatmusician_hf.data.encoding import encode_texts
    from chatmusician_hf.eval.held_out import bits_per_character

    known = json.loads(cache.read_text()) if cache.is_file() else {}
    if str(run) not in known:
        stages = {"cpt": run / "cpt-merged" if (run / "cpt-merged").is_dir() else run / "cpt", "sft": run / "merged"}
        result = {}
        for stage, path in stages.items():
            tokenizer = AutoTokenizer.from_pretrained(path)
            result[stage] = bits_per_character(AutoModelForCausalLM.from_pretrained(path), tokenizer, tunes)
        result["chars_per_token"] = sum(map(len, tunes)) / sum(map(len, encode_texts(tokenizer, tunes)))
        known[str(run)] = result
        cache.write_text(json.dumps(known, indent=1))
    return known[str(run)]


def table(work_dir: Path, runs: dict[str, Path]) -> str:
    """One row per finished run, all scored on the same held-out tunes (this checkout's corpus, bookkeeping-free)."""
    from chatmusician_hf.eval.held_out import held_out_tunes

    tunes = held_out_tunes()
    rows = ["| variant | what changes | chars/token | CPT tokens | CPT tok/s | bpc CPT | bpc SFT | parse | valid | "
            "median bars | header | copy |", "|---" * 12 + "|"]
    real = None
    for name, run in runs.items():
        if not (run / "steps" / "eval.json").is_file():
            continue
        cpt = json.loads((run / "steps" / "cpt.json").read_text())
        recipe = yaml.safe_load((run / "cpt" / "recipe.yaml").read_text())
        tokens = cpt["global_step"] * recipe["per_device_train_batch_size"] * cpt.get("world_size", 1) * \
            recipe.get("gradient_accumulation_steps", 1) * recipe["max_length"]
        bpc = _bits_per_character(run, tunes, work_dir / "bits_per_character.json")
        row = [name, VARIANTS[name]["about"], f"{bpc['chars_per_token']:.2f}", f"{tokens / 1e6:.2f}M",
               f"{tokens / cpt['train_runtime_s']:,.0f}", f"{bpc['cpt']:.3f}", f"{bpc['sft']:.3f}"]
        quality = json.loads((run / "steps" / "eval.json").read_text())["abc_quality"]
        real = quality["real held-out tunes"]
        row += [_fmt(quality["plain sampling"].get(column)) for column in QUALITY]
        rows.append("| " + " | ".join(row) + " |")
    if real is not None:
        rows.append("| real held-out tunes | | | | | | | " + " | ".join(_fmt(real[c]) for c in QUALITY) + " |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work_dir", default="outputs/ablation")
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--table_only", action="store_true")
    parser.add_argument("--quickstart_runs", nargs="*", default=[], metavar="VARIANT=DIR",
                        help="Variants measured as whole quickstart runs (the quickstart of a checkout whose default "
                        "the variant is): their output folders, read and not written.")
    parser.add_argument("--smoke", action="store_true", help="A few steps and prompts per variant: checks the script.")
    args = parser.parse_args()
    work_dir = Path(args.work_dir).resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    runs = {name: work_dir / name for name in args.variants}
    for pair in args.quickstart_runs:
        name, _, folder = pair.partition("=")
        if name not in VARIANTS or not folder:
            parser.error(f"--quickstart_runs takes VARIANT=DIR with VARIANT one of {', '.join(VARIANTS)}, got {pair!r}")
        runs[name] = Path(folder).resolve()
    smoke = dict(cpt_max_steps=4, sft_max_steps=2, eval_prompts=4, eval_batch_size=4, max_new_tokens=32)
    if not args.table_only:
        for name in args.variants:
            if runs[name] == work_dir / name:
                print(f"\n=== {name}: {VARIANTS[name]['about']}", flush=True)
                run_variant(name, work_dir, runs, **(smoke if args.smoke else {}))
    print(table(work_dir, runs))


if __name__ == "__main__":
    main()
