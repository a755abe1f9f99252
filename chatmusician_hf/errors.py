"""The project's errors: one neutral root and one class per kind of failure.

Every failure a user can cause and fix (a recipe, a data file, a model reference, a merge, a push, an ABC text) is a
:class:`ChatMusicianError` whose message is one line saying what is wrong and what to change. The command-line entry
points print that line and exit with status 2 (:func:`chatmusician_hf.cli.run_command`); anything else escaping is
a bug and keeps its traceback. Each class also derives from the built-in exception that describes it
(``ValueError`` for bad input, ``RuntimeError`` for a missing tool), so generic handlers catch it too.

The ABC layer's two errors (``AbcError``, ``MissingToolError``) live in :mod:`chatmusician_hf.music.errors` and
derive from the same root.
"""

from __future__ import annotations


class ChatMusicianError(Exception):
    """Root of every error this package raises on purpose."""


def one_line(error: BaseException) -> str:
    """A library's message on one line (PEFT's and transformers' often span several), for an error to quote."""
    return " ".join(str(error).split())


class RecipeError(ChatMusicianError, ValueError):
    """A recipe or command line that cannot be run as written (unknown key, options that exclude each other)."""


class DatasetSourceError(ChatMusicianError, ValueError):
    """A dataset that cannot be read as the recipe names it (missing file, no rows, no text column, offline Hub ID)."""


class BenchDataError(DatasetSourceError):
    """The benchmark could not be loaded, or its rows do not follow the MusicTheoryBench schema."""


class ModelLoadError(ChatMusicianError, ValueError):
    """A model, tokenizer or adapter that cannot be loaded as named, or loading options this machine cannot honour."""


class CheckpointError(ChatMusicianError, ValueError):
    """A training checkpoint named for resumption that is missing or cannot be read."""


class MergeError(ChatMusicianError, ValueError):
    """A merge that cannot be done or did not pass verification; nothing final was written."""


class VerificationError(MergeError):
    """The merged model's logits differ from PEFT's base+adapter logits by more than the tolerance."""

    def __init__(self, message: str, max_difference: float, allowed: float):
        super().__init__(message)
        self.max_difference, self.allowed = max_difference, allowed


class PushError(ChatMusicianError, ValueError):
    """A push that cannot start (bad folder, bad repo ID); nothing was uploaded."""


class PromptTooLongError(ChatMusicianError, ValueError):
    """The newest message alone does not fit the prompt budget."""
