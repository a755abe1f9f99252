"""Measure the tracker against real tunes: every music21 tune abc2midi accepts should be accepted.

``python -m chatmusician_hf.constrain.corpus_check [--limit N] [--stride S]`` runs ``abc2midi -c`` on the corpus
tunes (through the ABC layer's runner, with its split of abc2midi's errors into musical and non-musical ones),
keeps the tunes with no musical error and no bar warning, feeds each to the tracker in strict mode (what the
logits processor uses) and lenient mode (abc2midi's own tolerance), and prints how many are accepted, with the
character where each rejected tune was refused.
"""

from __future__ import annotations

import argparse
from collections import Counter
from dataclasses import dataclass, field

from .tracker import AbcTracker

_BAR_WARNING = "time units while the time signature"


def abc2midi_accepts(text: str, timeout: float = 10.0) -> bool:
    """True when ``abc2midi -c`` reports no musical error and no bar whose length differs from the meter."""
    from ..music.runner import run_tool, temporary_workdir
    from ..music.validate import classify_abc2midi, tool_text

    tune, offset = tool_text(text)
    with temporary_workdir() as workdir:
        (workdir / "tune.abc").write_text(tune + "\n", encoding="utf-8")
        result = run_tool("abc2midi", ["tune.abc", "-c", "-o", "tune.mid"], cwd=workdir, timeout=timeout)
    errors, _ = classify_abc2midi(result.output, offset)
    return not result.timed_out and not errors and _BAR_WARNING not in result.output


def first_rejection(text: str, strict: bool) -> int | None:
    """Index of the first character of ``text`` (a whole tune) the tracker refuses; ``len(text)`` when the tune
    may not end where it does; None when the tracker accepts the tune in full."""
    tracker = AbcTracker(strict=strict)
    for index, char in enumerate(text):
        if not tracker.feed(char):
            return index
    if not tracker.feed("\n") or not tracker.can_end():
        return len(text)
    return None


@dataclass
class CorpusReport:
    tunes: int = 0
    valid: int = 0  # tunes abc2midi accepts: no musical error, no bar warning
    accepted_strict: int = 0
    accepted_lenient: int = 0
    rejected: list[tuple[str, str, str]] = field(default_factory=list)  # (tune id, mode, context at refusal)

    def summary(self) -> str:
        lines = [
            f"{self.tunes} tunes, {self.valid} accepted by abc2midi -c (no musical error, no bar warning)",
            f"strict tracker accepts {self.accepted_strict}/{self.valid} "
            f"({100 * self.accepted_strict / max(1, self.valid):.2f}%)",
            f"lenient tracker accepts {self.accepted_lenient}/{self.valid} "
            f"({100 * self.accepted_lenient / max(1, self.valid):.2f}%)",
        ]
        kinds = Counter(context.split("@@")[1][:1] for _, _, context in self.rejected)
        lines.append(f"first refused characters: {dict(kinds.most_common(12))}")
        return "\n".join(lines)


def measure_corpus(tunes, workers: int | None = None, progress: bool = True) -> CorpusReport:
    """``tunes``: :class:`~chatmusician_hf.data.corpus.CorpusTune` objects (or anything with ``id`` and ``text``)."""
    import os
    from concurrent.futures import ProcessPoolExecutor

    from tqdm.auto import tqdm

    tunes = list(tunes)
    texts = [tune.text for tune in tunes]
    with ProcessPoolExecutor(workers or os.cpu_count() or 1) as pool:
        verdicts = list(
            tqdm(
                pool.map(abc2midi_accepts, texts, chunksize=32),
                total=len(texts),
                disable=not progress,
                desc="abc2midi",
            )
        )
    report = CorpusReport(tunes=len(tunes))
    for tune, accepted in zip(tunes, verdicts, strict=True):
        if not accepted:
            continue
        report.valid += 1
        for strict in (True, False):
            position = first_rejection(tune.text, strict)
            if position is None:
                if strict:
                    report.accepted_strict += 1
                else:
                    report.accepted_lenient += 1
            else:
                context = (
                    tune.text[max(0, position - 30) : position] + "@@" + tune.text[position : position + 10]
                )
                report.rejected.append((tune.id, "strict" if strict else "lenient", context))
    return report


def main(argv: list[str] | None = None) -> CorpusReport:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--limit", type=int, default=None, help="Check only the first N tunes (default: all)."
    )
    parser.add_argument("--stride", type=int, default=1, help="Check every S-th tune (default: every tune).")
    parser.add_argument("--show", type=int, default=30, help="Rejected tunes to print with their context.")
    args = parser.parse_args(argv)
    from ..data.corpus import iter_music21_tunes

    tunes = list(iter_music21_tunes())[:: args.stride][: args.limit]
    report = measure_corpus(tunes)
    print(report.summary())
    for tune_id, mode, context in report.rejected[: args.show]:
        print(f"  {mode:8s} {tune_id}: {context!r}")
    return report


if __name__ == "__main__":
    main()
