"""Tunebooks: every tune of an ABC file, read the way the ABC 2.1 standard lays a file out.

A file is blocks separated by empty lines (lines of blanks count as empty): an optional *file header* at the top
(fields, ``%%`` directives and comments, no ``K:``), *tunes* (an ``X:`` line to the next empty line) and *free
text* between them. Each tune is handed on as :mod:`.standalone` writes it (the file header in it, continuation
lines joined, comments apart, only what :mod:`.directives` allows), decoded as :mod:`.charsets` says, and knows its
X number, title, file and line, and the file line of each of its lines. Free text keeps its own directives: their
scope ends where the next tune starts.

Leniencies for files in the wild: an ``X:`` line starts a tune even with no empty line above it (so a file header or
free text written straight above ``X:1`` is still read as such); a block of fields that reaches ``K:`` with no
``X:`` is a tune without a number; the blocks before the first tune that look like a file header all are one; empty
lines inside a ``%%begin...`` / ``%%end...`` block do not split it.
"""

from __future__ import annotations

import bisect
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .charsets import TunebookError, declared_charset, decode, strip_bom
from .directives import Directive
from .standalone import field_letter, field_value, header_value, is_comment, is_directive, standalone_tune

MAX_FILE_BYTES = 64 * 2**20  # far beyond any tunebook (music21's largest file is under 1 MB)

_BLANK = re.compile(rb"[ \t]*")
_BEGIN = re.compile(rb"[ \t]*%%[ \t]*begin([A-Za-z]*)", re.IGNORECASE)
_END = re.compile(rb"[ \t]*%%[ \t]*end([A-Za-z]*)", re.IGNORECASE)


@dataclass(frozen=True)
class Tune:
    abc: str  # the tune as handed on (:mod:`.standalone`)
    x: str | None  # the X: value as written ("3", "0003"); None for a tune without an X: line
    title: str | None  # its first T: (the file header's when it has none)
    source: str  # the file it came from
    line: int  # 1-based line of its first line in the file
    index: int  # 0-based position in the file
    encoding: str  # the character set its bytes were read with
    line_map: tuple[int, ...]  # the file's line number of each line of ``abc``
    comments: tuple[tuple[int, str], ...] = ()  # (file line, text) of the comment lines inside the tune
    removed: tuple[Directive, ...] = ()  # forbidden directives taken out, with file line numbers

    @property
    def number(self) -> int | None:
        """The X number as an integer (``X:0003`` is 3), or None."""
        return int(self.x) if self.x and self.x.isdigit() else None

    def file_line(self, line: int | None) -> int | None:
        """The file's line number for a 1-based line of :attr:`abc` (None passes through)."""
        if line is None or not self.line_map:
            return line
        return self.line_map[min(max(line, 1), len(self.line_map)) - 1]


@dataclass(frozen=True)
class TextBlock:
    line: int  # 1-based line of its first line in the file
    text: str


@dataclass
class TuneBook:
    source: str
    tunes: list[Tune] = field(default_factory=list)
    header: TextBlock | None = None  # the file header as written (comments and declarations included)
    free_text: list[TextBlock] = field(default_factory=list)
    comments: list[tuple[int, str]] = field(default_factory=list)  # comment lines outside tunes and free text
    warnings: list[str] = field(default_factory=list)  # decoding fallbacks, repeated X numbers


def read_tunebook(path) -> TuneBook:
    """Every tune of the ABC file at ``path``; :class:`TunebookError` when it is not an ABC file at all."""
    path = Path(path)
    if not path.is_file():
        raise TunebookError(f"{path}: no such file")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise TunebookError(f"{path} is {size:,} bytes; a tunebook may have at most {MAX_FILE_BYTES:,}")
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise TunebookError(f"{path}: cannot read it: {err.strerror}") from None
    return parse_tunebook(raw, str(path))


def parse_tunebook(raw: bytes, source: str = "<text>") -> TuneBook:
    """Every tune in the bytes of an ABC file (``source`` names it in tunes and messages)."""
    raw = strip_bom(raw, source)
    if b"\x00" in raw:
        raise TunebookError(f"{source} is not text (a NUL byte at offset {raw.index(0)})")
    reader = _Reader(TuneBook(source))
    for block in _blocks(list(enumerate(raw.splitlines(), start=1))):
        reader.add(block)
    return reader.finish()


