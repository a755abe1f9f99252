"""``chatmusician-hf init-tiny``: the embedded default model, built locally with no network.

It writes a byte-level BPE tokenizer trained on music21's ABC tunes (plus a little English for prompts) and a small
randomly initialised ``LlamaForCausalLM``, both with ``save_pretrained``, so every later stage loads the folder
exactly as it would load ``meta-llama/Llama-2-7b-hf`` from the Hub.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

from .chat_format import CHAT_TEMPLATE, CHATMUSICIAN_GENERATION_DEFAULTS
from .configs import make_stage_parser

# Special tokens take LLaMA-2's ids (unk 0, bos 1, eos 2) so code and data that assume them work unchanged.
SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<pad>"]

# Pre-tokenization splits only before whitespace: ABC symbols such as "X:", "|:" and "A2B" stay whole, which
# measured 2.37 characters per token against 1.69 for GPT-2's rule (shared/REFERENCE.md §7).
PRETOKENIZE_PATTERN = r" ?\S+|\s+(?!\S)|\s+"


@dataclass
class InitTinyArguments:
    output_dir: str = field(default="outputs/tiny-base", metadata={"help": "Folder to write the tokenizer and model to."})
    vocab_size: int = field(default=2048, metadata={"help": "BPE vocabulary size, special tokens included."})
    hidden_size: int = field(default=128, metadata={"help": "Model width."})
    intermediate_size: int = field(default=352, metadata={"help": "MLP width (about 2.75x hidden, as in LLaMA)."})
    num_hidden_layers: int = field(default=4, metadata={"help": "Number of decoder layers."})
    num_attention_heads: int = field(default=4, metadata={"help": "Attention heads per layer."})
    max_position_embeddings: int = field(default=2048, metadata={"help": "Context length (ChatMusician: 2048)."})
    english_repeats: int = field(
        default=20, metadata={"help": "Times the bundled English prompt text is repeated in the tokenizer corpus."}
    )
    seed: int = field(default=42, metadata={"help": "Seed for the weights and the corpus split."})
    validation_fraction: float = field(
        default=0.05, metadata={"help": "Share of tunes held out; the tokenizer never sees them."}
    )


def english_text() -> str:
    return resources.files("chatmusician_hf.resources").joinpath("english.txt").read_text()


def train_tokenizer(texts, vocab_size: int):
    """A byte-level BPE wrapped as a transformers fast tokenizer, with ChatMusician's special tokens and template.

    Byte-level with no normalizer means any string, ABC or otherwise, decodes back to itself byte for byte.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE(unk_token=None, byte_fallback=False))
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_PATTERN), behavior="isolated"),
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


def build_tiny_model(tokenizer, args: InitTinyArguments):
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=args.hidden_size,
        intermediate_size=args.intermediate_size,
        num_hidden_layers=args.num_hidden_layers,
        num_attention_heads=args.num_attention_heads,
        num_key_value_heads=args.num_attention_heads,
        max_position_embeddings=args.max_position_embeddings,
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(args.seed)
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **CHATMUSICIAN_GENERATION_DEFAULTS,
    )
    return model


def main(args: InitTinyArguments) -> Path:
    from .data.corpus import build_music21_corpus

    start = time.perf_counter()
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    corpus = build_music21_corpus(args.validation_fraction, args.seed)
    texts = list(corpus["train"]["text"]) + [english_text()] * args.english_repeats
    print(f"[init-tiny] training a {args.vocab_size}-token byte-level BPE on {len(corpus['train'])} tunes")
    tokenizer = train_tokenizer(texts, args.vocab_size)
    model = build_tiny_model(tokenizer, args)
    tokenizer.save_pretrained(output_dir)
    model.save_pretrained(output_dir)
    (output_dir / "init_tiny_args.json").write_text(json.dumps(asdict(args), indent=2) + "\n")
    n_params = sum(p.numel() for p in model.parameters())
    print(
        f"[init-tiny] wrote {output_dir}: {len(tokenizer)} tokens, {n_params / 1e6:.2f}M parameters "
        f"({time.perf_counter() - start:.1f}s)"
    )
    return output_dir


def make_parser(subparsers=None):
    return make_stage_parser(
        subparsers,
        "init-tiny",
        [InitTinyArguments],
        help="Build the tiny embedded-default tokenizer and LLaMA model locally (no network).",
    )


if __name__ == "__main__":
    from .cli import run_as_main

    run_as_main("init-tiny")
