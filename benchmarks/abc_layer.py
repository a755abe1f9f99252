"""Benchmark of the ABC layer: corpus validation throughput and render latency for a 32-bar tune.

    python benchmarks/abc_layer.py                 # whole music21 corpus, 2 workers; render 5 times
    python benchmarks/abc_layer.py --limit 2000    # a quicker look
    python benchmarks/abc_layer.py --round-trip    # also transpose every corpus tune +n and back

Each figure is printed beside a baseline measured in the same run:
- validation (directive policy + extract + scan + abc2midi under its limits + classification, in processes) against
  abc2midi alone, started directly with no limits, on the same tunes with the same parallelism -- the floor any
  abc2midi-based validator pays;
- render (ABC -> SVG + MIDI + WAV through ``render_abc``, with the SVG sanitised and the budgets checked) against the
  same three programs started directly, fluidsynth with its default settings (44.1 kHz, reverb and chorus, whole
  soundfont loaded), run back to back.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from chatmusician_hf.data.corpus import iter_music21_tunes
from chatmusician_hf.music import AbcError, render_abc, transpose_abc
from chatmusician_hf.music.batch import check_texts
from chatmusician_hf.music.runner import soundfont_path, temporary_workdir

REEL = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "abc" / "reel_32_bars.abc"


def bare(program: str, *args: str, cwd: Path, timeout: float) -> None:
    """The program alone: no limits, no environment of its own, no output cap."""
    subprocess.run([program, *args], cwd=cwd, capture_output=True, timeout=timeout)


def bare_abc2midi(text: str) -> None:
    with temporary_workdir() as work:
        (work / "t.abc").write_text(text)
        bare("abc2midi", "t.abc", "-o", "t.mid", cwd=work, timeout=10)


def validation_throughput(texts: list[str], workers: int) -> None:
    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(bare_abc2midi, texts))
    baseline = time.perf_counter() - start
    start = time.perf_counter()
    checks = check_texts(texts, workers=workers, progress=True)
    ours = time.perf_counter() - start
    valid = sum(c.report is not None and c.report.is_valid for c in checks)
    print(f"validation: {len(texts)} tunes, {workers} workers")
    print(f"  abc2midi alone (baseline): {len(texts) / baseline:8.1f} tunes/s")
    print(
        f"  extract + validate       : {len(texts) / ours:8.1f} tunes/s  ({baseline / ours:.2f}x the baseline's rate)"
    )
    print(f"  valid: {valid}/{len(texts)}")


def baseline_render(abc: str) -> None:
    with temporary_workdir() as work:
        (work / "t.abc").write_text(abc)
        bare("abc2midi", "t.abc", "-o", "t.mid", cwd=work, timeout=30)
        bare("abcm2ps", "-g", "-O", "p", "t.abc", cwd=work, timeout=30)
        bare(
            "fluidsynth",
            "-ni",
            "-q",
            "-r",
            "44100",
            "-F",
            "t.wav",
            str(soundfont_path()),
            "t.mid",
            cwd=work,
            timeout=60,
        )


def render_latency(repeats: int) -> None:
    abc = REEL.read_text()

    def timed(action) -> tuple[float, float]:
        """Median wall time, and median CPU time of this process and its programs (what an idle machine's wall
        time approaches; the shared benchmark machine's wall time also includes waiting for a core)."""
        times, cpus = [], []
        for _ in range(repeats):
            before = _cpu_seconds()
            start = time.perf_counter()
            action()
            times.append(time.perf_counter() - start)
            cpus.append(_cpu_seconds() - before)
        return statistics.median(times), statistics.median(cpus)

    with tempfile.TemporaryDirectory() as out:
        render_abc(abc, out)  # warm the page cache for the soundfont
        baseline = timed(lambda: baseline_render(abc))
        ours = timed(lambda: render_abc(abc, out, formats=("svg", "mid", "wav")))
        ours_44k = timed(lambda: render_abc(abc, out, formats=("svg", "mid", "wav"), sample_rate=44100))
    print(f"render of a 32-bar tune (ABC -> SVG + MIDI + WAV), median of {repeats}, wall and CPU seconds:")
    rows = [
        ("tools with fluidsynth defaults, 44.1 kHz (baseline)", baseline),
        ("render_abc, 22.05 kHz (default)", ours),
        ("render_abc, 44.1 kHz", ours_44k),
    ]
    for label, (wall, cpu) in rows:
        print(
            f"  {label:<52}: {wall:.3f} s wall, {cpu:.3f} s CPU  "
            f"({baseline[0] / wall:.2f}x wall, {baseline[1] / cpu:.2f}x CPU vs baseline)"
        )
    print(f"  load average while measuring: {os.getloadavg()[0]:.1f}")


def _cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def round_trip(texts: list[str], workers: int) -> None:
    def one(item):
        index, abc = item
        n = index % 11 + 1
        try:
            return transpose_abc(transpose_abc(abc, n), -n) is not None
        except AbcError:
            return False

    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        accepted = sum(pool.map(one, enumerate(texts)))
    elapsed = time.perf_counter() - start
    print(
        f"transposition round trip (+n, -n; each verified note by note): {accepted}/{len(texts)} accepted, "
        f"{2 * len(texts) / elapsed:.1f} transpositions/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--limit", type=int, default=None, help="Use only the first N corpus tunes (default: all)."
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="Parallel workers (the CI machine has 2 cores)."
    )
    parser.add_argument("--repeats", type=int, default=5, help="Render repetitions; the median is reported.")
    parser.add_argument("--round-trip", action="store_true", help="Also transpose every tune +n and back.")
    args = parser.parse_args()
    texts = [tune.text for tune in iter_music21_tunes()][: args.limit]
    render_latency(args.repeats)
    validation_throughput(texts, args.workers)
    if args.round_trip:
        round_trip(texts, args.workers)


if __name__ == "__main__":
    main()
