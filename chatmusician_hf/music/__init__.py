"""The ABC notation layer: find tunes in text, validate them, render them, transpose them.

It knows nothing of models; every stage that touches ABC goes through these functions. Text reaches the external
programs (abc2midi, abc2abc, abcm2ps, fluidsynth) only through :func:`~.validate.prepare`, which removes the
directives that read files or pass raw code (:mod:`chatmusician_hf.abc.directives`), and the programs run through
:mod:`chatmusician_hf.music.runner`: no shell, a timeout, an environment of their own, operating-system limits, an
output cap and a temporary directory that is always removed.

Modules: ``extract`` (tunes in free text), ``validate`` (the report, and which abc2midi messages count),
``scan`` (a lenient reader: bars, durations, pitches; keys, meters and lengths come from
:mod:`chatmusician_hf.abc`), ``rendering`` (SVG/MIDI/WAV), ``budget`` (how much a render may write),
``svg_safety`` (inert SVG), ``transpose``, ``batch`` (many texts in a process pool), ``stats`` (the ABC-quality
statistics), ``midi`` (a small MIDI reader and its length), ``runner`` (subprocesses), ``confinement`` (their
environment and limits).

Errors: :class:`AbcError` (a ``ValueError``) for input that cannot be used as ABC at all;
:class:`MissingToolError` when a program is not installed (the message names the Debian package). Everything
else about a bad tune is described in a :class:`ValidationReport`, not raised.
"""

from .errors import AbcError, MissingToolError
from .extract import ExtractedTune, extract_tunes
from .rendering import RenderResult, render_abc
from .transpose import transpose_abc
from .validate import AbcIssue, ValidationReport, validate_abc

__all__ = [
    "AbcError",
    "AbcIssue",
    "ExtractedTune",
    "MissingToolError",
    "RenderResult",
    "ValidationReport",
    "extract_tunes",
    "render_abc",
    "transpose_abc",
    "validate_abc",
]
