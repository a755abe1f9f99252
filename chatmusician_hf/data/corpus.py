"""music21's bundled ABC tunes as a dataset in MusicPile's schema (``id``, ``text``, ``src``).

This is the embedded default's pretraining data: it ships inside the ``music21`` wheel, so a fresh clone trains
with no network. Licence: music21 itself is BSD-licensed, but the corpus files keep their encoders' terms, and some
collections (for example the Essen folksong encodings and the transcriptions by Jack Campin) grant use for research
and non-commercial purposes only. Models trained on this corpus inherit those terms; the model cards say so.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

CORPUS_LICENSE_NOTE = (
    "Trained on ABC tunes bundled with music21 (https://github.com/cuthbertLab/music21). music21 is BSD-licensed; "
    "the corpus encodings keep their encoders' terms, and some (e.g. the Essen folksong collection, Jack Campin's "
    "transcriptions) permit research and non-commercial use only."
)

_X_LINE = re.compile(r"^X:\s*\S*", re.MULTILINE)
# Header fields that record where a transcription came from rather than what the music is: transcriber (Z), notes
# (N), source (S), book (B), discography (D), file (F), history (H), group (G), and tool instructions (I). Whole
# collections share them (1,180 tunes carry "Z:Jack Campin * www.campin.me.uk * 2009"), and a small model trained on
# them writes them into its answers.
_BOOKKEEPING_LINE = re.compile(r"^(?:[ZNSBDFHGI]:(?![|:])|%)")


@dataclass(frozen=True)
class CorpusTune:
    id: str
    text: str
    src: str


def _corpus_files() -> list[Path]:
    from music21 import corpus

    return sorted(Path(p) for p in corpus.getPaths(fileExtensions=["abc"]))


def _read_text(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def split_tunes(text: str) -> Iterator[str]:
    """Yield the tunes of an ABC file: each starts at an ``X:`` line and ends at the next blank line (ABC 2.1 §2.2).

    File headers, free text between tunes and trailing comment lines are dropped.
    """
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    i = 0
    while i < len(lines):
        if not lines[i].startswith("X:"):
            i += 1
            continue
        tune = [lines[i]]
        i += 1
        while i < len(lines) and lines[i].strip() and not lines[i].startswith("X:"):
            tune.append(lines[i])
            i += 1
        while tune and tune[-1].lstrip().startswith("%"):
            tune.pop()
        if len(tune) > 1:
            yield "\n".join(line.rstrip() for line in tune)


def normalize_tune(tune: str) -> str:
    """Renumber the tune ``X:1`` so that copies of one tune in several files compare equal and the model sees
    one consistent reference number."""
    return _X_LINE.sub("X:1", tune, count=1)


def without_bookkeeping(tune: str) -> str:
    """The tune without its bookkeeping field lines and comment lines (see ``_BOOKKEEPING_LINE``)."""
    return "\n".join(line for line in tune.split("\n") if not _BOOKKEEPING_LINE.match(line))


def iter_music21_tunes() -> Iterator[CorpusTune]:
    """Every ABC tune music21 ships, normalised and with exact duplicates removed, in a stable order."""
    files = _corpus_files()
    root = files[0].parents[1] if files else Path()
    seen: set[str] = set()
    for path in files:
        rel = path.relative_to(root).as_posix()
        collection = rel.split("/", 1)[0]
        for ordinal, tune in enumerate(split_tunes(_read_text(path))):
            text = normalize_tune(tune)
            key = hashlib.sha1(text.encode()).hexdigest()
            if key in seen:
                continue
            seen.add(key)
            yield CorpusTune(id=f"music21/{rel}#{ordinal}", text=text, src=f"music21/{collection}")


def held_out_rank(text: str, seed: int) -> float:
    """A tune's place in [0, 1) for the held-out split: it depends only on its text and the seed, never on order."""
    digest = hashlib.sha256(f"{seed}\0{text}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def in_validation(text: str, validation_fraction: float, seed: int) -> bool:
    """Hash-based split: the tunes whose rank falls under the fraction are held out."""
    return held_out_rank(text, seed) < validation_fraction


def build_music21_corpus(validation_fraction: float = 0.05, seed: int = 42, keep_bookkeeping: bool = False):
    """The music21 tunes as a ``DatasetDict`` with ``train`` and ``validation`` splits in MusicPile's schema.

    The text is each tune without bookkeeping lines; tunes that are then equal are kept once (the first), so no tune's
    music is on both sides of the split. The split is drawn from the tune as music21 ships it, so it does not move
    when the bookkeeping rule changes. ``keep_bookkeeping`` keeps the lines in the text (same tunes, same split).
    """
    from datasets import Dataset, DatasetDict

    rows: dict[str, dict[str, list[str]]] = {
        "train": {"id": [], "text": [], "src": []},
        "validation": {"id": [], "text": [], "src": []},
    }
    seen: set[str] = set()
    for tune in iter_music21_tunes():
        music = without_bookkeeping(tune.text)
        if music in seen:
            continue
        seen.add(music)
        split = "validation" if in_validation(tune.text, validation_fraction, seed) else "train"
        for column, value in (("id", tune.id), ("text", tune.text if keep_bookkeeping else music), ("src", tune.src)):
            rows[split][column].append(value)
    return DatasetDict({name: Dataset.from_dict(columns) for name, columns in rows.items()})
