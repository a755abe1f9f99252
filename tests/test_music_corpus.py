"""Every music21 corpus tune goes through extract -> validate without an exception, and enough of them are valid.

Figures measured with this layer on the 12,945 deduplicated music21 tunes (see the report printed with ``-s``):
valid 10,9xx; parse without a musical abc2midi error 12,1xx. The floors below sit just under them, so a regression
in extraction, scanning or message classification fails this test.
"""

from __future__ import annotations

from collections import Counter

import pytest

from chatmusician_hf.music.batch import check_texts

VALID_FLOOR = 10_800
PARSES_FLOOR = 12_050
BARS_OK_FLOOR = 11_550


@pytest.fixture(scope="module")
def corpus_checks():
    from chatmusician_hf.data.corpus import iter_music21_tunes

    texts = [tune.text for tune in iter_music21_tunes()]
    return texts, check_texts(texts, workers=2)


def test_whole_corpus_extracts_and_validates(corpus_checks):
    texts, checks = corpus_checks
    assert len(checks) == len(texts) > 12_000
    one_tune = sum(check.n_tunes == 1 for check in checks)
    reports = [check.report for check in checks if check.report is not None]
    valid = sum(r.is_valid for r in reports)
    parses = sum(r.parses for r in reports)
    bars_ok = sum(r.bars_ok for r in reports)
    error_codes = Counter(code for r in reports for code in {issue.code for issue in r.errors})
    print(
        f"\ncorpus: {len(texts)} tunes, {one_tune} extracted as exactly one tune, {valid} valid, "
        f"{parses} parse, {bars_ok} with every inner bar right; tunes per error class: {dict(error_codes)}"
    )
    assert one_tune >= 0.998 * len(texts)
    assert len(reports) == len(texts)
    assert valid >= VALID_FLOOR
    assert parses >= PARSES_FLOOR
    assert bars_ok >= BARS_OK_FLOOR


def test_about_a_sixth_of_corpus_tunes_draw_an_abc2midi_error_line_most_of_them_non_musical(corpus_checks):
    _, checks = corpus_checks
    reports = [check.report for check in checks]
    any_error_line = sum(
        any(i.code in ("abc2midi-error", "abc2midi-nonmusical") for i in r.errors + r.warnings)
        for r in reports
    )
    musical = sum(not r.parses for r in reports)
    print(f"\nabc2midi error lines: {any_error_line} tunes; musical: {musical}")
    assert 0.10 * len(reports) <= any_error_line <= 0.30 * len(reports)
    assert musical < any_error_line
