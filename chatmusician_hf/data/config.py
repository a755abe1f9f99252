"""``DataArguments``: which rows a stage trains on and how they are prepared.

The training recipes are parsed with every stage dataclass at once (``DataArguments`` next to
``transformers.TrainingArguments``/``trl.SFTConfig`` and ``trl.ModelConfig``), so no field here may share a name with
those classes: the random seed is ``dataset_seed`` (``seed``/``data_seed`` belong to TrainingArguments) and the
sequence lengths are function arguments (``max_length`` belongs to SFTConfig). ``tests/test_data_sources.py``
checks this.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import RecipeError

# Dataset names that need no download: the tunes music21 ships, and the SFT task set built from them.
MUSIC21_CORPUS = "music21"
MUSIC21_TASKS = "music21-tasks"
# The SFT task set built from the tunes of a folder or file of .abc tunebooks: "abc-tasks:my_tunes/".
ABC_TASKS_PREFIX = "abc-tasks:"
ABC_FILTERS = ("all", "parses", "valid")


@dataclass
class DataArguments:
    dataset_name: str | None = field(
        default=MUSIC21_CORPUS,
        metadata={
            "help": "Dataset to train on: a Hub ID (m-a-p/MusicPile, m-a-p/MusicPile-sft, ...), a local directory "
            "(a save_to_disk folder or a folder of data files), a .jsonl/.json/.parquet/.csv/.txt/.arrow file, or "
            f"'{MUSIC21_CORPUS}' (the ABC tunes bundled with music21) or '{MUSIC21_TASKS}' (SFT tasks built from "
            "them). A .abc file or a folder of them gives one pretraining row per tune, and "
            f"'{ABC_TASKS_PREFIX}PATH' the SFT tasks built from those tunes. Ignored when 'datasets' is set."
        },
    )
    dataset_config: str | None = field(
        default=None,
        metadata={"help": "Configuration name of dataset_name (the 'name' of datasets.load_dataset)."},
    )
    dataset_train_split: str = field(default="train", metadata={"help": "Split to train on."})
    dataset_test_split: str = field(
        default="validation",
        metadata={
            "help": "Split to evaluate on. When a source has no such split, 'validation_fraction' of its training "
            "rows are held out instead (and removed from training)."
        },
    )
    datasets: list[dict] = field(
        default_factory=list,
        metadata={
            "help": "A mixture of sources in TRL's format: a list of {path, name, data_dir, data_files, split, "
            "columns, fraction}. 'fraction' is the source's share of the mixed rows (normalised, never "
            "oversampled; in streaming mode a sampling probability). Extensions: 'src' (a list of src values to "
            "keep, or a mapping src -> share) and 'text_column'. Overrides dataset_name when set."
        },
    )
    src_include: list[str] | None = field(
        default=None,
        metadata={
            "help": "Keep only rows whose 'src' is one of these (e.g. IrishMAN KernScores). Applies to dataset_name."
        },
    )
    src_weights: dict | str | None = field(
        default=None,
        metadata={
            "help": "Shares of rows per 'src' value, as a mapping (YAML) or JSON string, e.g. "
            '\'{"IrishMAN": 2, "KernScores": 1}\'. Normalised; no src is oversampled. Implies src_include. '
            "Applies to dataset_name."
        },
    )
    streaming: bool = field(
        default=False,
        metadata={
            "help": "Stream the sources instead of downloading/materialising them: bounded memory for corpora "
            "larger than RAM (MusicPile). Tokenisation then runs in this process and nothing is cached; the "
            "trainer needs max_steps."
        },
    )
    num_proc: int | None = field(
        default=None, metadata={"help": "Processes that tokenise the rows of a map-style dataset (forked workers); None = one."}
    )
    text_column: str = field(
        default="text", metadata={"help": "Column holding the text of pretraining rows."}
    )
    data_cache_dir: str | None = field(
        default=None,
        metadata={
            "help": "Folder for packed datasets, keyed on data fingerprint + tokenizer + settings so a rerun reuses "
            "them. Default: <HF_DATASETS_CACHE>/chatmusician_hf."
        },
    )
    transpose_augment: int = field(
        default=0,
        metadata={
            "help": "Add this many random transpositions of every row that is a whole ABC tune (pretraining "
            "data). Needs chatmusician_hf.music.transpose_abc."
        },
    )
    abc_filter: str = field(
        default="all",
        metadata={
            "help": "Which tunes of .abc sources (files, folders, abc-tasks:) to keep: 'all', 'parses' (abc2midi reads "
            "the music without a musical error) or 'valid' (chatmusician_hf.music.validate_abc finds no error: "
            "header, abc2midi, bar durations, voices). What is left out, and why, is printed.",
            "choices": list(ABC_FILTERS),
        },
    )
    dataset_seed: int = field(
        default=42, metadata={"help": "Seed for mixture sampling, held-out rows and transposition choices."}
    )
    validation_fraction: float = field(
        default=0.05,
        metadata={
            "help": "Share of rows held out for evaluation from sources that have no dataset_test_split."
        },
    )
    max_rows: int | None = field(
        default=None,
        metadata={"help": "Use only the first N rows of each split (quick runs and smoke tests)."},
    )

    def __post_init__(self):
        if isinstance(self.src_weights, str):
            try:
                self.src_weights = json.loads(self.src_weights)
            except json.JSONDecodeError as err:
                raise RecipeError(f"src_weights: not a JSON mapping: {self.src_weights!r} ({err})") from None
        if self.src_weights is not None and not (
            isinstance(self.src_weights, dict)
            and all(isinstance(v, (int, float)) and v >= 0 for v in self.src_weights.values())
        ):
            raise RecipeError(
                f"src_weights must map src names to non-negative numbers, got {self.src_weights!r}"
            )
        if not 0 <= self.validation_fraction < 1:
            raise RecipeError(f"validation_fraction must be in [0, 1), got {self.validation_fraction}")
        if self.abc_filter not in ABC_FILTERS:
            raise RecipeError(f"abc_filter must be one of {', '.join(ABC_FILTERS)}, got {self.abc_filter!r}")
        if self.transpose_augment < 0:
            raise RecipeError(f"transpose_augment must be >= 0, got {self.transpose_augment}")
        if self.datasets is None:
            self.datasets = []
        if not self.datasets and not self.dataset_name:
            raise RecipeError("Set dataset_name or a 'datasets' mixture.")


def default_cache_dir() -> Path:
    """``<HF_DATASETS_CACHE>/chatmusician_hf``: where prepared datasets go when ``data_cache_dir`` is not set."""
    import datasets

    return Path(datasets.config.HF_DATASETS_CACHE) / "chatmusician_hf"


def cache_dir(data_args: DataArguments) -> Path:
    return Path(data_args.data_cache_dir).expanduser() if data_args.data_cache_dir else default_cache_dir()


def cached_dataset(folder: Path, build):
    """The dataset saved in ``folder``, or ``build()`` saved there first (``save_to_disk``), then loaded.

    The folder appears whole or not at all: it is written under another name and renamed, and where another process
    finished first, its copy is kept."""
    import os
    import shutil

    from datasets import load_from_disk

    if not (folder / "dataset_dict.json").is_file() and not (folder / "state.json").is_file():
        partial = folder.with_name(folder.name + f".partial-{os.getpid()}")
        build().save_to_disk(str(partial))
        if folder.exists():
            shutil.rmtree(partial, ignore_errors=True)
        else:
            os.replace(partial, folder)
    return load_from_disk(str(folder))
def source_digest(*modules) -> str:
    """A hash of the given modules' source code. ``datasets`` fingerprints a module-level map function by its name
    only, so cache keys include this to never reuse results of an older version of the code."""
    digest = hashlib.sha256()
    for module in modules:
        digest.update(Path(module.__file__).read_bytes())
    return digest.hexdigest()[:16]
