"""The tunes of a tunebook through the ABC layer: one verdict per tune, its outputs, and the summary of them all.

Line numbers in a verdict are the file's (each :class:`~chatmusician_hf.abc.tunebook.Tune` maps its lines back), so
a reason points at the line to mend in the tunebook. A directive the reader removed makes its tune invalid, as
:func:`~.validate.validate_abc` does with one it removes itself. Text from the file (titles, the programs' messages
quoting it) is printed with control characters escaped, so a tunebook cannot drive the terminal.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..abc.tunebook import Tune
from .budget import OutputBudget
from .errors import AbcError
from .rendering import render_abc, safe_stem
from .validate import ValidationReport, directive_issues, validate_abc

UNUSABLE = "unusable"  # the reason of a tune the ABC layer refuses outright (empty, too long, binary)


@dataclass
class TuneVerdict:
    tune: Tune
    report: ValidationReport | None = None  # None when the tune is unusable
    unusable: str | None = None  # why the ABC layer refused it
    paths: dict[str, Path] = field(default_factory=dict)  # format -> file written
    messages: dict[str, str] = field(default_factory=dict)  # program -> why a format was not written

    @property
    def valid(self) -> bool:
        return self.report is not None and self.report.is_valid

    @property
    def label(self) -> str:
        number = f"X:{self.tune.x}" if self.tune.x is not None else f"tune {self.tune.index + 1}"
        title = f" {self.tune.title!r}" if self.tune.title else ""
        return printable(f"{self.tune.source}:{self.tune.line} {number}{title}")

    def reasons(self) -> list[str]:
        """The kinds of error that make the tune invalid, each once, in the order met."""
        if self.report is None:
            return [UNUSABLE]
        return list(dict.fromkeys(issue.code for issue in self.report.errors))

    def line(self) -> str:
        """The one-line verdict: where, which tune, and valid or the first error (and how many more)."""
        if self.report is None:
            return f"{self.label}: UNUSABLE: {printable(self.unusable)}"
        if self.valid:
            return f"{self.label}: valid ({self.report.n_bars} bars)"
        first, more = self.report.errors[0], len(self.report.errors) - 1
        return f"{self.label}: INVALID: {printable(str(first))}" + (f" (+{more} more)" if more else "")

    def to_dict(self) -> dict:
        tune = self.tune
        return {
            "index": tune.index, "x": tune.x, "title": tune.title, "line": tune.line, "encoding": tune.encoding,
            "valid": self.valid, "reasons": [] if self.valid else self.reasons(), "unusable": self.unusable,
            "paths": {name: str(path) for name, path in self.paths.items()}, "messages": self.messages,
            "report": self.report.to_dict() if self.report else None,
        }  # fmt: skip


def printable(text: str) -> str:
    """``text`` with every character that is not printable (escape sequences, line ends) written as an escape."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


def in_file_lines(tune: Tune, report: ValidationReport) -> ValidationReport:
    """``report`` with its line numbers turned into the file's, and the directives the reader removed as errors."""

    def moved(issues):
        return [dataclasses.replace(issue, line=tune.file_line(issue.line)) for issue in issues]

    errors = directive_issues(list(tune.removed)) + moved(report.errors)
    return dataclasses.replace(report, errors=errors, warnings=moved(report.warnings), is_valid=not errors)


def check_tune(
    tune: Tune,
    *,
    out_dir=None,
    formats=("abc", "svg", "mid", "wav"),
    stem: str = "tune",
    timeout: float = 20.0,
    budget: OutputBudget | None = None,
) -> TuneVerdict:
    """The verdict on one tune; with ``out_dir``, its outputs are written there as ``<stem>.<format>``."""
    try:
        if out_dir is None:
            return TuneVerdict(tune, in_file_lines(tune, validate_abc(tune.abc, timeout=timeout)))
        result = render_abc(tune.abc, out_dir, formats=formats, stem=stem, timeout=timeout, budget=budget)
    except AbcError as err:
        return TuneVerdict(tune, unusable=str(err))
    return TuneVerdict(tune, in_file_lines(tune, result.report), paths=result.paths, messages=result.messages)


def output_stems(tunes: list[Tune], stem: str) -> list[str]:
    """File stems for rendering ``tunes``: ``stem`` for one tune, ``<stem>-<X>`` for each of several; a tune without
    an X number, or whose number an earlier tune has, gets its position in the file instead (``<stem>-n7``)."""
    if len(tunes) == 1:
        return [stem]
    used: set[str] = set()
    stems = []
    for tune in tunes:
        # compared as file names: X:1/2 and X:1_2 both become "-1_2", and must not share files
        name = safe_stem(f"{stem}-{tune.x}" if tune.x else f"{stem}-n{tune.index + 1}")
        if name in used:
            name = safe_stem(f"{stem}-n{tune.index + 1}")
        used.add(name)
        stems.append(name)
    return stems


def summary(verdicts: list[TuneVerdict]) -> dict:
    """Counts of tunes, valid and invalid ones, and of invalid tunes per reason (a tune counts under each of its)."""
    reasons = Counter(reason for verdict in verdicts if not verdict.valid for reason in verdict.reasons())
    valid = sum(verdict.valid for verdict in verdicts)
    return {
        "tunes": len(verdicts),
        "valid": valid,
        "invalid": len(verdicts) - valid,
        "reasons": dict(reasons),
    }


def summary_table(verdicts: list[TuneVerdict]) -> str:
    """The summary as a small text table: the counts, then the invalid tunes per reason, most common first."""
    counts = summary(verdicts)
    header = f"{'tunes':>7} {'valid':>7} {'invalid':>7}"
    lines = [header, f"{counts['tunes']:>7} {counts['valid']:>7} {counts['invalid']:>7}"]
    if counts["reasons"]:
        lines.append("invalid tunes by reason:")
        width = max(len(reason) for reason in counts["reasons"])
        lines += [f"  {reason:<{width}} {n:>5}" for reason, n in Counter(counts["reasons"]).most_common()]
    return "\n".join(lines)
