"""Musical statistics of one tune, used by the ABC-quality metric: pitch-class entropy, bar repetition, header
fields as requested, and normalised edit similarity between tunes (for copy detection)."""

from __future__ import annotations

import math
from collections import Counter

from ..abc.keys import parse_key
from ..abc.lengths import parse_unit_length
from ..abc.meters import parse_meter
from .scan import ScannedTune, scan_tune

COPY_SIMILARITY = 0.85  # edit similarity at or above which a generated tune counts as a copy of a reference


def pitch_class_entropy(tune: ScannedTune | str) -> float | None:
    """Shannon entropy in bits of the pitch-class histogram (notes counted once each, chord notes included).

    0 for a tune on one pitch class, log2(12) = 3.585 for all twelve equally often; ``None`` with no notes.

    >>> round(pitch_class_entropy("X:1\\nK:C\\nCDEF|GABc|"), 3)  # 7 pitch classes, c = C: counts 2,1,1,1,1,1,1
    2.75
    """
    tune = scan_tune(tune) if isinstance(tune, str) else tune
    counts = Counter(note.pitch % 12 for note in tune.notes)
    total = sum(counts.values())
    if not total:
        return None
    return -sum(c / total * math.log2(c / total) for c in counts.values()) + 0.0


def bar_repetition_rate(tune: ScannedTune | str) -> float | None:
    """Share of bars that repeat, note for note as written, an earlier bar of the same voice; ``None`` with no bars.

    >>> bar_repetition_rate("X:1\\nM:2/4\\nL:1/4\\nK:C\\nCD|EF|CD|CD|")
    0.5
    """
    tune = scan_tune(tune) if isinstance(tune, str) else tune
    total = repeated = 0
    for bars in tune.voices.values():
        seen: set[str] = set()
        for bar in bars:
            total += 1
            key = bar.text.replace(" ", "")
            repeated += key in seen
            seen.add(key)
    return repeated / total if total else None


def normalize_header_value(field: str, value: str) -> str | None:
    """A canonical form of a K:, M: or L: value so that equivalent spellings compare equal, read as abc2midi
    reads it (``chatmusician_hf.abc``).

    K: tonic and mode (``G``, ``Gmaj``, ``G major`` -> ``G``; ``Em``, ``E minor`` -> ``Emin``);
    M: ``C`` -> ``4/4``, ``C|`` -> ``2/2``, ``(2+3)/8`` -> ``5/8``, ``6/8`` stays; L: the fraction (``1/8``).
    ``None`` when unreadable (abc2midi reports an error and ignores the field).
    """
    value = value.strip()
    try:
        if field == "K":
            return parse_key(value).text() or "none"
        if field == "M":
            return parse_meter(value).text()
        if field == "L":
            return str(parse_unit_length(value))
    except ValueError:
        return None
    return value


def header_matches(requested: dict[str, str], tune: ScannedTune | str) -> dict[str, bool]:
    """For each requested field (``K``, ``M``, ``L``), whether the tune's first value of it matches."""
    tune = scan_tune(tune) if isinstance(tune, str) else tune
    result = {}
    for field, wanted in requested.items():
        values = tune.field_values(field)
        want = normalize_header_value(field, wanted)
        result[field] = bool(values) and want is not None and normalize_header_value(field, values[0]) == want
    return result


def music_text(abc: str) -> str:
    """The tune's music only (lines after ``K:``, whitespace removed): what copy detection compares."""
    lines = abc.splitlines()
    for index, line in enumerate(lines):
        if line.startswith("K:"):
            lines = lines[index + 1 :]
            break
    return "".join("".join(lines).split())


def edit_similarity(a: str, b: str, *, at_least: float = 0.0) -> float:
    """``1 - levenshtein(a, b) / max(len(a), len(b))``; 1.0 for two empty strings.

    With ``at_least``, pairs that cannot reach that similarity return 0.0 early (length and character-count
    bounds, then a banded dynamic programme), which keeps copy detection against many references fast.

    >>> edit_similarity("abcd", "abed")
    0.75
    """
    longest = max(len(a), len(b))
    if longest == 0:
        return 1.0
    budget = math.floor((1 - at_least) * longest + 1e-9)
    if abs(len(a) - len(b)) > budget:
        return 0.0
    if at_least > 0:
        difference = Counter(a)
        difference.subtract(Counter(b))
        if sum(abs(v) for v in difference.values()) / 2 > budget:
            return 0.0
    distance = _banded_levenshtein(a, b, budget)
    if distance is None:
        return 0.0
    return 1 - distance / longest


def _banded_levenshtein(a: str, b: str, limit: int) -> int | None:
    """Levenshtein distance if it is at most ``limit``, else ``None`` (only a band of width 2*limit+1 is filled)."""
    if len(a) < len(b):
        a, b = b, a
    big = limit + 1
    previous = [j if j <= limit else big for j in range(len(b) + 1)]
    for i in range(1, len(a) + 1):
        low, high = max(1, i - limit), min(len(b), i + limit)
        current = [big] * (len(b) + 1)
        current[0] = i if i <= limit else big
        char = a[i - 1]
        row_min = current[0]
        for j in range(low, high + 1):
            cost = 0 if char == b[j - 1] else 1
            value = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            current[j] = value if value < big else big
            if value < row_min:
                row_min = value
        if row_min > limit:
            return None
        previous = current
    return previous[len(b)] if previous[len(b)] <= limit else None
