"""Transposition, checked through the MIDI abc2midi writes: every note moves by exactly n semitones, keeps its onset
and duration; and a +n/-n round trip restores every pitch of the corpus tunes it accepts."""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from chatmusician_hf.music import AbcError, render_abc, transpose_abc
from chatmusician_hf.music.midi import read_midi
from chatmusician_hf.music.scan import scan_tune

FIXTURES = Path(__file__).parent / "fixtures" / "abc"
MELODY_CHANNEL = 0  # abc2midi: the tune's own notes; chord symbols are played on other channels


def midi_notes(abc: str, tmp_path: Path, stem: str):
    result = render_abc(abc, tmp_path, formats=("mid",), stem=stem)
    return read_midi(result.paths["mid"]).notes


@pytest.mark.parametrize("name", ["transpose_sample.abc", "transpose_minor.abc", "multivoice.abc"])
@pytest.mark.parametrize("semitones", [-7, -1, 2, 5])
def test_midi_pitches_shift_by_exactly_n_and_durations_stay(name, semitones, tmp_path):
    abc = (FIXTURES / name).read_text()
    before = midi_notes(abc, tmp_path, "before")
    after = midi_notes(transpose_abc(abc, semitones), tmp_path, "after")
    assert len(before) == len(after) > 0
    for old, new in zip(before, after, strict=True):
        assert (new.start, new.duration, new.channel) == (old.start, old.duration, old.channel)
        if new.channel == MELODY_CHANNEL or name == "multivoice.abc":  # written notes: exact shift
            assert new.pitch - old.pitch == semitones
        else:  # chord-symbol accompaniment is voiced in a fixed register: same shift modulo the octave
            assert (new.pitch - old.pitch) % 12 == semitones % 12


def test_key_notes_accidentals_and_chord_symbols_are_respelled():
    abc = (FIXTURES / "transpose_sample.abc").read_text()
    up = transpose_abc(abc, 3)
    assert "K:Fmix" in up
    assert up.splitlines()[-1] == '"F"c2d _e2f|"Cm"=e_ed "Bb/D"[Bdf]2g|"Gm"_g3 z2 =A|"F"F6|]'


def test_zero_is_identity_and_bad_arguments_raise_abc_error():
    abc = (FIXTURES / "transpose_minor.abc").read_text()
    assert transpose_abc(abc, 0) == abc
    for semitones in (1.5, "2", 100, True):
        with pytest.raises(AbcError):
            transpose_abc(abc, semitones)
    with pytest.raises(AbcError, match="no K: line"):
        transpose_abc("X:1\nABC|", 2)


@pytest.fixture(scope="module")
def corpus_tunes() -> list[str]:
    from chatmusician_hf.data.corpus import iter_music21_tunes

    return [tune.text for tune in iter_music21_tunes()]


def _round_trip(args):
    index, abc = args
    semitones = index % 11 + 1
    try:
        up = transpose_abc(abc, semitones)
        back = transpose_abc(up, -semitones)
    except AbcError:
        return "rejected"
    if back == abc:
        return "identical"
    original = [n.pitch for n in scan_tune(abc).notes]
    return "pitches" if [n.pitch for n in scan_tune(back).notes] == original else f"FAILED {index}"


def test_round_trip_restores_pitches_of_corpus_tunes(corpus_tunes):
    # every 8th tune keeps this under a minute on 2 cores; benchmarks/abc_layer.py --round-trip runs all of them
    sample = list(itertools.islice(enumerate(corpus_tunes), 0, None, 8))
    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(_round_trip, sample))
    failures = [o for o in outcomes if o.startswith("FAILED")]
    accepted = len(outcomes) - outcomes.count("rejected")
    print(
        f"round trip: {accepted}/{len(outcomes)} accepted, {outcomes.count('identical')} textually identical"
    )
    assert not failures
    assert accepted >= 0.99 * len(outcomes)
