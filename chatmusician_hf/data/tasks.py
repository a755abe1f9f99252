"""SFT tasks built from ABC tunes (music21's, or a folder's: :mod:`.tunebooks`), in MusicPile-sft's schema (``instruction``, ``input``, ``output``, ``src``,
``id``), modelled on ChatMusician's task families:

- ``text_to_abc``: "Using ABC notation, recreate the given text as a musical score." + the header as
  ``Meter 6/8``, ``Key G``, ``Note Length 1/8``, ``Rhythm jig``, ``Title ...`` lines -> the tune; in the train split,
  ``key_transpositions`` more rows ask for the same tune in other keys (the tune transposed, its ``Key`` line with it:
  a collection's tunes sit in a few keys, and a small model trained on them writes those whatever key is asked for);
- ``continuation``: the header and the first bars -> the whole tune;
- ``form``: a form such as ``AABB`` read from the tune's repeat structure, with its meter and key -> the tune;
- ``transpose``: a tune and a target key -> the tune transposed (through ``chatmusician_hf.music.transpose_abc``;
  the family is skipped, with a warning, where that is not importable);
- ``question``: the tune and a question about its key, meter or number of bars -> the answer.

Everything is deterministic for a given seed, and the split follows the corpus's own train/validation split of
tunes (``build_music21_corpus``), so no tune is in both. Tunes with several voices get only the header-based tasks.
Licence: the tunes keep their encoders' terms (see ``corpus.CORPUS_LICENSE_NOTE``).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterator

import numpy as np

from ..abc.keys import UnknownKey, parse_key
from ..abc.lexicon import BAR_LINE, FIELD_LINE, without_comment
from ..abc.meters import MeterError, parse_meter
from ..chat_format import FIELD_NAMES, FORM_NAME
from .augment import transposition_choices
from .corpus import CorpusTune, build_music21_corpus

logger = logging.getLogger(__name__)

FAMILIES = ("text_to_abc", "continuation", "form", "transpose", "question")
# Asking for music21's train tunes in other keys too did not teach the tiny model to follow the key asked for
# (benchmarks/README.md), so music21-tasks holds each tune in its own key.
MUSIC21_KEY_TRANSPOSITIONS = 0

TEXT_TO_ABC_INSTRUCTION = "Using ABC notation, recreate the given text as a musical score.\n"
CONTINUATION_INSTRUCTION = (
    "Continue this melody in ABC notation, keeping its meter and key, and write out the whole tune.\n"
)
FORM_INSTRUCTION = "Compose a tune in ABC notation in the musical form given below.\n"

_BARLINE = re.compile(BAR_LINE)
_SECTION_END = re.compile(r"^(?::+\|.*|::+|.*\|\]|\|\|.*)$")
_NOTE = re.compile(r"[A-Ga-gz]")
# What is not music when counting bars: chord symbols/annotations, decorations, comments, inline fields.
_NOT_MUSIC = re.compile(r'"[^"\n]*"|![^!\n]*!|%[^\n]*|\[[A-Za-z]:[^\]\n]*\]')


def _rng(seed: int, *parts: str) -> np.random.Generator:
    digest = hashlib.sha256("\0".join([str(seed), *parts]).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "big"))


def split_header(tune: str) -> tuple[list[tuple[str, str]], str]:
    """(header fields up to and including the first ``K:``, body text)."""
    lines = tune.split("\n")
    fields: list[tuple[str, str]] = []
    for i, line in enumerate(lines):
        match = FIELD_LINE.match(line)
        if match:
            fields.append((match.group(1), match.group(2).strip()))
            if match.group(1) == "K":
                return fields, "\n".join(lines[i + 1 :])
    return fields, ""


def describe_key(value: str) -> str | None:
    """``Ador`` -> ``A dorian``, ``F#m`` -> ``F sharp minor``; None for keys this cannot name."""
    try:
        return parse_key(value).describe()
    except UnknownKey:
        return None


def describe_meter(value: str) -> str | None:
    """``6/8``, ``4/4 (common time)``, ``2/2 (cut time)``; None for free meter and for meters not written plainly
    (the answer repeats the tune's own spelling)."""
    value = without_comment(value).strip()
    try:
        meter = parse_meter(value, strict=True)
    except MeterError:
        return None
    if meter.bar_length is None:
        return None
    return {"C": "4/4 (common time)", "C|": "2/2 (cut time)"}.get(value, value)


def _music_lines(body: str) -> str:
    """The body without lyrics, comments, chord symbols, decorations and inline fields."""
    lines = [line for line in body.split("\n") if not FIELD_LINE.match(line)]
    return _NOT_MUSIC.sub(" ", "\n".join(lines))


def bar_segments(body: str) -> list[tuple[str, str]]:
    """(music, closing bar line) pairs of the written bars; a final unclosed bar has an empty bar line."""
    music = _music_lines(body)
    segments, start = [], 0
    for match in _BARLINE.finditer(music):
        segments.append((music[start : match.start()], match.group()))
        start = match.end()
    segments.append((music[start:], ""))
    return [(text, bar) for text, bar in segments if _NOTE.search(text)]


