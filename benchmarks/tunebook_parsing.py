"""Benchmark of the tunebook reader: tunes per second over every ABC file music21 ships, against music21's own reader.

    python benchmarks/tunebook_parsing.py              # all 1,146 files, each reader once
    python benchmarks/tunebook_parsing.py --limit 100  # a quicker look: the first 100 files

Both readers take the same files, one process each, in the same run:
- ours: ``read_tunebook`` -- bytes to tunes, the file header written into each tune, continuations joined,
  comments apart, the directive policy applied, each tune with its number, title and line map;
- music21 (the baseline): ``abcFormat.ABCFile.read`` then ``ABCHandler.splitByReferenceNumber`` -- music21's reading
  of a multi-tune file into one token handler per ``X:`` number, the step before it builds scores (building them,
  ``converter.parse``, is far slower still and not measured).

The tunes each reader finds are counted per file, and files where the counts differ are listed: music21 keys tunes
by X number, so a file that repeats a number gives it fewer.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from chatmusician_hf.abc.tunebook import read_tunebook


def music21_tunes(path: Path) -> int:
    from music21 import abcFormat

    handler = abcFormat.ABCFile()
    handler.open(str(path))
    try:
        return len(handler.read().splitByReferenceNumber())
    finally:
        handler.close()


def timed(read, files: list[Path]) -> tuple[float, list[int]]:
    start = time.perf_counter()
    counts = [read(path) for path in files]
    return time.perf_counter() - start, counts


def main() -> None:
    from music21 import corpus

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=None, help="Read only the first N files.")
    args = parser.parse_args()
    files = sorted(Path(p) for p in corpus.getPaths(fileExtensions=["abc"]))[: args.limit]
    size = sum(path.stat().st_size for path in files)
    print(f"{len(files)} files, {size / 1e6:.1f} MB")
    ours, our_counts = timed(lambda path: len(read_tunebook(path).tunes), files)
    theirs, their_counts = timed(music21_tunes, files)
    found = sum(our_counts)
    print(f"  read_tunebook     : {found:6,} tunes in {ours:7.2f} s = {found / ours:9,.0f} tunes/s")
    print(
        f"  music21 (baseline): {sum(their_counts):6,} tunes in {theirs:7.2f} s = {sum(their_counts) / theirs:9,.0f} "
        f"tunes/s"
    )
    print(f"  speed-up on the same files: {theirs / ours:.1f}x")
    differ = [(path, a, b) for path, a, b in zip(files, our_counts, their_counts, strict=True) if a != b]
    print(f"  files where the tune counts differ: {len(differ)}")
    for path, a, b in differ[:10]:
        repeated = len(read_tunebook(path).tunes) - len({t.x for t in read_tunebook(path).tunes})
        print(f"    {path.relative_to(files[0].parents[1])}: ours {a}, music21 {b} ({repeated} repeated X numbers)")


if __name__ == "__main__":
    main()
