"""The directives that reach outside a tune, and the policy that keeps them from the ABC programs.

A tune can carry instructions for the programs that read it: ``%%name ...`` lines, ``I:name ...`` fields (both
abc2midi and abcm2ps read them as the same thing) and inline ``[I:name ...]`` fields. A few make a program read a
file or copy raw code into what it writes. Found in the sources of abcm2ps 8.14 (``front.c``, ``parse.c``,
``buffer.c``, ``svg.c``) and abcmidi 4.84 (``parseabc.c``, ``store.c``, ``genmidi.c``) and confirmed by running the
programs on a planted file:

* ``%%abc-include FILE`` -- abc2midi, abc2abc and abcm2ps read FILE as part of the tune (abc2midi also without the
  space: ``%%abc-includeFILE``); abc2midi echoes its lines in warnings, ``/dev/zero`` exhausts memory;
* ``%%format FILE`` -- abcm2ps reads a format or PostScript file;
* ``%%EPS FILE`` -- abcm2ps copies an EPS file into the score;
* ``%%beginsvg`` ... ``%%endsvg`` -- abcm2ps copies the block into the SVG verbatim (scripts, event handlers);
* ``%%beginps`` ... ``%%endps``, ``%%postscript``, ``%%ps`` -- raw PostScript, interpreted into the score;
* ``%%MIDI ptstress FILE`` and ``%%MIDIdef NAME ptstress FILE`` (played by ``%%MIDIx NAME``) -- abc2midi reads a
  stress file (the form with numbers only is kept);
* ``%%abcm2ps PREFIX`` and ``%%ss-pref PREFIX`` -- change which comments abcm2ps reads as directives, so any of the
  above could hide as ``%!format FILE``;
* ``%%abc FIELD`` -- abcm2ps reads the rest of the comment as a field, e.g. ``%%abc I:abc-include FILE``.

:func:`strip_directives` replaces each with a comment line (so line numbers stay those of the text as given) and
lists what it removed. Names are matched without regard to case and with leading blanks allowed, which is wider
than the programs themselves read. The programs end a line at ``\\r`` as at ``\\n``, and so does this module.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

READS_A_FILE = "reads a file on the machine running the tools"
RAW_POSTSCRIPT = "passes raw PostScript to abcm2ps"
HIDES_DIRECTIVES = "changes which comments abcm2ps reads as directives, hiding others from this check"

# directive name (lower case) -> why it is removed
FORBIDDEN = {
    "abc-include": READS_A_FILE,
    "format": READS_A_FILE,
    "eps": READS_A_FILE,
    "beginsvg": "copies raw SVG (scripts, event handlers) into the score",
    "beginps": RAW_POSTSCRIPT,
    "postscript": RAW_POSTSCRIPT,
    "ps": RAW_POSTSCRIPT,
    "abcm2ps": HIDES_DIRECTIVES,
    "ss-pref": HIDES_DIRECTIVES,
    "abc": "makes abcm2ps read the rest of the comment as a field (such as I:abc-include)",
}
# %%MIDI commands that name a file
MIDI_FILE_COMMANDS = {"ptstress"}
BLOCKS = {"beginsvg": "svg", "beginps": "ps"}  # block start -> what its end line names (%%endsvg, %%endps)
REMOVED = "%"  # what a removed line becomes: a comment, which neither ends the tune nor shifts line numbers

_LINE = re.compile(r"([^\r\n]*)(\r\n|\r|\n|$)")
_DIRECTIVE = re.compile(r"[ \t]*(%%|I:)[ \t]*([A-Za-z][A-Za-z0-9_-]*)(.*)")
_INLINE = re.compile(r"\[I:[ \t]*([A-Za-z][A-Za-z0-9_-]*)([^\]\r\n]*)\]")
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


@dataclass(frozen=True)
class Directive:
    """One removed directive: as written (``%%abc-include``, ``[I:MIDI ptstress]``), where, and why."""

    written: str
    line: int  # 1-based, counting \r\n, \r and \n as line ends
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.written} {self.reason}"


def forbidden(name: str, arguments: str) -> tuple[str, str] | None:
    """(the directive as it is shown, why it is removed) for ``name arguments``, or None when it may stay."""
    lower = name.lower()
    if lower.startswith("abc-include"):
        return name, FORBIDDEN["abc-include"]
    if lower in FORBIDDEN:
        return name, FORBIDDEN[lower]
    if lower in ("midi", "mididef"):
        words = arguments.split()[1 if lower == "mididef" else 0 :]
        if words and words[0].lower() in MIDI_FILE_COMMANDS and not _stress_numbers(words[1:]):
            return f"{name} {words[0]}", READS_A_FILE
    return None


def _stress_numbers(words: list[str]) -> bool:
    # abc2midi reads the argument as numbers when it starts with a non-zero number followed by more; else a file
    return len(words) >= 2 and all(_NUMBER.fullmatch(w) for w in words) and float(words[0]) != 0


def strip_directives(abc: str) -> tuple[str, list[Directive]]:
    """``abc`` with every forbidden directive replaced by a comment, and the list of what was removed."""
    if "%%" not in abc and "I:" not in abc:
        return abc, []
    removed: list[Directive] = []
    out: list[str] = []
    block_end = None  # inside a raw block: the regex of its end line
    for number, match in enumerate(_LINE.finditer(abc), start=1):
        line, ending = match.groups()
        if not line and not ending:
            break
        if block_end is not None:
            if block_end.match(line):
                block_end = None
            out.append(REMOVED + ending)
            continue
        directive = _DIRECTIVE.match(line)
        found = directive and forbidden(directive.group(2), directive.group(3))
        if found:
            mark, name = directive.group(1), directive.group(2)
            removed.append(Directive(mark + found[0], number, found[1]))
            if mark == "%%" and name.lower() in BLOCKS:
                block_end = re.compile(rf"[ \t]*%%[ \t]*end{BLOCKS[name.lower()]}", re.IGNORECASE)
            out.append(REMOVED + ending)
            continue
        if "[I:" in line:
            line = _strip_inline(line, number, removed)
        out.append(line + ending)
    return "".join(out), removed


def _strip_inline(line: str, number: int, removed: list[Directive]) -> str:
    """``line`` without its forbidden inline ``[I:...]`` fields (each added to ``removed``)."""

    def replace(match: re.Match) -> str:
        found = forbidden(match.group(1), match.group(2))
        if not found:
            return match.group(0)
        removed.append(Directive(f"[I:{found[0]}]", number, found[1]))
        return ""

    return _INLINE.sub(replace, line)
