"""MusicTheoryBench accuracy: the option letter extracted from each prediction against the reference letter.

Self-contained (only ``evaluate`` and ``datasets``): a Hub user loads it with ``evaluate.load`` without the
chatmusician-hf package, and the chatmusician-hf runner calls :func:`extract_answer` from this file instead of keeping
its own copy of the rules. The rules are documented one by one in the metric card (README.md beside this script on the
Hub, ``evaluate_metrics/music_theory_bench/README.md`` in the repository); keep the two in step.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import datasets
import evaluate

LETTERS = ("A", "B", "C", "D")
SUBJECTS = ("knowledge", "reasoning")

_CITATION = """\
@article{yuan2024chatmusician,
  title={ChatMusician: Understanding and Generating Music Intrinsically with LLM},
  author={Yuan, Ruibin and Lin, Hanfeng and Wang, Yi and Tian, Zeyue and Wu, Shangda and others},
  journal={arXiv preprint arXiv:2402.16153},
  year={2024}
}
"""

_DESCRIPTION = """\
Accuracy on MusicTheoryBench (372 four-option music-theory questions, subjects `knowledge` and `reasoning`).
Predictions may be option letters (perplexity mode) or free generated text (generation mode); an answer letter is
extracted from free text by documented rules, and a prediction with no extractable answer counts as wrong.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `str`): option letters or free generated text, one per question.
    references (`list` of `str`): the correct option letters, each one of A, B, C, D.
    subjects (`list` of `str`, optional): `knowledge` or `reasoning` per question; adds per-subject results.
    ids (`list` of `str`, optional): question ids; adds `wrong_ids` and `unextracted_ids` to the results.
    options (`list` of `dict`, optional): each question's options (`{"A": text, ...}`); enables the option-text rule.
Returns:
    accuracy (`float`): correct / total, every question counted (unextracted answers are wrong, never dropped).
    correct (`int`), total (`int`), unextracted (`int`): counts.
    {subject}_accuracy, {subject}_correct, {subject}_total: for each subject present, when `subjects` is given.
    wrong_ids, unextracted_ids (`list` of `str`): when `ids` is given.
Examples:
    >>> import evaluate
    >>> metric = evaluate.load("evaluate_metrics/music_theory_bench")
    >>> results = metric.compute(predictions=["B", "The answer is (C).", "I am not sure"],
    ...                          references=["B", "C", "A"], subjects=["knowledge", "reasoning", "reasoning"])
    >>> results["accuracy"], results["reasoning_accuracy"], results["unextracted"]
    (0.6666666666666666, 0.5, 1)
