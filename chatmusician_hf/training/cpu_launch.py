"""The ``accelerate launch`` command that trains a recipe on this machine's CPU cores, as one process or as several
data-parallel ones.

Two single-threaded processes under DDP train the embedded default's tiny model (hidden 128) faster than one process
with two threads: 1.35x for packed SFT, whose micro-batch is one 512-token row, and 1.1x for CPT with its held-out
evaluation (``benchmarks/cpu_processes.py``; the same losses either way). accelerate's CPU launcher (``--cpu``)
starts only one process on a machine without a GPU, so several go through its multi-GPU launcher (torchrun), and the
recipes' ``use_cpu: true`` (``ACCELERATE_USE_CPU`` here too) puts every rank on the CPU with the gloo backend.
"""

from __future__ import annotations

import os
import socket
import sys


def cpu_cores() -> int:
    """Cores this process may run on (a container's limit, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def default_processes() -> int:
    return 2 if cpu_cores() >= 2 else 1


def batch_split(recipe: dict, processes: int) -> list[str]:
    """Flags that keep the recipe's batch per optimizer step when ``processes`` ranks share it: the accumulation is
    divided where it divides (a packed micro-batch stays one row), else the per-device batch."""
    if processes == 1:
        return []
    accumulation = int(recipe.get("gradient_accumulation_steps", 1))
    per_device = int(recipe.get("per_device_train_batch_size", 8))
    if accumulation % processes == 0:
        return ["--gradient_accumulation_steps", str(accumulation // processes)]
    if per_device % processes == 0:
        return ["--per_device_train_batch_size", str(per_device // processes)]
    raise ValueError(
        f"a batch of {per_device} x {accumulation} accumulation steps cannot be shared by {processes} processes; "
        "pass --num_processes 1 or a batch that divides"
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch_command(module: str, args: list[str], processes: int) -> tuple[list[str], dict[str, str]]:
    """(command, environment) that trains ``python -m module *args`` on ``processes`` CPU processes, sharing the
    cores between them."""
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--num_machines", "1", "--mixed_precision", "no",
                "--dynamo_backend", "no", "--num_processes", str(processes)]
    if processes == 1:
        # Without --cpu accelerate sets OMP_NUM_THREADS=1 and the trainer uses one core of the machine's.
        launcher.append("--cpu")
    else:
        launcher += ["--multi_gpu", "--main_process_port", str(_free_port())]
    env = dict(os.environ, OMP_NUM_THREADS=str(max(1, cpu_cores() // processes)), ACCELERATE_USE_CPU="true")
    return [*launcher, "-m", module, *args], env
