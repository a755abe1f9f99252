"""Reading the requested tune from prompts: ChatMusician's field lines, plain words and the explicit option."""

from __future__ import annotations

import re
import time
from collections import Counter
from pathlib import Path

import pytest

from chatmusician_hf.chat_format import FIELD_NAMES, inference_prompt
from chatmusician_hf.constrain.request import RequestError, TuneRequest, read_abc_header, read_request
from chatmusician_hf.constrain.tune_request import value_problem
from chatmusician_hf.constrain.tune_types import TUNE_TYPES

README_PROMPT = (
    "Using ABC notation, recreate the given text as a musical score.\nMeter C\n"
    "Notes The parts are commonly interchanged.\nTranscription 1997 by John Chambers\nKey D\nNote Length 1/8\n"
    "Rhythm reel"
)


def fields(request: TuneRequest) -> dict[str, str]:
    return dict(request.fields)


def test_the_readme_prompt_is_read_as_its_header():
    request = read_request(README_PROMPT)
    assert request.header_lines() == [
        "R:reel",
        "M:C",
        "L:1/8",
        "N:The parts are commonly interchanged.",
        "Z:1997 by John Chambers",
        "K:D",
    ]
    assert request.meter_choices == () and request.min_bars is None and request.form is None
    assert read_request(inference_prompt(README_PROMPT)) == request


def test_the_space_demo_question():
    request = read_request("a jig in D major, 6/8, 16 bars")
    assert fields(request) == {"R": "jig", "M": "6/8", "L": "1/8", "K": "D"} and request.min_bars == 16


@pytest.mark.parametrize(
    "text, expected, choices, min_bars, form",
    [
        ("a jig in D", {"R": "jig", "M": "6/8", "L": "1/8", "K": "D"}, (), None, None),
        ("a waltz in 3/4", {"R": "waltz", "M": "3/4", "L": "1/8"}, (), None, None),
        ("a slow air in E minor", {"R": "air", "K": "Em"}, (), None, None),
        ("16 bars", {}, (), 16, None),
        ("Write sixteen bars, please.", {}, (), 16, None),
        ("in the form AABB", {}, (), None, "AABB"),
        ("a tune in ternary form", {}, (), None, "ABA"),
        ("a reel in A dorian", {"R": "reel", "L": "1/8", "K": "Ador"}, ("4/4", "C|"), None, None),
        ("a hornpipe", {"R": "hornpipe", "M": "4/4", "L": "1/8"}, (), None, None),
        ("a slip jig in F sharp minor", {"R": "slip jig", "M": "9/8", "L": "1/8", "K": "F#m"}, (), None, None),
        ("a polka in Bb", {"R": "polka", "M": "2/4", "L": "1/8", "K": "Bb"}, (), None, None),
        ("a strathspey in the key of A", {"R": "strathspey", "M": "C", "L": "1/8", "K": "A"}, (), None, None),
        ("a march in 6/8", {"R": "march", "M": "6/8", "L": "1/8"}, (), None, None),
        ("a march", {"R": "march", "L": "1/8"}, ("2/4", "6/8"), None, None),
        ("a tune in E♭ major in cut time", {"M": "C|", "K": "Eb"}, (), None, None),
        ("a D mixolydian tune, note length 1/16", {"L": "1/16", "K": "Dmix"}, (), None, None),
        ("a jig at 120 bpm", {"R": "jig", "M": "6/8", "L": "1/8", "Q": "3/8=120"}, (), None, None),
        ('a reel called "The Kesh" in G', {"T": "The Kesh", "R": "reel", "L": "1/8", "K": "G"}, ("4/4", "C|"), None,
         None),
        (
            "Compose a waltz in 3/4 in G major with the musical form AABB (two repeated 8-bar parts), in ABC notation.",
            {"R": "waltz", "M": "3/4", "L": "1/8", "K": "G"},
            (),
            16,
            "AABB",
        ),
    ],
)
def test_plain_requests(text, expected, choices, min_bars, form):
    request = read_request(text)
    assert (fields(request), request.meter_choices, request.min_bars, request.form) == (
        expected,
        choices,
        min_bars,
        form,
    )


@pytest.mark.parametrize(
    "text",
    [
        "Tell me about the history of the fiddle in Ireland.",
        "What is a cadence? Explain it simply.",
        "A bad egg: add a bed, a cab and a dab of feta to a bag.",
        "Dear Abe, I am in a band with a bee in a garden. Each deed is a fad.",
        "Key signatures are hard\nNotes on a page confuse me\nTitle of the book?",
        "It was written in March, about 3/4 of an hour before the concert on 12/8/2020.",
        "A minor change: the tempo is 1/4=120 in the score.",
        "Please answer in ABC form, with a unit length of 1/0.",
        "",
    ],
)
def test_prompts_that_ask_for_no_music_force_nothing(text):
    assert not read_request(text), read_request(text)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("a jig or a reel in D", {"K": "D"}),  # two tune types: neither, and no meter from them
        ("a tune in D or in G, in 6/8", {"M": "6/8"}),
        ("transpose it from D major to E major", {}),
        ("a waltz in 3/4 or 6/8", {"R": "waltz", "L": "1/8"}),  # a named meter, even ambiguous, overrides the type
    ],
)
def test_ambiguous_fields_are_not_forced(text, expected):
    assert fields(read_request(text)) == expected


