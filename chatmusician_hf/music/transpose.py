"""Transpose a tune by whole semitones, the augmentation used in symbolic-music training.

The rewriting is done by ``abc2abc -t N`` (abcmidi), the reference implementation: it respells the key signature
(``K:G`` +3 -> ``K:Bb``), every note and accidental relative to the new key, and chord symbols (``"Am"`` ->
``"Cm"``). The output is checked note by note with this layer's own reader before it is returned, and
``tests/test_music_transpose.py`` checks the result through MIDI: every pitch moves by exactly N and
every duration is unchanged. A tune holding a directive that reads a file or passes raw code
(:mod:`chatmusician_hf.abc.directives`) is refused, never passed to abc2abc: a transposition is a copy of the
tune, and it must not carry such a line into training data or anywhere else.
"""

from __future__ import annotations

import re

from .errors import AbcError
from .runner import run_tool, temporary_workdir
from .scan import ScannedTune, scan_tune
from .validate import prepare, tool_text

MAX_SEMITONES = 48
re_meter = re.compile(r"(?m)^M:|\[M:")


def transpose_abc(abc: str, semitones: int, *, timeout: float = 10.0) -> str:
    """``abc`` moved by ``semitones`` (positive is up).

    Raises :class:`AbcError` for unusable input, a forbidden directive (naming it and its line), a tune with no
    ``K:`` line or an unreadable ``K:``/``M:``/``L:`` value, or when abc2abc fails. Those are the tunes it does not
    accept; for the rest, transposing back restores every pitch (checked over the music21 corpus).
    """
    abc, removed = prepare(abc)
    if removed:
        raise AbcError(f"cannot transpose: {removed[0]}")
    if isinstance(semitones, bool) or not isinstance(semitones, int):
        raise AbcError(f"semitones must be an int, got {semitones!r}")
    if abs(semitones) > MAX_SEMITONES:
        raise AbcError(f"cannot transpose by {semitones} semitones; the limit is +/-{MAX_SEMITONES}")
    if semitones == 0:
        return abc
    tune = scan_tune(abc)
    if tune.body_start_line is None:
        raise AbcError("cannot transpose a tune with no K: line (the key decides every note's spelling)")
    unreadable = [message for message, _ in tune.key_errors + tune.meter_errors]
    if unreadable:
        # abc2abc guesses at such fields (K:Es becomes E major) or blanks them; refuse instead of mangling
        raise AbcError(f"cannot transpose a tune with an unreadable header field: {unreadable[0]}")
    text, offset = tool_text(abc)
    with temporary_workdir() as work:
        (work / "tune.abc").write_text(text, encoding="utf-8")
        # -e: no error comments in the output; the tune is returned as transposed text only
        result = run_tool("abc2abc", ["tune.abc", "-e", "-t", str(semitones)], cwd=work, timeout=timeout)
    failure = result.failure() or (result.truncated and "abc2abc wrote more output than is kept")
    if failure:
        raise AbcError(f"cannot transpose: {failure}")
    out = result.stdout
    if offset:
        out = out.split("\n", 1)[1] if "\n" in out else ""
    # abc2abc writes every line with a trailing newline; keep the input's own ending
    if not abc.endswith("\n"):
        out = out.rstrip("\n")
    if not re_meter.search(abc):
        # abc2abc adds "M:none" after K: to a tune that had no meter; the input's meaning is kept without it
        out = re.sub(r"(?m)^M:none\n?", "", out, count=1)
    if "\n\n" in out.strip() and "\n\n" not in abc.strip():
        raise AbcError("abc2abc broke the tune apart (a blank line appeared); not transposed")
    if not out.strip():
        raise AbcError("abc2abc produced no output for this tune")
    _verify(tune, scan_tune(out), semitones)
    return out


def _verify(before: ScannedTune, after: ScannedTune, semitones: int) -> None:
    """Every note of the output must sound exactly ``semitones`` away from the input's note at the same place.

    abc2abc mis-spells a few unusual tunes (measured: 2 of 12,945 music21 tunes); refusing them keeps the
    augmentation exact.
    """
    if len(before.notes) != len(after.notes):
        raise AbcError(f"transposition check failed: {len(before.notes)} notes became {len(after.notes)}")
    for old, new in zip(before.notes, after.notes, strict=True):
        if new.pitch - old.pitch != semitones or new.duration != old.duration:
            raise AbcError(
                f"transposition check failed at line {old.line}: MIDI pitch {old.pitch} became {new.pitch}"
            )
