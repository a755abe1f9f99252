"""Read what tune a prompt asks for (a :class:`TuneRequest`), once per prompt.

Three sources, the first winning field by field:

1. an explicit option in ABC syntax, ``"M:6/8 K:D L:1/8"`` (:func:`read_abc_header`; a bad value raises
   :class:`RequestError`);
2. the field lines of ChatMusician's text-to-ABC prompts (``Meter C``, ``Key D``, ``Note Length 1/8``, ``Rhythm
   reel``; ``chat_format.FIELD_NAMES``) and the ``Form AABB`` line of form prompts, taken exactly as written: this
   inverts ``data.tasks``;
3. plain words: "a jig in D", "a waltz in 3/4", "a slow air in E minor", "16 bars", "in the form AABB"
   (:mod:`.request_words`).

A field that the prompt names ambiguously ("in D or G") or not at all is not forced.
"""

from __future__ import annotations

import re

from ..chat_format import EOS, FIELD_NAMES, FORM_NAME, HUMAN
from .request_words import read_words
from .tune_request import HEADER_ORDER, RequestError, TuneRequest, merge, ordered, valid_form, value_problem

__all__ = ["RequestError", "TuneRequest", "read_abc_header", "read_field_lines", "read_request"]

_OPTION_FIELD = re.compile(r"(?:^|(?<=\s))([A-Za-z]):")
_CODES = {name: code for code, name in FIELD_NAMES.items()}
_NAMED_LINE = re.compile(rf"^({'|'.join(sorted(_CODES, key=len, reverse=True))}) (.*\S)\s*$")
_FORM_LINE = re.compile(rf"^{FORM_NAME} ([A-Z]+)\s*$")
MUSICAL_FIELDS = "KMLQ"


def read_abc_header(option: str) -> TuneRequest:
    """Fields in ABC syntax separated by spaces: ``"M:6/8 K:D L:1/8"``, ``"T:The Kesh K:G"``."""
    matches = list(_OPTION_FIELD.finditer(option))
    lead = option[: matches[0].start()] if matches else option
    if lead.strip():
        raise RequestError(f"ABC header {option!r}: expected fields such as 'M:6/8 K:D', got {lead.strip()!r}")
    fields: list[tuple[str, str]] = []
    for match, after in zip(matches, [*matches[1:], None]):
        code = match.group(1)
        value = option[match.end() : after.start() if after else len(option)].strip()
        if code not in FIELD_NAMES:
            raise RequestError(
                f"ABC header {option!r}: {code}: is not a field a request can set (use {', '.join(HEADER_ORDER)})"
            )
        if any(code == seen for seen, _ in fields):
            raise RequestError(f"ABC header {option!r}: {code}: is given twice")
        problem = value_problem(code, value)
        if problem:
            raise RequestError(f"ABC header {option!r}: {code}:{value} cannot be used: {problem}")
        fields.append((code, value))
    return TuneRequest(ordered(fields))


def last_user_message(prompt: str) -> str:
    """The last user turn of a prompt in ChatMusician's format, or the prompt itself when it is not one."""
    if HUMAN not in prompt:
        return prompt
    # (up to the end token itself: a tokenizer may not give back the space before it)
    return prompt[prompt.rindex(HUMAN) + len(HUMAN) :].split(EOS, 1)[0].rstrip(" ")


def read_field_lines(message: str) -> tuple[TuneRequest, str]:
    """The header fields and form a message names one a line, and the rest of the message.

    The lines are field lines only beside at least one ``Key``, ``Meter``, ``Note Length`` or ``Tempo`` line with a
    value its field can take, so "Key signatures are hard" or "Notes on a page" alone stay prose. In a block of
    field lines, one whose value cannot be read ("Meter FREI4/4") asks for nothing.
    """
    kinds, fields, form = [], [], None  # each line is "musical", "unreadable", "free", "form" or "prose"
    for line in message.split("\n"):
        named, form_line = _NAMED_LINE.match(line), _FORM_LINE.match(line)
        kind = "prose"
        if named:
            code, value = _CODES[named.group(1)], named.group(2)
            if value_problem(code, value):
                kind = "unreadable"  # (a title holding a control character is not written either)
            else:
                kind = "musical" if code in MUSICAL_FIELDS else "free"
            fields.append((code, value, kind))
        elif form_line and valid_form(form_line.group(1)):
            form, kind = form_line.group(1), "form"
        kinds.append((line, kind))
    block = any(kind == "musical" for _, _, kind in fields)
    consumed = {"form", "musical", "unreadable", "free"} if block else {"form"}
    rest = "\n".join(line for line, kind in kinds if kind not in consumed)
    taken = [(code, value) for code, value, kind in fields if block and kind in ("musical", "free")]
    return TuneRequest(ordered(taken), form=form), rest


def read_request(prompt: str, abc_header: str | None = None) -> TuneRequest:
    """The request of ``prompt`` (a user message or a whole ChatMusician prompt, whose last user turn is read):
    the explicit ``abc_header`` option, then the prompt's field lines, then its plain words."""
    lines, rest = read_field_lines(last_user_message(prompt))
    request = merge(lines, read_words(rest))
    return merge(read_abc_header(abc_header), request) if abc_header else request