def _blocks(lines: list[tuple[int, bytes]]):
    """The runs of non-empty lines; a ``%%begin...`` block that has its ``%%end...`` stays whole."""
    ends: dict[bytes, list[int]] = {}  # block name -> indexes of its end lines, in order
    for index, (_, line) in enumerate(lines):
        end = _END.match(line)
        if end:
            ends.setdefault(end.group(1).lower(), []).append(index)
    block: list[tuple[int, bytes]] = []
    index = 0
    while index < len(lines):
        number, line = lines[index]
        if _BLANK.fullmatch(line):
            if block:
                yield block
                block = []
            index += 1
            continue
        block.append((number, line))
        begin = _BEGIN.match(line)
        candidates = ends.get(begin.group(1).lower(), []) if begin else []
        after = bisect.bisect_right(candidates, index)
        if after < len(candidates):
            block.extend(lines[index + 1 : candidates[after] + 1])
            index = candidates[after]
        index += 1
    if block:
        yield block


def is_directive_or_field(text: str) -> bool:
    return is_directive(text) or field_letter(text) is not None


class _Reader:
    """Reads the blocks of one file in order into its :class:`TuneBook`."""

    def __init__(self, book: TuneBook):
        self.book = book
        self.started = False  # a tune or free text has been read: no file header any more
        self.charset: str | None = None  # the file header's declaration
        self.header_lines: list[tuple[int, str]] = []  # decoded

    def add(self, block: list[tuple[int, bytes]]) -> None:
        starts = [i for i, (_, line) in enumerate(block) if re.match(rb"[ \t]*X:", line)]
        lead = block[: starts[0]] if starts else block
        if lead:
            self._lead(lead)
        for first, stop in zip(starts, starts[1:] + [len(block)], strict=False):
            self._tune(block[first:stop])

    def _lead(self, lines: list[tuple[int, bytes]]) -> None:
        """Lines before any X: in a block: comments, the file header, a tune without X:, or free text."""
        # what the lines are is told by their ASCII, which latin-1 keeps whatever the character set
        content = [t for t in (b.decode("latin-1") for _, b in lines) if not is_comment(t)]
        letters = [field_letter(t) for t in content]
        if content and letters[0] not in (None, "+") and "K" in letters:
            self._tune(lines)
            return
        declared = next((d for d in map(declared_charset, (b for _, b in lines)) if d), self.charset)
        text = list(zip((n for n, _ in lines), self._decode(lines, declared, lines[0][0])[0], strict=True))
        if not content:
            self.book.comments.extend(text)
        elif not self.started and "K" not in letters and all(map(is_directive_or_field, content)):
            self._extend_header(text, declared)
        else:
            self.started = True
            self.book.free_text.append(TextBlock(lines[0][0], "\n".join(t for _, t in text)))

    def _extend_header(self, text: list[tuple[int, str]], declared: str | None) -> None:
        self.charset = declared
        self.header_lines += text
        written = "\n".join(t for _, t in text)
        if self.book.header is None:
            self.book.header = TextBlock(text[0][0], written)
        else:
            self.book.header = TextBlock(self.book.header.line, f"{self.book.header.text}\n{written}")

    def _decode(
        self, lines: list[tuple[int, bytes]], declared: str | None, line: int
    ) -> tuple[list[str], str]:
        text, charset, warning = decode(
            b"\n".join(b for _, b in lines), declared, f"{self.book.source}:{line}"
        )
        if warning:
            self.book.warnings.append(warning)
        return text.split("\n"), charset

    def _tune(self, lines: list[tuple[int, bytes]]) -> None:
        self.started = True
        declared = next((d for d in map(declared_charset, (b for _, b in lines)) if d), self.charset)
        text, charset = self._decode(lines, declared, lines[0][0])
        own = list(zip((n for n, _ in lines), text, strict=True))
        handed_on, comments, removed = standalone_tune(own, self.header_lines)
        x_line = next(((n, t) for n, t in own if field_letter(t) == "X"), None)
        self.book.tunes.append(
            Tune(
                abc="\n".join(t for _, t in handed_on),
                x=field_value(x_line[1]) if x_line else None,
                title=header_value(handed_on, "T"),
                source=self.book.source,
                line=x_line[0] if x_line else own[0][0],
                index=len(self.book.tunes),
                encoding=charset,
                line_map=tuple(n for n, _ in handed_on),
                comments=tuple(comments),
                removed=tuple(removed),
            )
        )

    def finish(self) -> TuneBook:
        repeated = Counter(tune.x for tune in self.book.tunes if tune.x is not None)
        for x, count in repeated.items():
            if count > 1:
                self.book.warnings.append(f"{self.book.source}: X:{x} is the number of {count} tunes")
        return self.book
