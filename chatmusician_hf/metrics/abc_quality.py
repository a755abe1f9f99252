"""ABC quality: how usable, well-formed and original the ABC tunes in generated texts are.

This module is thin on purpose: extraction, validation and the musical statistics come from the chatmusician-hf ABC
layer (``chatmusician_hf.music``), so the metric and the project's evaluation stage apply identical rules. That
import is guarded: without the package, loading the metric fails with one message saying what to install.
Validation also needs ``abc2midi`` (Debian package ``abcmidi``). Definitions: the metric card (README.md beside this
script on the Hub, ``evaluate_metrics/abc_quality/README.md`` in the repository).
"""

from __future__ import annotations

import statistics

import datasets
import evaluate

try:
    from chatmusician_hf.music import AbcError, extract_tunes, validate_abc
    from chatmusician_hf.music.scan import scan_tune
    from chatmusician_hf.music.stats import (
        COPY_SIMILARITY,
        bar_repetition_rate,
        edit_similarity,
        header_matches,
        music_text,
        pitch_class_entropy,
    )
except ImportError as err:  # pragma: no cover - exercised only where the package is absent
    raise ImportError(
        "The abc_quality metric uses the chatmusician-hf ABC layer: pip install chatmusician-hf "
        "(from https://github.com/chatmusician-hf/chatmusician-hf) and apt-get install abcmidi"
    ) from err

_CITATION = """\
@article{yuan2024chatmusician,
  title={ChatMusician: Understanding and Generating Music Intrinsically with LLM},
  author={Yuan, Ruibin and Lin, Hanfeng and Wang, Yi and Tian, Zeyue and Wu, Shangda and others},
  journal={arXiv preprint arXiv:2402.16153},
  year={2024}
}
"""

_DESCRIPTION = """\
Quality of ABC notation in generated texts: whether a tune can be found, whether it parses (abc2midi), whether its
bars fit the meter, whether its voices line up, whether it follows the requested key/meter/unit length, how varied
its pitches are, how much it repeats itself, and whether it copies a reference tune.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `str`): generated texts; the first ABC tune in each is evaluated (prose, code fences,
        missing `X:` lines and truncation are handled).
    reference_tunes (`list` of `str`, or `list` of `list` of `str`, optional): tunes the predictions must not copy
        (for example the training tunes): one list shared by all predictions, or one list per prediction.
        Enables `copy_rate`. (A keyword argument, not evaluate's `references`, because it is optional.)
    requested_headers (`list` of `dict`, optional): for each prediction, the header fields the prompt asked for,
        e.g. `{"K": "G", "M": "6/8", "L": "1/8"}` (K, M and L are compared). Enables `header_adherence`.
    timeout (`float`, optional): seconds abc2midi may spend per tune (default 10).
Returns:
    n_predictions (`int`).
    extraction_rate (`float`): predictions containing at least one tune / predictions.
    parse_rate (`float`): predictions whose tune has a K: line and draws no musical abc2midi error / predictions.
    valid_rate (`float`): predictions whose tune has an empty error list (all checks below pass) / predictions.
    bar_duration_correct_rate (`float`): predictions whose tune has bars and every inner bar fits the meter
        / predictions.
    bar_correct_share (`float` or `None`): correct bars / all bars, over every extracted tune.
    voice_alignment_rate (`float` or `None`): multi-voice tunes whose voices have equal bar counts / multi-voice
        tunes; `None` when no tune has two voices.
    median_bars (`float`), mean_bars (`float`): bars of each prediction's first tune (its longest voice; 0 for a
        prediction without a usable tune), median and mean over predictions: the length the rates are measured on.
    header_adherence (`float` or `None`): requested fields matched / requested fields (a prediction without a
        tune matches none); plus `header_adherence_K`, `_M`, `_L` per field. `None` without `requested_headers`.
    pitch_class_entropy (`float` or `None`): mean, over tunes with notes, of the Shannon entropy (bits) of the
        pitch-class counts.
    bar_repetition_rate (`float` or `None`): mean, over tunes with bars, of the share of bars equal to an earlier
        bar of the same voice.
    copy_rate (`float` or `None`): tunes whose music has normalised edit similarity >= 0.85 with one of their
        references / extracted tunes. `None` without `references`.
Examples:
    >>> import evaluate
    >>> metric = evaluate.load("evaluate_metrics/abc_quality")
    >>> good = "Here you go:\\nX:1\\nM:2/4\\nL:1/4\\nK:C\\nCD|EF|CD|G2|]"
    >>> bad = "X:1\\nM:2/4\\nL:1/4\\nK:G\\nGA|Bcd|G2|]"
    >>> results = metric.compute(predictions=[good, bad, "Sorry, I cannot write music."],
    ...                          requested_headers=[{"K": "C", "M": "2/4"}, {"K": "D"}, {"K": "C"}])
    >>> results["extraction_rate"], results["parse_rate"], results["bar_duration_correct_rate"]
    (0.6666666666666666, 0.6666666666666666, 0.3333333333333333)
    >>> results["bar_correct_share"], results["header_adherence"]
    (0.8571428571428571, 0.5)
    >>> round(results["pitch_class_entropy"], 4), results["bar_repetition_rate"]
    (2.2438, 0.125)
    >>> copies = metric.compute(predictions=[good, bad], reference_tunes=["X:1\\nK:C\\nCD|EF|CD|G2|"])
    >>> copies["copy_rate"], copies["header_adherence"]
    (0.5, None)
"""


