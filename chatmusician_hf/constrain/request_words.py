"""Read a tune request from plain words: "a jig in D", "a waltz in 3/4", "a slow air in E minor", "16 bars",
"in the form AABB", 'a reel called "The Kesh"'.

Each field is read only when the words name exactly one value for it: "a jig or a reel", "from D major to E major"
force no tune type or key. A key needs a capital note letter after "in" or "key of", or a mode word after it
("D major"), so prose full of note-letter words ("a bee in a garden") asks for nothing. ABC tunes quoted in the
prompt are left out: their header belongs to the tune given, not to the one asked for.
"""

from __future__ import annotations

import re

from ..abc.keys import parse_key
from ..music.extract import extract_tunes
from .tune_request import TuneRequest, ordered, valid_form, value_problem
from .tune_types import FORM_WORDS, NUMBER_WORDS, TUNE_TYPES

# Note letters and the accidental signs are matched in capitals/lower case exactly: "in a garden", "in AB".
_LETTER = r"(?-i:([A-G]))"
_ACCIDENTAL = r"((?-i:#|♯|b|♭)|[\s-]sharp|[\s-]flat)?"
_MODES = r"major|minor|dorian|mixolydian|lydian|phrygian|locrian|aeolian|ionian"
_KEY_AFTER_IN = re.compile(
    rf"\b(?:in(?:\s+the\s+key\s+of)?|key\s+of|key:)\s+{_LETTER}{_ACCIDENTAL}"
    rf"(?:\s*({_MODES}|maj|min|m|dor|mix|lyd|phr|loc))?(?![\w#♯♭])",
    re.IGNORECASE,
)
_KEY_WITH_MODE = re.compile(rf"\b{_LETTER}{_ACCIDENTAL}\s+({_MODES})\b", re.IGNORECASE)
_SIGNS = {"#": "#", "♯": "#", "sharp": "#", "b": "b", "♭": "b", "flat": "b"}
_MODE_SUFFIXES = {"maj": "", "ion": "", "min": "m", "aeo": "m"}
_SENTENCE_START = re.compile(r"(?:^|[.!?:\n])\s*$")
_METER = re.compile(r"(?<![\d/])([1-9]\d?)/([1-9]\d?)(?![\d/]|\s*=|\s+of\b)")
_METER_WORDS = {"common time": "C", "cut time": "C|", "alla breve": "C|"}
_UNIT_LENGTH = re.compile(r"\b(?:unit|note)\s+(?:note\s+)?length(?:\s+(?:of|is))?\s*[:=]?\s*(1/\d{1,2})\b", re.I)
_NUMBER = rf"(\d{{1,3}}|{'|'.join(NUMBER_WORDS)})"
_BARS = re.compile(
    rf"\b{_NUMBER}[\s-]*(?:bars?|measures?)\b(\s*(?:each|per\s+(?:part|section|strain)|parts?|sections?|strains?))?",
    re.IGNORECASE,
)
_FORM = re.compile(r"\b(?:form|structure)(?:\s+of)?\s*:?\s+([A-H]{2,8})\b|\b([A-H]{2,8})\s+form\b")
_NAMED_FORM = re.compile(rf"\b({'|'.join(FORM_WORDS)})\s+form\b", re.IGNORECASE)
_TITLE = re.compile(r"\b(?:called|titled|entitled|named)\s+[\"“]([^\"”\n]{1,80})[\"”]", re.IGNORECASE)
_TEMPO = re.compile(r"\b(\d{2,3})\s*(?:bpm|beats\s+per\s+minute)\b", re.IGNORECASE)
# One alternative per type, longer names first, so that "slip jig" is read as one name and not as a jig too.
_TYPE_WORDS = re.compile(
    r"\b(?:" + "|".join(f"(?P<t{i}>{kind.words})" for i, kind in enumerate(TUNE_TYPES)) + r")\b", re.IGNORECASE
)
MAX_BARS = 512
_BEATS = (1, 2, 4, 8, 16)
_COMPOUND = ("6/8", "9/8", "12/8")  # their beat, which "bpm" counts, is a dotted quarter


def _one(values):
    """The one distinct value of ``values``, or None when there are none or several."""
    distinct = set(values)
    return distinct.pop() if len(distinct) == 1 else None


def _key_value(letter: str, accidental: str | None, mode: str | None) -> str | None:
    """The K: value of a key in words (``F``, `` sharp``, ``minor`` -> ``F#m``), or None if it is not a key."""
    sign = _SIGNS[accidental.strip(" -").lower()] if accidental else ""
    short = (mode or "major")[:3].lower()
    value = letter + sign + _MODE_SUFFIXES.get(short, short)
    try:
        parse_key(value)
    except ValueError:
        return None
    return value


def _keys(text: str) -> list[str]:
    found = [_key_value(*match.groups()) for match in _KEY_AFTER_IN.finditer(text)]
    for match in _KEY_WITH_MODE.finditer(text):
        # "A minor change": a sentence's first word "A" is the article
        if not (match.group(1) == "A" and _SENTENCE_START.search(text[: match.start()])):
            found.append(_key_value(*match.groups()))
    return [key for key in found if key]


def _number(word: str) -> int:
    return int(word) if word.isdigit() else NUMBER_WORDS[word.lower()]


def _without_tunes(text: str) -> str:
    for tune in reversed(extract_tunes(text)):
        text = text[: tune.start] + text[tune.end :]
    return text


def _tune_type(text: str):
    """The one tune type the text names, or None."""
    found = {TUNE_TYPES[int(match.lastgroup[1:])] for match in _TYPE_WORDS.finditer(text)}
    return found.pop() if len(found) == 1 else None


def read_words(text: str) -> TuneRequest:
    """The request that ``text`` makes in plain words (see the module's docstring)."""
    text = _without_tunes(text)
    kind = _tune_type(text)
    fields: list[tuple[str, str]] = []
    meters = [f"{top}/{bottom}" for top, bottom in _METER.findall(text) if int(top) > 1 and int(bottom) in _BEATS]
    meters = [meter for meter in meters if value_problem("M", meter) is None]
    meters += [value for words, value in _METER_WORDS.items() if words in text.lower()]
    meter, choices = _one(meters), ()
    if not meters and kind is not None:
        meter, choices = (kind.meters[0], ()) if len(kind.meters) == 1 else (None, kind.meters)
    units = [unit for unit in _UNIT_LENGTH.findall(text) if value_problem("L", unit) is None]
    unit = _one(units) if units else kind and kind.unit_length
    for code, value in (("M", meter), ("L", unit), ("R", kind and kind.name), ("K", _one(_keys(text)))):
        if value:
            fields.append((code, value))
    tempo = _one(_TEMPO.findall(text))
    if tempo:
        fields.append(("Q", f"{'3/8' if meter in _COMPOUND else '1/4'}={tempo}"))
    title = _one(_TITLE.findall(text))
    if title:
        fields.append(("T", title.strip()))
    # "in ABC form" means ABC notation far more often than three sections
    forms = [a or b for a, b in _FORM.findall(text) if valid_form(a or b) and (a or b) != "ABC"]
    form = _one(forms + [FORM_WORDS[word.lower()] for word in _NAMED_FORM.findall(text)])
    bars = _BARS.findall(text)
    total = _one(_number(n) for n, per_part in bars if not per_part)
    per_part = _one(_number(n) for n, per_part in bars if per_part)
    min_bars = total or (per_part * len(set(form)) if per_part and form else None)
    if min_bars is not None and not 1 <= min_bars <= MAX_BARS:
        min_bars = None
    return TuneRequest(ordered(fields), choices, min_bars, form)
