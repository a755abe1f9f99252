"""The MusicTheoryBench prompts: the paper's perplexity-mode text and the chat prompts of generation mode.

Perplexity mode (the paper's protocol, also used by the lm-eval task, which imports these functions)::

    {INSTRUCTION}
    [{exemplar question block} {exemplar answer}\n\n] x 5 for 5-shot
    {stem, with EXAMPLE_SENTENCE removed and the abc_score appended when there is one}
    A. {option A}
    B. {option B}
    C. {option C}
    D. {option D}
    Answer: X

The candidate X with the lowest mean token cross-entropy over the whole sequence wins. The question block ends in
``Answer:`` and each candidate adds ``" " + letter``, which is also exactly what lm-eval's multiple-choice format
produces with ``target_delimiter: " "`` and ``fewshot_delimiter: "\\n\\n"``.
"""

from __future__ import annotations

from ..chat_format import inference_prompt
from .bench_data import LETTERS

INSTRUCTION = "Read the following questions from the four options (A, B, C and D) given in each question. Choose the best option."
# Stems that come with an ABC excerpt open with this sentence; the paper drops it and appends the excerpt instead.
EXAMPLE_SENTENCE = "Use the example below to answer the question that follows."
QUESTION_TEMPLATE = "{stem}\nA. {A}\nB. {B}\nC. {C}\nD. {D}\nAnswer:"
ANSWER_DELIMITER = " "
EXEMPLAR_DELIMITER = "\n\n"

# Generation mode. The paper prompted closed models with a role and with chain of thought; these are our wording.
ROLE_PLAY_PREFIX = (
    "You are an experienced music theorist and performer who reads ABC notation fluently and explains harmony, "
    "rhythm and form precisely.\n"
)
DIRECT_SUFFIX = '\nAnswer with the letter of the best option, as in "The answer is (X)".'
COT_SUFFIX = '\nLet\'s think step by step, then finish with "The answer is (X)", where X is the letter of the best option.'


def stem_text(row: dict) -> str:
    """The stem as the paper shows it: with an ABC excerpt, the pointer sentence goes and the excerpt follows."""
    stem = row["stem"]
    if row.get("abc_score"):
        stem = stem.replace(EXAMPLE_SENTENCE, "").strip() + "\n" + row["abc_score"]
    return stem


def question_block(row: dict) -> str:
    """One question in perplexity-mode form, ending in ``Answer:`` (no letter)."""
    return QUESTION_TEMPLATE.format(stem=stem_text(row), **row["options"])


def ppl_context(row: dict, exemplars: list[dict] = ()) -> str:
    """Everything before the candidate letter: instruction, solved exemplars, the question."""
    solved = "".join(
        question_block(ex) + ANSWER_DELIMITER + ex["answer"] + EXEMPLAR_DELIMITER for ex in exemplars
    )
    return INSTRUCTION + "\n" + solved + question_block(row)


def ppl_candidates(row: dict, exemplars: list[dict] = ()) -> list[str]:
    """The four full sequences the paper scores, in A-D order."""
    context = ppl_context(row, exemplars)
    return [context + ANSWER_DELIMITER + letter for letter in LETTERS]


def gen_question(row: dict, role_play: bool = False, chain_of_thought: bool = False) -> str:
    """The user turn of generation mode: instruction, stem and options, and the answer-format request."""
    options = "\n".join(f"{letter}. {row['options'][letter]}" for letter in LETTERS)
    prefix = ROLE_PLAY_PREFIX if role_play else ""
    suffix = COT_SUFFIX if chain_of_thought else DIRECT_SUFFIX
    return f"{prefix}{INSTRUCTION}\n{stem_text(row)}\n{options}{suffix}"


def gen_exemplar_answer(row: dict, chain_of_thought: bool = False) -> str:
    """A solved exemplar's assistant turn; with chain of thought the benchmark's own analysis leads to the letter."""
    conclusion = f"The answer is ({row['answer']})."
    if chain_of_thought and row.get("analysis"):
        return f"{row['analysis'].strip()} {conclusion}"
    return conclusion


def gen_prompt(
    row: dict, exemplars: list[dict] = (), role_play: bool = False, chain_of_thought: bool = False
) -> str:
    """The full ChatMusician-format prompt; few-shot exemplars become earlier turns of the conversation."""
    history = [
        (gen_question(ex, role_play, chain_of_thought), gen_exemplar_answer(ex, chain_of_thought))
        for ex in exemplars
    ]
    return inference_prompt(gen_question(row, role_play, chain_of_thought), history)
