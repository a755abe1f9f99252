"""Two processes against two threads: the quickstart's CPT and SFT recipes on this machine's cores, trained as one
process using every core and as data-parallel processes sharing them, with the recipe's batch per optimizer step
kept (``chatmusician_hf.training.cpu_launch``).

    python benchmarks/cpu_processes.py        # 160 steps of each stage, 1 and 2 processes alternating: ~12 min

Each run is the quickstart's own training step (``Quickstart.train``), held-out evaluation and checkpoints included.
Prints the trainer's seconds per step (``train_runtime`` over the steps: model loading and start-up left out, the
first batches in; the best of the repeats, as the machine's other work only slows a run down), the speed-up against
the first process count, and the largest difference between the runs' losses, logged every 10 steps as the recipes
log them.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from chatmusician_hf.quickstart import Quickstart, QuickstartArguments
from chatmusician_hf.tiny import InitTinyArguments
from chatmusician_hf.tiny import main as init_tiny
from chatmusician_hf.training.cpu_launch import cpu_cores


def train(stage: str, model: Path, out: Path, processes: int, steps: int) -> dict:
    quickstart = Quickstart(QuickstartArguments(output_dir=str(out), cpt_max_steps=steps, sft_max_steps=steps,
                                                num_processes=processes))
    quickstart.train(stage, model)
    trained = quickstart.paths[stage]
    runtime = json.loads((trained / "all_results.json").read_text())["train_runtime"]
    return {"seconds_per_step": runtime / steps,
            "losses": losses(json.loads((trained / "trainer_state.json").read_text()))}


def losses(state: dict) -> dict[int, float]:
    return {entry["step"]: entry["loss"] for entry in state["log_history"] if "loss" in entry}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=160, help="Optimizer steps per run.")
    parser.add_argument("--repeats", type=int, default=1, help="Runs of each setting, alternating with the others.")
    parser.add_argument("--stages", nargs="+", default=["cpt", "sft"], choices=["cpt", "sft"], help="Stages to run.")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2], help="Process counts to compare.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        init_tiny(InitTinyArguments(output_dir=str(work / "base")))
        print(f"\n{cpu_cores()} cores; {args.steps} steps per run\n")
        print("| stage | processes | s/step | speed-up | largest loss difference |")
        print("|---|---|---|---|---|")
        for stage in args.stages:
            runs: dict[int, dict] = {}
            for repeat in range(args.repeats):
                for n in args.processes:
                    run = train(stage, work / "base", work / f"{stage}-{n}-{repeat}", n, args.steps)
                    if n not in runs or run["seconds_per_step"] < runs[n]["seconds_per_step"]:
                        runs[n] = run
            first = runs[args.processes[0]]
            for n, run in runs.items():
                gap = max((abs(a - b) for a, b in zip(first["losses"].values(), run["losses"].values())),
                          default=float("nan"))  # (no loss logged in runs under 10 steps)
                speed_up = first["seconds_per_step"] / run["seconds_per_step"]
                print(f"| {stage} | {n} | {run['seconds_per_step']:.3f} | {speed_up:.2f}x | {gap:.2e} |", flush=True)


if __name__ == "__main__":
    main()
