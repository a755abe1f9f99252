"""One tune of a tunebook made standalone, as the ABC 2.1 standard says a program extracting it must write it.

Given the tune's own lines and the file header's, :func:`standalone_tune` returns the lines to hand on:

- the file header's fields and directives inserted after the ``X:`` line, except a field the tune sets itself (its
  own ``M:``, ``L:``, ``T:`` ... override the header's); ``U:``, ``I:`` and ``m:`` definitions and ``%%``
  directives all go in, before the tune's own ones, which the programs read later and so win;
- continuation lines joined: a line ending in ``\\`` (blanks and a ``%`` remark may follow) with the next line, a
  ``+:`` line with the field line before it (with a space between); comment lines may stand between the halves;
- comment lines set apart, and ``abc-charset`` declarations dropped (the text handed on is already decoded);
- what :mod:`.directives` forbids removed, reported with the file's line numbers.

Every line is a ``(file line number, text)`` pair, so each line handed on knows where it came from.
"""

from __future__ import annotations

import re

from .charsets import is_declaration
from .directives import REMOVED, Directive, strip_directives

Line = tuple[int, str]  # (1-based line number in the file, text)

OVERRIDABLE = frozenset("UIm")  # definitions keyed by a name: the header's and the tune's both go in
_FIELD = re.compile(r"[ \t]*([A-Za-z+]):(.*)")
_CONTINUED = re.compile(r"\\(?:[ \t]*|[ \t]+%.*)$")  # "\" at the end, or "\" then blanks and a remark
_REMARK = re.compile(r"(?<!\\)%.*")


def is_comment(text: str) -> bool:
    stripped = text.lstrip(" \t")
    return stripped.startswith("%") and not stripped.startswith("%%")


def is_directive(text: str) -> bool:
    return text.lstrip(" \t").startswith("%%")


def field_letter(text: str) -> str | None:
    """The letter of a field line (``+`` for a field continuation), or None."""
    match = _FIELD.match(text)
    return match.group(1) if match else None


def field_value(text: str) -> str:
    """The value of a field line, without its remark."""
    return _REMARK.sub("", _FIELD.match(text).group(2)).strip()


def join_continuations(lines: list[Line]) -> tuple[list[Line], list[Line]]:
    """(the lines with continuations joined and comment lines out, the comment lines)."""
    kept: list[Line] = []
    comments: list[Line] = []
    continued = False
    for number, text in lines:
        if is_comment(text):
            comments.append((number, text))
            continue
        text = text.rstrip()
        if continued:
            kept[-1] = (kept[-1][0], kept[-1][1] + text)
        elif field_letter(text) == "+" and kept and field_letter(kept[-1][1]) not in (None, "+"):
            kept[-1] = (kept[-1][0], f"{kept[-1][1]} {text.split(':', 1)[1].strip()}")
        else:
            kept.append((number, text))
        continued = not is_directive(kept[-1][1]) and _CONTINUED.search(kept[-1][1]) is not None
        if continued:
            kept[-1] = (kept[-1][0], _CONTINUED.sub("", kept[-1][1]))
    return kept, comments


def with_file_header(own: list[Line], header: list[Line]) -> list[Line]:
    """The tune's lines with the file header's inserted after its ``X:`` line (see the module docstring)."""
    end_of_header = next((i for i, (_, t) in enumerate(own) if field_letter(t) == "K"), len(own))
    own_letters = {field_letter(t) for _, t in own[: end_of_header + 1]}
    inserted = [
        (n, t)
        for n, t in header
        if not is_comment(t)
        and (is_directive(t) or field_letter(t) in OVERRIDABLE or field_letter(t) not in own_letters)
    ]
    at_x = next((i + 1 for i, (_, t) in enumerate(own) if field_letter(t) == "X"), 0)
    return own[:at_x] + inserted + own[at_x:]


def standalone_tune(own: list[Line], header: list[Line]) -> tuple[list[Line], list[Line], list[Directive]]:
    """(the lines to hand on, the comment lines, the forbidden directives removed with their file lines)."""
    composed = [(n, t) for n, t in with_file_header(own, header) if not is_declaration(t)]
    kept, comments = join_continuations(composed)
    numbers = [n for n, _ in kept]
    allowed, removed = strip_directives("\n".join(t for _, t in kept))
    lines = [(n, t) for n, t in zip(numbers, allowed.split("\n"), strict=True) if t != REMOVED]
    return lines, comments, [Directive(d.written, numbers[d.line - 1], d.reason) for d in removed]


def header_value(lines: list[Line], letter: str) -> str | None:
    """The first value of field ``letter`` in the tune header (the lines before the first ``K:``), or None."""
    for _, text in lines:
        found = field_letter(text)
        if found == "K":
            return field_value(text) if letter == "K" else None
        if found == letter:
            return field_value(text)
    return None