def count_bars(body: str) -> int:
    """Bars written in the tune (repeats not expanded; a pickup counts as one)."""
    return len(bar_segments(body))


def musical_form(body: str) -> str | None:
    """``AABB``-style form from repeat signs and double bars, or None when the structure is not clear."""
    sections: list[tuple[int, bool]] = []  # (bars, repeated)
    bars, in_second_ending = 0, False
    for text, bar in bar_segments(body):
        # "|2 ..." right after a repeated section is its second ending, not a new section.
        if bars == 0 and sections and sections[-1][1] and re.match(r"\s*\[?2", text):
            in_second_ending = True
        if not in_second_ending:
            bars += 1
        if _SECTION_END.match(bar):
            if in_second_ending:
                in_second_ending = False
            elif bars:
                sections.append((bars, bar.startswith(":")))
                bars = 0
        elif bar.endswith("|:") and bars:  # a repeat starts: what came before is a section of its own
            sections.append((bars, False))
            bars = 0
    if bars:
        sections.append((bars, False))
    if not 2 <= len(sections) <= 4 or any(n < 2 for n, _ in sections):
        return None
    return "".join("ABCD"[i] * (2 if repeated else 1) for i, (_, repeated) in enumerate(sections))


def first_bars(body: str, n: int, total_bars: int) -> str | None:
    """The body's text up to the end of its ``n``-th written bar, or None if the tune has fewer than ``2n`` bars."""
    if total_bars < 2 * n:
        return None
    seen, start = 0, 0
    for match in _BARLINE.finditer(body):
        if _NOTE.search(_NOT_MUSIC.sub(" ", body[start : match.start()])):
            seen += 1
            if seen == n:
                return body[: match.end()]
        start = match.end()
    return None


def _header_lines(fields: list[tuple[str, str]], keep: str) -> str:
    return "\n".join(f"{FIELD_NAMES[code]} {value}" for code, value in fields if code in keep and value)


def _row(tune: CorpusTune, family: str, instruction: str, input: str, output: str, suffix: str = "") -> dict:
    return {
        "instruction": instruction,
        "input": input,
        "output": output,
        "src": f"{tune.src.split('/')[0]}-tasks/{family}",  # music21-tasks/form, my_tunes-tasks/form
        "id": f"{tune.id}/{family}{suffix}",
    }


