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


def abc2midi_output(body: str, folder) -> str:
    (folder / "tune.abc").write_text(HEADER + body + "\n", encoding="utf-8")
    result = subprocess.run(
        ["abc2midi", "tune.abc", "-o", "tune.mid"], cwd=folder, capture_output=True, text=True, timeout=30
    )
    return result.stdout + result.stderr


@pytest.mark.parametrize("body", GRACE_CUT + GRACE_KEPT)
def test_a_grace_group_is_shorter_than_four_times_its_host(body, tmp_path):
    cut = "Grace sequence exceeds host note" in abc2midi_output(body, tmp_path)
    assert accepts(HEADER + body + "\n") == (body in GRACE_KEPT)
    assert cut or body in GRACE_KEPT or "[" in body or ">" in body, "strict mode refuses a host abc2midi takes"


# abc2midi's fixreps: a :| after a closed repeat, with no |: or :: since, draws "Assuming repeat" (and a replay of
# bars nobody meant to repeat); after a variant ending anywhere in the tune it stays silent.
REPEAT_ASSUMED = ["|:A8:|B8:|", "A8:|B8:|", "|:A8:|B8||c8:|"]
REPEAT_STARTED = ["|:A8:|B8|:c8:|", "A8::B8:|", "|:A8|1B8:|2c8:|d8:|", "A8:|B8|"]


@pytest.mark.parametrize("body", REPEAT_ASSUMED + REPEAT_STARTED)
def test_an_end_repeat_needs_its_start_repeat(body, tmp_path):
    assumed = "Assuming repeat" in abc2midi_output(body, tmp_path)
    assert assumed == (body in REPEAT_ASSUMED), "the case list no longer matches abc2midi"
    assert accepts(HEADER + body) == (not assumed)
    assert AbcTracker(strict=False).feed(HEADER + body), "lenient mode reads what abc2midi plays"


def test_the_header_states_each_musical_field_once_and_holds_no_music():
    """The tiny model, left to itself, spent its budget on `Q:` after `Q:` and wrote its bars into `T:`."""
    for field in ("M:4/4", "L:1/8", "Q:1/4=120", "R:reel", "C:Irish"):
        assert not accepts(f"X:1\n{field}\n{field}\n"), field
    assert accepts("X:1\nT:The Gars\nT:or, The Gows\nC:Trad.\nM:4/4\nL:1/8\nQ:1/4=120\nR:reel\nK:D\n")
    assert not accepts("X:1\nT:The Regt.\nT:The Bapoery.\nT:Lairs Ilin\n"), "two titles at most"
    assert accepts("X:1\n" + "N:a note\n" * 15) and not accepts("X:1\n" + "N:a note\n" * 16), "16 header lines"
    assert accepts("X:1\n" + "% a remark\n" * 15) and not accepts("X:1\n" + "% a remark\n" * 16), "comments count"
    assert not accepts("X:1\n%" + "a remark " * 50), "and so do their characters"
    required = read_abc_header("M:6/8 K:D L:1/8")
    assert accepts("X:1\n" + "N:a note\n" * 12 + "M:6/8\nL:1/8\nK:D\n", required), "room is kept for them"
    assert not accepts("X:1\n" + "N:a note\n" * 14, required)
    assert not accepts("X:1\nT:fe|d>ed") and not accepts("X:1\nA:1:|") and not accepts(HEADER + BAR + "\nT:B|")
    assert AbcTracker(strict=False).feed("X:1\nQ:1/4=120\nQ:1/4=100\nT:fe|d>ed\n"), "abc2midi reads both"


# abc2midi plays a staccato, trilled or breath-marked note as a note and a rest (or an ornament), and then finds no
# note to tie: strict mode ties no decorated note.
DECORATED_TIES = ["A7 .f-|f z7|", "A7 Tf-|f z7|", "A7 !trill!f-|f z7|", "A7 !breath!f-|f z7|"]


@pytest.mark.parametrize("body", DECORATED_TIES + ["A7 f-|f z7|"])
def test_no_tie_after_a_decorated_note(body, tmp_path):
    messages = [line for line in abc2midi_output(body, tmp_path).splitlines() if line.startswith(("Error", "Warning"))]
    assert bool(messages) == (body in DECORATED_TIES), "the case list no longer matches abc2midi"
    assert accepts(HEADER + body) == (body not in DECORATED_TIES)


# A length after a chord: abcm2ps multiplies its notes' lengths by it, abc2midi (store.c event_chordoff) replaces
# them with it, so "[A2c2]/" is a unit to one and half a unit to the other. Strict mode writes it only after notes
# of one unit, where both agree.
CHORD_LENGTHS_CLASH = ["z8|A6 [A2c2]/ z|", "z8|A4 [A2c2]2/2 z2|"]
CHORD_LENGTHS_AGREE = ["z8|A6 [Ac]/ z z/|", "z8|A6 [A2c2]|", "z8|A4 [Ac]2 z2|"]


@pytest.mark.parametrize("body", CHORD_LENGTHS_CLASH + CHORD_LENGTHS_AGREE)
def test_a_length_after_a_chord_only_where_the_tools_agree(body, tmp_path):
    warned = "time units" in abc2midi_output(body, tmp_path)
    assert warned == (body in CHORD_LENGTHS_CLASH), "the case list no longer matches abc2midi"
    assert accepts(HEADER + body) == (not warned)


def test_chords_hold_a_hand_of_notes_of_one_length():
    """The untrained model's chords ran on for a line ("[eed_C ac FGFE.C.A ...]"): abc2midi, "Too many notes in
    chord" and "unequal notes in chord"."""
    body = HEADER + "z8|A6 "
    assert accepts(body + "[Aceg]2|") and accepts(body + "L[Ac]2|")
    for bad in ("[Ac eg]", "[A.c]", "[AcegB]", "[A(c]"):
        assert not accepts(body + bad), bad
    assert not accepts(HEADER + "z8|A7 [F2"), "a chord longer than a unit takes no length after it: it must fit"
    assert accepts(HEADER + "z8|A7 [Fd]/ z/|")


def test_no_directive_hides_in_a_comment(tmp_path):
    """abc2midi obeys "%%MIDI" after music on its line (the SentencePiece fuzz wrote "( %%MIDI dfe call."):
    strict mode writes no "%" inside a comment."""
    body = "A8| %%MIDI dfe call.\nA8|"
    assert 'command "dfe" not recognized' in abc2midi_output(body, tmp_path)
    assert accepts(HEADER + "A8| % a plain comment\nA8|") and not accepts(HEADER + body)
    assert not accepts("X:1\n%%MIDI program 1\n") and AbcTracker(strict=False).feed(HEADER + body)