def _per_prediction(reference_tunes, n: int):
    """``reference_tunes`` as one list of reference music texts per prediction (``None`` when not given)."""
    if reference_tunes is None:
        return None
    if all(isinstance(ref, str) for ref in reference_tunes):
        shared = [music_text(ref) for ref in reference_tunes]
        return [shared] * n
    if len(reference_tunes) != n:
        raise ValueError(f"reference_tunes has {len(reference_tunes)} lists for {n} predictions")
    return [[music_text(ref) for ref in refs] for refs in reference_tunes]


def _mean(values):
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class AbcQuality(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("string")}),
            reference_urls=["https://abcnotation.com/wiki/abc:standard:v2.1"],
        )

    def _compute(self, predictions, reference_tunes=None, requested_headers=None, timeout: float = 10.0):
        n = len(predictions)
        references = _per_prediction(reference_tunes, n)
        if requested_headers is not None and len(requested_headers) != n:
            raise ValueError(f"requested_headers has {len(requested_headers)} entries for {n} predictions")
        found = parsed = valid = bars_right = 0
        bars_total = bars_good = 0
        multi_voice = aligned = 0
        entropies, repetitions = [], []
        lengths = [0] * n  # bars of the first tune's longest voice; 0 where no usable tune was found
        copies = compared = 0
        field_hits: dict[str, list[bool]] = {"K": [], "M": [], "L": []}
        for index, text in enumerate(predictions):
            tunes = extract_tunes(text)
            requested = dict(requested_headers[index] or {}) if requested_headers is not None else {}
            if not tunes:
                for field in requested:
                    field_hits.setdefault(field, []).append(False)
                continue
            abc = tunes[0].abc
            found += 1
            try:
                report = validate_abc(abc, timeout=timeout)
            except AbcError:
                for field in requested:
                    field_hits.setdefault(field, []).append(False)
                continue
            scanned = scan_tune(abc)
            has_key = not any(issue.code == "missing-K" for issue in report.errors)
            parsed += report.parses and has_key
            valid += report.is_valid
            bars_right += report.n_bars > 0 and report.bars_ok
            lengths[index] = max(report.voices.values(), default=0)
            bars_total += report.n_bars
            bars_good += report.n_bars - report.n_bad_bars
            if len(report.voices) > 1:
                multi_voice += 1
                aligned += report.voices_aligned
            entropies.append(pitch_class_entropy(scanned))
            repetitions.append(bar_repetition_rate(scanned))
            for field, hit in header_matches(requested, scanned).items():
                field_hits.setdefault(field, []).append(hit)
            if references is not None:
                compared += 1
                body = music_text(abc)
                copies += any(
                    edit_similarity(body, ref, at_least=COPY_SIMILARITY) >= COPY_SIMILARITY
                    for ref in references[index]
                )
        all_hits = [hit for hits in field_hits.values() for hit in hits]
        results = {
            "n_predictions": n,
            "extraction_rate": found / n if n else 0.0,
            "parse_rate": parsed / n if n else 0.0,
            "valid_rate": valid / n if n else 0.0,
            "bar_duration_correct_rate": bars_right / n if n else 0.0,
            "bar_correct_share": bars_good / bars_total if bars_total else None,
            "median_bars": float(statistics.median(lengths)) if lengths else 0.0,
            "mean_bars": sum(lengths) / n if n else 0.0,
            "voice_alignment_rate": aligned / multi_voice if multi_voice else None,
            "header_adherence": (sum(all_hits) / len(all_hits) if all_hits else None)
            if requested_headers is not None
            else None,
            "pitch_class_entropy": _mean(entropies),
            "bar_repetition_rate": _mean(repetitions),
            "copy_rate": (copies / compared if compared else 0.0) if references is not None else None,
        }
        if requested_headers is not None:
            for field, hits in field_hits.items():
                results[f"header_adherence_{field}"] = sum(hits) / len(hits) if hits else None
        return results
