"""The embedded default's tokenizer: a byte-level BPE whose pieces are ABC's musical atoms.

A BPE never merges across the pieces its pre-tokenizer cuts, so the cutting rule decides what a token can be. The
``abc-atoms`` rule cuts ABC the way folk-rnn's vocabulary does (Sturm et al., 2016): a note with its accidentals,
octave marks and length (``^F,2``, ``c3/2``), a rest, a bar line or repeat with its ending number (``:|2``), a
tuplet (``(3``), a chord symbol (``"Am"``), a decoration, a header field's label (``K:``), a newline. Each piece
keeps the one space before it, so `` |`` and `` d2`` (a note that starts a beam group) are pieces of their own.
Notes then never share a token with a bar line or with each other, and a note's length is in its token, which is
what a model needs to count bars. Runs of letters that are words (they hold a lowercase letter that is neither a
note, a rest nor the bowing marks ``u``/``v``/``k``) stay whole, so the prompts' English and the header values read
as words. The tokenizer is still byte-level with no normalizer: every text decodes back to itself byte for byte.

The ``whitespace`` rule splits only before whitespace (pieces such as ``fed|`` or ``(B/c/)|``), kept to compare.
"""

from __future__ import annotations

from importlib import resources

from .chat_format import CHAT_TEMPLATE

# Special tokens take LLaMA-2's ids (unk 0, bos 1, eos 2) so code and data that assume them work unchanged.
SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<pad>"]

_ABC_ATOMS = "|".join(
    [
        r"\[[A-Za-z]:[^\]\n]*\]",  # inline field [K:G]
        r"[A-Za-z]:(?![|:])",  # field label K: (not a note before a repeat, as in B:|)
        r'"[^"\n]*"',  # chord symbol or annotation
        r"![^!\n ]*!",  # decoration !trill!
        r"::+|:*\|[|\]]*:*(?:[0-9]+(?:[-,][0-9]+)*)?|\[\|[|\]]*:*|\[[0-9]+",  # bar lines, repeats, endings
        r"\([0-9](?::[0-9]*)*",  # tuplet (3 or (3:2:2
        r"[A-Za-z]*[h-jl-twy][A-Za-z]*",  # a word
        r"[_=^]*[A-Ga-gzxZ][,']*[0-9]*(?:/+[0-9]*)?",  # note or rest: accidentals, letter, octave, length
        r"\][0-9]*(?:/+[0-9]*)?",  # end of a chord with its length
        r"[0-9]+(?:/[0-9]+)?",  # a number or fraction (6/8, 1/8, 120)
        r"[\[({]",  # chord, slur and grace-note openings
    ]
)
# The alternatives are tried in order at each position; whatever none of them takes (other whitespace, punctuation)
# becomes a piece of one character, and a run of spaces that precedes no atom a piece of its own.
PRETOKENIZE_PATTERNS = {
    "abc-atoms": rf" ?(?:{_ABC_ATOMS})|\n|[ \t]+|\s|\S",
    "whitespace": r" ?\S+|\s+(?!\S)|\s+",
}


def english_text() -> str:
    return resources.files("chatmusician_hf.resources").joinpath("english.txt").read_text()


def train_tokenizer(texts, vocab_size: int, pretokenizer: str = "abc-atoms"):
    """A byte-level BPE wrapped as a transformers fast tokenizer, with ChatMusician's special tokens and template.

    Byte-level with no normalizer means any string, ABC or otherwise, decodes back to itself byte for byte.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if pretokenizer not in PRETOKENIZE_PATTERNS:
        raise ValueError(f"pretokenizer must be one of {', '.join(PRETOKENIZE_PATTERNS)}, got {pretokenizer!r}")
    bpe = Tokenizer(models.BPE(unk_token=None, byte_fallback=False))
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_PATTERNS[pretokenizer]), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(texts, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        clean_up_tokenization_spaces=False,
        model_max_length=2048,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer
