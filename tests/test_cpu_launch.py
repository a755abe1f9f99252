"""The quickstart's launcher: several CPU processes share the cores and keep the recipe's batch per optimizer step.
The processes themselves are started by tests/test_quickstart.py (the full run trains with two) and by the
multi-process checks in tests/test_cpt.py."""

from __future__ import annotations

import pytest

from chatmusician_hf.configs import load_recipe
from chatmusician_hf.training.cpu_launch import batch_split, cpu_cores, launch_command


def optimizer_batch(recipe: dict, flags: list[str], processes: int) -> int:
    options = dict(recipe)
    for name, value in zip(flags[::2], flags[1::2]):
        options[name.removeprefix("--")] = int(value)
    return options["per_device_train_batch_size"] * options.get("gradient_accumulation_steps", 1) * processes


@pytest.mark.parametrize("stage", ["cpt", "sft"])
def test_the_batch_per_optimizer_step_is_the_recipes(stage):
    recipe = load_recipe(f"tiny/{stage}.yaml")
    one = optimizer_batch(recipe, batch_split(recipe, 1), 1)
    assert batch_split(recipe, 1) == []
    for processes in (2, 4):
        assert optimizer_batch(recipe, batch_split(recipe, processes), processes) == one


def test_a_packed_micro_batch_stays_one_row():
    """Packed SFT is padding-free: its micro-batch of one row is kept, and the accumulation is shared instead."""
    assert batch_split({"per_device_train_batch_size": 1, "gradient_accumulation_steps": 8}, 2) == [
        "--gradient_accumulation_steps", "4"]


def test_a_batch_that_does_not_divide_is_refused():
    with pytest.raises(ValueError, match="cannot be shared by 2 processes"):
        batch_split({"per_device_train_batch_size": 3, "gradient_accumulation_steps": 1}, 2)


def test_processes_share_the_cores():
    one, env_one = launch_command("chatmusician_hf.cpt", ["--config", "tiny/cpt.yaml"], 1)
    two, env_two = launch_command("chatmusician_hf.cpt", ["--config", "tiny/cpt.yaml"], 2)
    assert "--cpu" in one and "--multi_gpu" not in one  # accelerate's CPU launcher starts a single process
    assert "--multi_gpu" in two and two[two.index("--num_processes") + 1] == "2"
    assert int(env_one["OMP_NUM_THREADS"]) == cpu_cores()
    assert int(env_two["OMP_NUM_THREADS"]) == max(1, cpu_cores() // 2)
    assert one[-3:] == ["chatmusician_hf.cpt", "--config", "tiny/cpt.yaml"]