def test_a_tune_quoted_in_the_prompt_is_not_the_request():
    prompt = (
        "Develop this opening motif into a complete 16-bar tune in ABC notation.\nX:1\nM:6/8\nL:1/8\nK:D\n"
        "|: A | dfe dcB | AFA D2"
    )
    request = read_request(prompt)
    assert request.fields == () and request.min_bars == 16


def test_only_the_last_user_turn_of_a_conversation_is_read():
    prompt = inference_prompt("now a reel in G", history=[("a jig in D", "X:1\nM:6/8\nK:D\nDFA dAF|")])
    assert fields(read_request(prompt)) == {"R": "reel", "L": "1/8", "K": "G"}


def test_the_explicit_option_wins_field_by_field():
    request = read_request("a jig in D, 16 bars", abc_header="K:G M:9/8")
    assert fields(request) == {"R": "jig", "M": "9/8", "L": "1/8", "K": "G"} and request.min_bars == 16
    assert read_request("a reel", abc_header="M:C|").meter_choices == (), "a forced meter leaves no choice"
    assert read_request(README_PROMPT, abc_header="K:Em").value("K") == "Em"


def test_read_abc_header():
    request = read_abc_header("M:6/8 K:D dorian L:1/8 T:The Kesh Q:1/4=120")
    assert request.header_lines() == ["T:The Kesh", "M:6/8", "L:1/8", "Q:1/4=120", "K:D dorian"]
    assert read_abc_header("") == TuneRequest() and read_abc_header("  K:none ").value("K") == "none"


@pytest.mark.parametrize(
    "option, message",
    [
        ("M:7/x", "M:7/x cannot be used: unreadable meter"),
        ("K:H#", "K:H# cannot be used"),
        ("K:Gfoo", "unknown mode"),
        ("L:0/8", "L:0/8 cannot be used"),
        ("Q:fast", "unreadable tempo"),
        ("M:", "the value must be one non-empty line"),
        ("6/8 K:D", "expected fields such as 'M:6/8 K:D', got '6/8'"),
        ("Y:1 K:D", "Y: is not a field a request can set"),
        ("K:D M:6/8 K:G", "K: is given twice"),
    ],
)
def test_a_bad_option_is_a_one_line_error(option, message):
    with pytest.raises(RequestError, match="^ABC header .*") as caught:
        read_abc_header(option)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_tune_types_have_readable_meters_and_lengths():
    for kind in TUNE_TYPES:
        for meter in kind.meters:
            assert value_problem("M", meter) is None, kind
        assert kind.unit_length is None or value_problem("L", kind.unit_length) is None, kind
        words = kind.name if kind.name != "air" else "slow air"
        assert read_request(f"Please write a {words}.").value("R") == kind.name


def test_the_readme_table_is_the_mapping():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    table = readme[readme.index("| tune type (`R:`) |") :].split("\n\n", 1)[0].splitlines()[2:]
    documented = set()
    for row in table:
        names, meters, length = (cell.strip().replace("\\|", "|") for cell in row.strip("|").split(" | "))
        meters = () if meters == "none" else tuple(meters.split(" or "))
        for name in re.sub(r"\s*\(.*\)", "", names).split(", "):
            documented.add((name, meters, None if length == "none" else length))
    assert documented == {(kind.name, kind.meters, kind.unit_length) for kind in TUNE_TYPES}


def test_reading_is_fast_on_long_and_hostile_prompts():
    """Linear time: no pattern backtracks into quadratic work on about 100 KB (a prompt is a few KB)."""
    prose = "The fiddle player in a band read a tune book in March. " * 2000
    hostile = "in " * 10_000 + "key of " * 5_000 + "1/" * 10_000 + "A" * 20_000 + "8 bars " * 3_000
    for text in (prose, hostile, README_PROMPT * 500):
        start = time.perf_counter()
        read_request(text)
        assert time.perf_counter() - start < 2.0, len(text)


def test_the_task_writer_is_inverted_exactly():
    """Over every music21 tune: each field the text-to-ABC writer puts in a prompt is read back equal, in ABC, and
    nothing else; the form prompts give back their form and fields. Values the project's readers reject (a handful,
    such as "M:FREI4/4", padded titles) and placeholders ("R:???") are not forced."""
    from chatmusician_hf.data.corpus import iter_music21_tunes
    from chatmusician_hf.data.tasks import split_header, tasks_for_tune

    rejected, prompts, forms = [], 0, 0
    for tune in iter_music21_tunes():
        header, _ = split_header(tune.text)
        written = [(code, value) for code, value in header if code in FIELD_NAMES and value]
        readable = [(code, value) for code, value in written if value_problem(code, value) is None]
        rejected += [field for field in written if field not in readable]
        for row in tasks_for_tune(tune, seed=42, families=("text_to_abc", "form")):
            request = read_request(row["instruction"] + row["input"])
            if row["src"].endswith("text_to_abc"):
                assert Counter(request.fields) == Counter(readable), row["input"]
                prompts += 1
            else:
                assert request.form == row["input"].split("\n")[0].split()[1], row["input"]
                assert Counter(request.fields) == Counter(f for f in readable if f[0] in "MKR"), row["input"]
                forms += 1
    print(f"{prompts} text-to-ABC and {forms} form prompts read back; not forced: {sorted(set(rejected))}")
    placeholders = [field for field in rejected if not any(c.isalnum() for c in field[1])]  # "R:???" asks nothing
    assert prompts > 12_000 and forms > 1_000 and len(rejected) - len(placeholders) <= 45  # (measured 43)
