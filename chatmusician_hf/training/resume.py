"""Which checkpoint a run resumes from: the newest one whose every file can be read, else the one before, saying why.

A run killed while saving leaves a folder with some files missing or cut short, and a disk that filled up leaves
truncated files that exist. Existence is not enough: the trainer would pick the checkpoint and crash on every
rerun ("PytorchStreamReader failed reading zip archive"). So each file a resume reads is read here first: JSON files
parse, safetensors files hold every tensor their header lists, and torch archives (``optimizer.pt``,
``scheduler.pt``, ``rng_state*.pth``, DeepSpeed's ``global_step*/`` states) pass their zip checksums.
"""

from __future__ import annotations

import json
import os
import re
import zipfile
from pathlib import Path

from ..errors import ChatMusicianError, CheckpointError

CHECKPOINT_DIR = re.compile(r"^checkpoint-(\d+)$")
# torch.save writes zip archives under these suffixes (the trainer's optimizer, scheduler, RNG and arguments files).
TORCH_SUFFIXES = (".pt", ".pth", ".bin")


def _torch_archive_problem(path: Path) -> str | None:
    try:
        with zipfile.ZipFile(path) as archive:
            corrupt = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        return f"{path.name} cannot be read ({err})"
    return f"{path.name} is corrupt ({corrupt} fails its checksum)" if corrupt else None


def _safetensors_problem(path: Path) -> str | None:
    from ..merging.safetensors_io import read_safetensors_header

    try:
        read_safetensors_header(path)
    except (ChatMusicianError, OSError) as err:
        return f"{path.name} cannot be read ({err})"
    return None


def _file_problem(path: Path) -> str | None:
    if path.suffix == ".json":
        try:
            json.loads(path.read_text())
        except (OSError, ValueError) as err:
            return f"{path.name} cannot be read ({err})"
    elif path.suffix == ".safetensors":
        return _safetensors_problem(path)
    elif path.suffix in TORCH_SUFFIXES:
        return _torch_archive_problem(path)
    return None


def checkpoint_problem(path: Path) -> str | None:
    """Why ``path`` cannot be resumed from, or None when every file a resume reads is there and readable."""
    path = Path(path)
    if not path.is_dir():
        return "no such folder"
    present = {p.name for p in path.iterdir()}
    required = ["trainer_state.json", "scheduler.pt"]
    if not any(name.endswith(".safetensors") for name in present):
        required.append("model or adapter weights (*.safetensors)")
    # DeepSpeed keeps the optimizer state in global_step*/ instead of optimizer.pt.
    if not any(name.startswith("global_step") for name in present):
        required.append("optimizer.pt")
    missing = [name for name in required if name not in present]
    if missing:
        return f"{', '.join(missing)} missing"
    files = sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        problem = _file_problem(file)
        if problem:
            return problem
    return None


def find_resume_checkpoint(output_dir: str | os.PathLike, resume: str | None) -> str | None:
    """Resolve ``resume_from_checkpoint``: ``auto``/``latest`` picks the newest readable checkpoint in output_dir
    (None when there is none, so a first run and a rerun use the same recipe); a path is checked as given."""
    if resume is None or resume in ("", "false", "False", "none", "None"):
        return None
    if resume not in ("auto", "latest", "true", "True"):
        problem = checkpoint_problem(Path(resume))
        if problem:
            raise CheckpointError(f"resume_from_checkpoint: {resume} cannot be resumed from: {problem}.")
        return resume
    candidates = sorted(
        (p for p in Path(output_dir).glob("checkpoint-*") if CHECKPOINT_DIR.match(p.name)),
        key=lambda p: int(CHECKPOINT_DIR.match(p.name).group(1)),
        reverse=True,
    )
    for candidate in candidates:
        problem = checkpoint_problem(candidate)
        if problem is None:
            return str(candidate)
        print(f"[resume] skipping {candidate.name}: {problem}; trying the checkpoint before it")
    return None
