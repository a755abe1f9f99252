"""Fuzzing extract, validate, render and transpose: only AbcError may escape, nothing hangs, no temp file is left.

Two sources of hostile input: hypothesis-generated ABC-like text, and mutated corpus tunes (characters inserted,
deleted and swapped, lines dropped and duplicated, tunes truncated) -- about 3,000 cases in all.
"""

from __future__ import annotations

import os
import random
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chatmusician_hf.music import AbcError, extract_tunes, render_abc, transpose_abc, validate_abc
from chatmusician_hf.music.batch import check_texts
from chatmusician_hf.music.runner import TEMP_PREFIX, temporary_workdir

ABC_CHARS = "ABCDEFGabcdefgzxZ,'^_=/|:[]()<>{}\"!+-~.0123456789 \nXTMLKQVw%&$#@*;?\\`\t"
FIELD_LINES = [
    "X:1",
    "T:t",
    "M:4/4",
    "M:6/8",
    "M:none",
    "M:C|",
    "L:1/8",
    "L:1/16",
    "K:G",
    "K:Am",
    "K:none",
    "K:Hp",
    "V:1",
    "V:2 clef=bass",
    "Q:1/4=120",
    "I:linebreak $",
    "%%MIDI program 1",
    "K:",
    "M:",
    "L:0/0",
]
TIMEOUT = 2.0
HANG_LIMIT = 30.0  # a call past this did not honour its subprocess timeouts


@pytest.fixture(scope="module", autouse=True)
def private_tempdir(tmp_path_factory):
    """Point the temp dir at an empty folder of our own (other processes on the machine use /tmp too), so that
    "no temp files left" can be checked exactly: the folder must be empty again after every test."""
    folder = tmp_path_factory.mktemp("fuzz-tmp")
    saved_env, saved_tempdir = os.environ.get("TMPDIR"), tempfile.tempdir
    os.environ["TMPDIR"] = str(folder)  # for pool workers and the external programs
    tempfile.tempdir = str(folder)
    yield folder
    tempfile.tempdir = saved_tempdir
    if saved_env is None:
        del os.environ["TMPDIR"]
    else:
        os.environ["TMPDIR"] = saved_env


@pytest.fixture(autouse=True)
def no_temp_files_left(private_tempdir):
    yield
    assert sorted(p.name for p in private_tempdir.iterdir()) == []


def test_work_dirs_are_made_in_the_private_tempdir(private_tempdir):
    with temporary_workdir() as work:
        assert work.parent == private_tempdir and work.name.startswith(TEMP_PREFIX)


def exercise(text: str, out_dir: Path | None = None) -> None:
    start = time.monotonic()
    for tune in extract_tunes(text):
        assert text[tune.start : tune.end] == tune.abc
    try:
        report = validate_abc(text, timeout=TIMEOUT)
        assert report.is_valid == (not report.errors)
        if out_dir is not None:
            render_abc(text, out_dir, formats=("svg", "mid"), timeout=TIMEOUT)
    except AbcError:
        pass
    assert time.monotonic() - start < HANG_LIMIT


abc_like = st.builds(
    lambda header, body: "\n".join(header) + "\n" + body,
    st.lists(st.sampled_from(FIELD_LINES), max_size=6),
    st.text(alphabet=ABC_CHARS, max_size=200),
)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(abc_like, st.text(max_size=200)))
def test_hypothesis_text_through_extract_and_validate(text):
    exercise(text)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(abc_like)
def test_hypothesis_text_through_render(tmp_path_factory, text):
    exercise(text, tmp_path_factory.mktemp("fuzz-render"))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(abc_like, st.integers(-12, 12))
def test_hypothesis_text_through_transpose(text, semitones):
    try:
        transpose_abc(text, semitones, timeout=TIMEOUT)
    except AbcError:
        pass


def mutate(tune: str, rng: random.Random) -> str:
    chars = list(tune)
    for _ in range(rng.randint(1, 6)):
        kind = rng.randrange(6)
        position = rng.randrange(len(chars) + 1)
        if kind == 0:
            chars.insert(position, rng.choice(ABC_CHARS))
        elif kind == 1 and chars:
            del chars[min(position, len(chars) - 1)]
        elif kind == 2 and chars:
            chars[min(position, len(chars) - 1)] = rng.choice(ABC_CHARS)
        elif kind == 3:
            chars = chars[:position]  # truncated generation
        else:
            lines = "".join(chars).split("\n")
            index = rng.randrange(len(lines))
            if kind == 4:
                lines.pop(index)
            else:
                lines.insert(index, lines[rng.randrange(len(lines))])
            chars = list("\n".join(lines))
    return "".join(chars)


def test_mutated_corpus_tunes():
    from chatmusician_hf.data.corpus import iter_music21_tunes

    rng = random.Random(1234)
    tunes = [tune.text for tune in iter_music21_tunes()]
    mutants = [mutate(rng.choice(tunes), rng) for _ in range(2000)]
    checks = check_texts(mutants, workers=2, timeout=TIMEOUT)  # worker exceptions would propagate here
    assert len(checks) == len(mutants)
    for check in checks:
        if check.report is not None:
            assert check.report.is_valid == (not check.report.errors)
    # mutations must actually break tunes, or this test exercises nothing
    assert sum(check.report is not None and not check.report.is_valid for check in checks) > 500