"""

# A letter that names a note or key ("A minor", "B flat", "C#") is not an option letter.
_NOT_A_NOTE = r"(?!\s*(?:major|minor|flat|sharp|natural|dim|aug|maj|min)\b)(?![#b♭♯])"
# Rule 2: an explicit statement; the last one wins because chain-of-thought answers conclude at the end.
_ANSWER_STATEMENT = re.compile(
    r"\banswer\s*(?:is|would\s+be|should\s+be|:|=|-)?\s*(?:option|choice)?\s*[:\-]?\s*[(\[]?\**(?-i:([A-D]))\**[)\]]?"
    + _NOT_A_NOTE
    + r"(?![A-Za-z0-9])",
    re.IGNORECASE,
)
# Rule 3: the reply opens with a letter and a delimiter, as in "B. Perfect fifth" or "(C) ...".
_LEADING_LETTER = re.compile(r"^\s*[(\[]?([A-D])(?:[.):\]]|\s*$)")
# Rule 4: option letters in parentheses, as in "... so (D) is correct".
_PARENTHESISED = re.compile(r"\(([A-D])\)")
_WHITESPACE = re.compile(r"\s+")


def _normalise(text: str) -> str:
    return _WHITESPACE.sub(" ", text).strip().lower()


def extract_answer(text, options: Mapping[str, str] | None = None) -> str | None:
    """The option letter a prediction commits to, or ``None`` when it commits to none.

    Rules, first match wins (README.md documents each with examples):

    1. A bare letter: after stripping spaces, brackets, ``*`` and a final ``.``/``:``/``)``, the text is one of
       ``A``-``D`` (upper case only).
    2. An explicit answer statement, case-insensitive: ``answer is (B)``, ``Answer: B``, ``the answer would be
       option C``; the last statement wins. A letter followed by a note or key word (``Answer: A minor``) or an
       accidental is a note name, not an option.
    3. A leading letter with a delimiter: ``B. Perfect fifth``, ``(C) because ...``.
    4. Exactly one distinct letter in parentheses anywhere: ``... so (D) is right``.
    5. With ``options``: the text of exactly one option (two or more characters, case- and space-insensitive,
       not inside a longer word) occurs in the prediction.

    A capital ``A`` inside a sentence ("A perfect fifth ...") matches none of these rules on purpose.
    """
    if text is None:
        return None
    text = str(text)
    bare = text.strip().strip("*").strip().rstrip(".:)").lstrip("(").strip()
    if bare in LETTERS:
        return bare
    statements = [m.group(1) for m in _ANSWER_STATEMENT.finditer(text)]
    if statements:
        return statements[-1]
    leading = _LEADING_LETTER.match(text)
    if leading:
        return leading.group(1)
    parenthesised = {m.group(1) for m in _PARENTHESISED.finditer(text)}
    if len(parenthesised) == 1:
        return parenthesised.pop()
    if options:
        haystack = _normalise(text)
        found = []
        for letter in LETTERS:
            needle = _normalise(str(options.get(letter, "")))
            if len(needle) >= 2 and re.search(r"(?<!\w)" + re.escape(needle) + r"(?!\w)", haystack):
                found.append(letter)
        if len(found) == 1:
            return found[0]
    return None


def _check_lengths(name: str, values: Sequence | None, expected: int) -> None:
    if values is not None and len(values) != expected:
        raise ValueError(f"`{name}` has {len(values)} entries but there are {expected} references.")


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class MusicTheoryBench(evaluate.Metric):
    """MusicTheoryBench accuracy with answer extraction, overall and per subject."""

    extract_answer = staticmethod(extract_answer)

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
            reference_urls=[
                "https://huggingface.co/datasets/m-a-p/MusicTheoryBench",
                "https://arxiv.org/abs/2402.16153",
            ],
        )

    def _compute(self, predictions, references, subjects=None, ids=None, options=None):
        total = len(references)
        if len(predictions) != total:
            raise ValueError(
                f"Got {len(predictions)} predictions but {total} references; they must pair up one to one."
            )
        for name, values in (("subjects", subjects), ("ids", ids), ("options", options)):
            _check_lengths(name, values, total)
        for i, reference in enumerate(references):
            if reference not in LETTERS:
                where = f"id {ids[i]!r}" if ids else f"index {i}"
                raise ValueError(
                    f"Reference at {where} is {reference!r}; references must be one of A, B, C, D."
                )
        if subjects is not None:
            unknown = sorted({s for s in subjects if s not in SUBJECTS})
            if unknown:
                raise ValueError(
                    f"Unknown subjects {unknown}; MusicTheoryBench subjects are {list(SUBJECTS)}."
                )

        extracted = [extract_answer(p, options[i] if options else None) for i, p in enumerate(predictions)]
        correct = [e == r for e, r in zip(extracted, references, strict=True)]
        results = {
            "accuracy": sum(correct) / total if total else 0.0,
            "correct": sum(correct),
            "total": total,
            "unextracted": sum(e is None for e in extracted),
        }
        if subjects is not None:
            for subject in SUBJECTS:
                hits = [c for c, s in zip(correct, subjects, strict=True) if s == subject]
                if hits:
                    results[f"{subject}_accuracy"] = sum(hits) / len(hits)
                    results[f"{subject}_correct"] = sum(hits)
                    results[f"{subject}_total"] = len(hits)
        if ids is not None:
            results["wrong_ids"] = [i for i, c in zip(ids, correct, strict=True) if not c]
            results["unextracted_ids"] = [i for i, e in zip(ids, extracted, strict=True) if e is None]
        return results
