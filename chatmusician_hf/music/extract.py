"""Find the ABC tunes in free text such as a language model's answer.

A tune starts at an ``X:`` line, or at a block of header fields (``T:``, ``M:``, ``L:``, ``K:``, ...) that reaches
a ``K:`` line when ``X:`` was left out. It ends at a blank line, a Markdown code fence, the next ``X:`` line, a line
of prose, or the end of the text (a truncated answer keeps what was written). Fences themselves are ignored, so
tunes inside and outside code blocks are found alike.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_FIELD = re.compile(r"^\s*([A-Za-z]):")
_HEADER_LETTERS = set("XTMLKQCRVOZNAHBDFSGIPUW")
_FENCE = re.compile(r"^\s*(```|~~~)")
# Parts of a music line that may contain any letters: quoted chord symbols/annotations, decorations, inline fields,
# comments.
_NON_NOTE_SPANS = re.compile(r'"[^"]*"|![^!]*!|\+[^+]*\+|\[[A-Za-z]:[^\]]*\]|%.*$')
_WORD = re.compile(r"[A-Za-z]{3,}")
# note and rest letters, plus the one-letter decorations (T trill, H fermata, ...) and the spacer y
_NOTE_LETTERS = set("abcdefgABCDEFGzxZHLMOPSTuvy")
MAX_HEADER_LOOKAHEAD = 30  # header lines searched for K: when a tune has no X:


@dataclass(frozen=True)
class ExtractedTune:
    abc: str  # exactly text[start:end]
    start: int  # character offset of the tune's first character in the text
    end: int  # offset just past its last non-blank character
    has_x: bool  # False when the tune began without an X: line (validation supplies one)


def is_prose(line: str) -> bool:
    """True for a line of natural language rather than ABC music.

    Music lines contain only note letters outside quotes and decorations, so any run of three or more letters
    with one that is not a note letter (``the``, ``This``) marks prose.
    """
    stripped = _NON_NOTE_SPANS.sub(" ", line)
    for word in _WORD.findall(stripped):
        if any(char not in _NOTE_LETTERS for char in word):
            return True
    return False


def _field_letter(line: str) -> str | None:
    match = _FIELD.match(line)
    if match and not line.lstrip().startswith("|:") and match.group(1) in _HEADER_LETTERS:
        return match.group(1)
    return None


def _lines_with_offsets(text: str) -> list[tuple[int, str]]:
    out, offset = [], 0
    for line in text.splitlines(keepends=True):
        out.append((offset, line.rstrip("\r\n")))
        offset += len(line)
    return out


def _header_reaches_k(lines: list[tuple[int, str]], index: int) -> bool:
    for _, line in lines[index : index + MAX_HEADER_LOOKAHEAD]:
        letter = _field_letter(line)
        if letter == "K":
            return True
        if letter is None and not line.lstrip().startswith("%"):
            return False
    return False


def _tune_end(lines: list[tuple[int, str]], first: int) -> int:
    """Index of the last line of the tune that starts at line ``first``."""
    last = first
    in_body = _field_letter(lines[first][1]) == "K"
    for index in range(first + 1, len(lines)):
        line = lines[index][1]
        if not line.strip() or _FENCE.match(line) or _field_letter(line) == "X":
            break
        letter = _field_letter(line)
        if letter is None and not line.lstrip().startswith("%") and is_prose(line):
            break
        elif letter is not None and letter not in "KVWwMLQPTNRIs" and in_body and is_prose(line):
            break
        if letter == "K":
            in_body = True
        last = index
    return last


def extract_tunes(text: str) -> list[ExtractedTune]:
    """Every tune in ``text`` with its character span, in order. Never raises; non-text gives ``[]``."""
    if not isinstance(text, str) or not text:
        return []
    lines = _lines_with_offsets(text)
    tunes: list[ExtractedTune] = []
    index = 0
    while index < len(lines):
        line = lines[index][1]
        letter = _field_letter(line)
        starts = letter == "X" or (letter is not None and _header_reaches_k(lines, index))
        if not starts:
            index += 1
            continue
        last = _tune_end(lines, index)
        start = lines[index][0] + (len(line) - len(line.lstrip()))
        end = lines[last][0] + len(lines[last][1].rstrip())
        abc = text[start:end]
        # an X: line alone, or a header with no K: and no music, is not a tune
        has_music = any(not _field_letter(body) for _, body in lines[index + 1 : last + 1])
        if last > index and ("K:" in abc or has_music):
            tunes.append(ExtractedTune(abc=abc, start=start, end=end, has_x=letter == "X"))
        index = last + 1
    return tunes