def _described(fields: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The header fields a text-to-ABC prompt names."""
    return [(c, v) for c, v in fields if c in FIELD_NAMES and v]


def _describe(fields: list[tuple[str, str]], order) -> str:
    """The header as a text-to-ABC prompt's lines, in ``order``."""
    described = _described(fields)
    return "\n".join(f"{FIELD_NAMES[described[i][0]]} {described[i][1]}" for i in order)


def _in_other_keys(tune: CorpusTune, seed: int, order, k: int, transpose_abc) -> Iterator[dict]:
    """Text-to-ABC rows for ``k`` transpositions of the tune, its prompt lines in the same order."""
    for shift in transposition_choices(tune.text, k, seed):
        try:
            transposed = transpose_abc(tune.text, shift)
        except Exception as err:  # noqa: BLE001 - the ABC layer rejects some tunes; they keep their own key only
            logger.debug("no transposed text-to-ABC row for %s: %s", tune.id, err)
            continue
        fields, _ = split_header(transposed)
        if len(_described(fields)) == len(order):
            text = _describe(fields, order)
            yield _row(tune, "text_to_abc", TEXT_TO_ABC_INSTRUCTION, text, transposed, suffix=f"{shift:+d}")


def tasks_for_tune(
    tune: CorpusTune, seed: int, families=FAMILIES, transpose_abc=None, transpose_fraction=0.1, key_transpositions=0
) -> Iterator[dict]:
    """Every task row one tune gives (a family is left out where the tune does not support it)."""
    fields, body = split_header(tune.text)
    codes = {code: value for code, value in reversed(fields)}  # first occurrence wins
    rng = _rng(seed, tune.id)
    single_voice = "V:" not in tune.text
    if "text_to_abc" in families:
        order = rng.permutation(len(_described(fields)))
        text = _describe(fields, order)
        if text:
            yield _row(tune, "text_to_abc", TEXT_TO_ABC_INSTRUCTION, text, tune.text)
            if key_transpositions and transpose_abc is not None and "K" in codes:
                yield from _in_other_keys(tune, seed, order, key_transpositions, transpose_abc)
    total_bars = count_bars(body) if single_voice else 0
    if "continuation" in families and single_voice:
        start = first_bars(body, 4, total_bars)
        if start is not None:
            head = "\n".join(f"{c}:{v}" for c, v in fields if c in "XMLK")
            yield _row(tune, "continuation", CONTINUATION_INSTRUCTION, f"{head}\n{start.rstrip()}", tune.text)
    if "form" in families and single_voice:
        form = musical_form(body)
        if form is not None:
            lines = [f"{FORM_NAME} {form}", _header_lines(fields, "MKR")]
            yield _row(tune, "form", FORM_INSTRUCTION, "\n".join(line for line in lines if line), tune.text)
    if "transpose" in families and transpose_abc is not None and rng.random() < transpose_fraction:
        key = describe_key(codes.get("K", ""))
        shift = int(rng.choice([s for s in range(-5, 7) if s != 0]))
        if key is not None:
            try:
                transposed = transpose_abc(tune.text, shift)
            except Exception as err:  # noqa: BLE001 - the ABC layer rejects some tunes; they get no transpose task
                logger.debug("no transpose task for %s: %s", tune.id, err)
            else:
                new_fields, _ = split_header(transposed)
                new_key = describe_key(dict(reversed(new_fields)).get("K", ""))
                if new_key is not None:
                    direction = "up" if shift > 0 else "down"
                    steps = f"{abs(shift)} semitone{'s' if abs(shift) > 1 else ''}"
                    instruction = f"Transpose this tune {direction} {steps}, from {key} to {new_key}.\n"
                    yield _row(tune, "transpose", instruction, tune.text, transposed)
    if "question" in families:
        questions = []
        key = describe_key(codes.get("K", ""))
        if key is not None:
            questions.append(("key", "What key is this tune in?\n", f"The tune is in {key}."))
        meter = describe_meter(codes.get("M", ""))
        if meter is not None:
            questions.append(
                ("meter", "What is the time signature of this tune?\n", f"The time signature is {meter}.")
            )
        if single_voice and body.strip():
            bars = total_bars
            questions.append(
                (
                    "bars",
                    "How many bars are written in this tune (a pickup counts as one; repeats are not expanded)?\n",
                    f"{bars} bars.",
                )
            )
        if questions:
            name, question, answer = questions[int(rng.integers(len(questions)))]
            yield _row(tune, "question", question, tune.text, answer, suffix=f"-{name}")


def _load_transpose_abc(families, key_transpositions: int = 0):
    if "transpose" not in families and not key_transpositions:
        return None
    try:
        from ..music import transpose_abc
    except ImportError as err:
        logger.warning(
            "Skipping the transpose task family: chatmusician_hf.music.transpose_abc unavailable (%s)", err
        )
        return None
    return transpose_abc


def build_tasks(
    corpus,
    seed: int = 42,
    families: tuple[str, ...] = FAMILIES,
    max_tunes: int | None = None,
    transpose_fraction: float = 0.1,
    key_transpositions: int = 0,
):
    """The task set over ``corpus`` (a ``DatasetDict`` of tunes in MusicPile's schema), split as the corpus is.

    ``transpose_fraction`` of the tunes get a transpose task (each runs abc2abc, about 10 ms); each train tune gets
    ``key_transpositions`` more text-to-ABC rows in other keys (held-out rows stay as written); ``max_tunes`` limits
    each split to its first tunes, for quick runs.
    """
    from datasets import Dataset, DatasetDict
    from tqdm.auto import tqdm

    unknown = set(families) - set(FAMILIES)
    if unknown:
        raise ValueError(f"unknown task families {sorted(unknown)}; choose from {', '.join(FAMILIES)}")
    transpose_abc = _load_transpose_abc(families, key_transpositions)
    out = {}
    for split, rows in corpus.items():
        records = []
        tunes = rows if max_tunes is None else rows.select(range(min(max_tunes, len(rows))))
        keys = key_transpositions if split == "train" else 0
        for row in tqdm(tunes, desc=f"tasks ({split})", unit="tunes"):
            tune = CorpusTune(id=row["id"], text=row["text"], src=row["src"])
            records.extend(tasks_for_tune(tune, seed, families, transpose_abc, transpose_fraction, keys))
        columns = ("instruction", "input", "output", "src", "id")
        out[split] = Dataset.from_dict({c: [r[c] for r in records] for c in columns})
    return DatasetDict(out)


def build_music21_tasks(
    seed: int = 42,
    validation_fraction: float = 0.05,
    families: tuple[str, ...] = FAMILIES,
    max_tunes: int | None = None,
    transpose_fraction: float = 0.1,
    key_transpositions: int = MUSIC21_KEY_TRANSPOSITIONS,
):
    """:func:`build_tasks` over music21's tunes, with ``train`` and ``validation`` splits, split by tune."""
    corpus = build_music21_corpus(validation_fraction, seed)
    return build_tasks(corpus, seed, families, max_tunes, transpose_fraction, key_transpositions)


def cached_music21_tasks(cache_root, seed: int = 42, validation_fraction: float = 0.05):
    """:func:`build_music21_tasks` with all families, saved under ``cache_root`` on first use and loaded after.

    The folder name hashes the arguments, this module's and the corpus module's code, and the music21 version.
    """
    import sys
    from pathlib import Path

    import music21

    from . import augment, corpus
    from .config import cached_dataset, source_digest

    key = hashlib.sha256(
        "|".join(
            [
                str(seed),
                str(validation_fraction),
                music21.__version__,
                source_digest(sys.modules[__name__], corpus, augment),
            ]
        ).encode()
    ).hexdigest()[:16]
    folder = Path(cache_root) / "music21-tasks" / key
    return cached_dataset(folder, lambda: build_music21_tasks(seed=seed, validation_fraction=validation_fraction))
