"""Dance and tune types, and the meters and unit lengths they are written in (the README's mapping table).

Folk tune types imply a meter: a jig is 6/8, a slip jig 9/8, a waltz 3/4. Where a type is written in more than one
meter (reels in 4/4 or C|, marches in 2/4 or 6/8), every usual one is listed and none is preferred; where it has
no usual meter (an air), nothing is implied. The unit length is the one tune books use for the type, given even
where it is ABC's default, so that a forced header states it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TuneType:
    name: str  # as written in an R: field
    meters: tuple[str, ...]  # M: values in use, most common first; empty: no usual meter
    unit_length: str | None  # L: value, None where the type has no usual one
    # regular expression for the words that name it (matched case-insensitively, whole words; a type whose words
    # contain another's comes first: "slip jig" before "jig")
    words: str


TUNE_TYPES = (
    TuneType("slip jig", ("9/8",), "1/8", r"slip[- ]?jigs?"),
    TuneType("jig", ("6/8",), "1/8", r"(?:double |single )?jigs?"),
    TuneType("slide", ("12/8",), "1/8", r"slides?"),
    TuneType("reel", ("4/4", "C|"), "1/8", r"reels?"),
    TuneType("hornpipe", ("4/4",), "1/8", r"hornpipes?"),
    TuneType("strathspey", ("C",), "1/8", r"strathspeys?"),
    TuneType("barndance", ("4/4",), "1/8", r"barn ?dances?"),
    TuneType("fling", ("4/4",), "1/8", r"(?:highland )?flings?"),
    TuneType("polka", ("2/4",), "1/8", r"polkas?"),
    # lower case only: "March" is also the month
    TuneType("march", ("2/4", "6/8"), "1/8", r"(?-i:march(?:es)?)"),
    TuneType("waltz", ("3/4",), "1/8", r"waltz(?:es)?"),
    TuneType("mazurka", ("3/4",), "1/8", r"mazurkas?"),
    TuneType("polska", ("3/4",), "1/8", r"polskas?"),
    TuneType("minuet", ("3/4",), "1/8", r"minuets?"),
    # "air" alone is too common an English word; "an air" and "slow air" are tune requests.
    TuneType("air", (), None, r"slow airs?|an air"),
)

# Number words a request may spell out ("sixteen bars").
NUMBER_WORDS = {
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "twelve": 12,
    "sixteen": 16,
    "twenty": 20,
    "twenty-four": 24,
    "thirty-two": 32,
    "forty-eight": 48,
    "sixty-four": 64,
}

# Named forms ("in binary form").
FORM_WORDS = {"binary": "AB", "ternary": "ABA", "rondo": "ABACA"}
