"""Strict mode writes whole tunes in the header asked for: each rule is checked on the tracker, and the lengths it
writes against abcm2ps itself (a real subprocess), which draws fewer note lengths than abc2midi plays."""

from __future__ import annotations

import subprocess

import pytest

from chatmusician_hf.constrain.request import read_abc_header, read_request
from chatmusician_hf.constrain.tracker import AbcTracker
from chatmusician_hf.constrain.tune_request import TuneRequest

HEADER = "X:1\nM:4/4\nL:1/8\nK:C\n"
BAR = "CDEF GABc|"


def accepts(text: str, request: TuneRequest | None = None) -> bool:
    return AbcTracker(request=request).feed(text)


def may_end(text: str, request: TuneRequest | None = None) -> bool:
    tracker = AbcTracker(request=request)
    return tracker.feed(text) and tracker.can_end()


def test_the_requested_header_is_forced():
    request = read_abc_header("M:6/8 K:D L:1/8")
    assert not accepts("X:1\nK:", request), "K: before the required M: and L:"
    assert not accepts("X:1\nM:3/4", request) and not accepts("X:1\nM:6/8\nL:1/4", request)
    assert accepts("X:1\nT:Any title\nM:6/8\nL:1/8\nK:D\n", request)
    assert not accepts("X:1\nM:6/8\nL:1/8\nK:D\nDEF GAB|[K:G]", request), "the key asked for holds in the body"
    completion = AbcTracker(request=request).copy()
    completion.feed("X:1\n")
    assert completion.completion().startswith("M:6/8\nL:1/8\nK:D\n")
    # the request read from a prompt holds the same way
    jig = read_request("Human: Write a jig in D, 16 bars </s> Assistant: ")
    assert not accepts("X:1\nR:jig\nM:3/4", jig) and accepts("X:1\nR:jig\nM:6/8\nL:1/8\nK:D\n", jig)


def test_a_tune_ends_only_after_its_minimum_of_bars():
    four = TuneRequest(min_bars=4)
    assert not may_end(HEADER + BAR * 3, four) and may_end(HEADER + BAR * 4, four)
    assert not may_end(HEADER + BAR * 3 + "|]", four), "a final bar line does not make a short tune whole"
    tracker = AbcTracker(request=four)
    tracker.feed(HEADER + BAR + " ")
    assert tracker.bars_missing == 3
    end = tracker.copy()
    assert end.feed(tracker.completion()) and end.can_end()


def test_no_empty_bars_and_no_runs_of_bar_lines():
    assert not accepts(HEADER + BAR + " |") and not accepts(HEADER + BAR + "\n|")
    assert not accepts(HEADER + BAR + "|]|") and not accepts(HEADER + BAR + " :|")
    assert accepts(HEADER + BAR + BAR) and accepts(HEADER + "|:" + BAR + BAR[:-1] + ":|")


def test_a_bar_line_only_when_its_bar_is_full():
    assert not accepts(HEADER + BAR + "CDE|"), "a short bar in mid-tune"
    assert accepts(HEADER + "GA|" + BAR), "a pickup first bar"
    assert may_end(HEADER + "GA|" + BAR * 7 + "CDEF GA|]"), "a last bar completing the pickup"
    assert not may_end(HEADER + BAR * 7 + "CDEF GA|]")


# Lengths abc2midi plays and abcm2ps refuses ("Note too short", "Invalid note duration", "Note too much dotted",
# "Bad length") against close ones it draws; abcm2ps draws a broken rhythm's notes at their changed lengths.
UNDRAWN = ["A/32 z31/32 A6|", "A5 B3|", "A9 z7|", "A3>B A4|", "A2>B A5|", "[A3C3]>B A4|", "A/16 z/32 z/32 z7 z7/8|"]
DRAWN = ["A/16 z15/16 A6|", "A7 B|", "A>>>B A6|", "A/>>>B/ z A6|", "(3A/A/A/ z A6|", "A15/2 z/|"]


def abcm2ps_errors(body: str, folder) -> list[str]:
    (folder / "tune.abc").write_text("X:1\nT:t\nM:4/4\nL:1/8\nK:C\n" + body + "\n", encoding="utf-8")
    result = subprocess.run(
        ["abcm2ps", "-q", "tune.abc", "-O", "tune.ps"], cwd=folder, capture_output=True, text=True, timeout=30
    )
    return [line for line in (result.stdout + result.stderr).splitlines() if "error" in line.lower()]


@pytest.mark.parametrize("body", UNDRAWN + DRAWN)
def test_strict_lengths_are_the_ones_abcm2ps_draws(body, tmp_path):
    drawn = not abcm2ps_errors(body, tmp_path)
    assert drawn == (body in DRAWN), "the case list no longer matches abcm2ps"
    assert accepts(HEADER + body) == drawn


def test_a_first_voice_field_after_the_music_has_begun_is_refused():
    """abc2midi: "First V: field occurs past body", and the bar before it runs on into the voice."""
    for body in ("c8|[V:1]c8|", "c8|\nV:1\nc8|"):
        assert not accepts(HEADER + body) and AbcTracker(strict=False).feed(HEADER + body)
    assert accepts(HEADER + "V:1\nc8|\nV:2\nc8|\nV:1\nc8|")


# abc2midi takes a grace group's time from its host note, a quarter of the group's length: a host no longer than
# that draws "Grace sequence exceeds host note" (and the group is dropped).
GRACE_CUT = ["{d}g1/4 z7 z3/4|", "{D2B4B2}z2 z6|", "{dd}g/ z7 z/|", "{d}[ce] z7|", "{d}A>B z6|"]
GRACE_KEPT = ["{d}g/ z7 z/|", "{D2B4B2}z6 z2|", "{g}A2 B6|"]


@pytest.mark.parametrize("body", GRACE_CUT + GRACE_KEPT)
def test_a_grace_group_is_shorter_than_four_times_its_host(body, tmp_path):
    (tmp_path / "tune.abc").write_text(HEADER + body + "\n", encoding="utf-8")
    result = subprocess.run(
        ["abc2midi", "tune.abc", "-o", "tune.mid"], cwd=tmp_path, capture_output=True, text=True, timeout=30
    )
    cut = "Grace sequence exceeds host note" in result.stdout + result.stderr
    assert accepts(HEADER + body + "\n") == (body in GRACE_KEPT)
    assert cut or body in GRACE_KEPT or "[" in body or ">" in body, "strict mode refuses a host abc2midi takes"
