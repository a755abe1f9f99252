"""Foundation: the CLI, recipe parsing, the tiny embedded default and the music21 corpus."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field

import pytest

from chatmusician_hf.chat_format import inference_prompt, render_conversation
from chatmusician_hf.cli import STAGES
from chatmusician_hf.configs import RecipeError, RecipeParser


def run_cli(*args, **kwargs):
    return subprocess.run(
        [sys.executable, "-m", "chatmusician_hf.cli", *args], capture_output=True, text=True, timeout=300, **kwargs
    )


def test_top_level_help_lists_every_stage():
    result = run_cli("--help")
    assert result.returncode == 0, result.stderr
    for name in STAGES:
        assert name in result.stdout


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_every_subcommand_help_explains_its_options(stage):
    import argparse
    import importlib

    result = run_cli(stage, "--help")
    assert result.returncode == 0, result.stderr
    assert "usage: chatmusician-hf" in result.stdout
    parser = importlib.import_module(STAGES[stage][0]).make_parser()
    if not hasattr(parser, "_actions"):
        return  # preprocess and eval dispatch to per-stage parsers; their own tests check those
    undocumented = [a.option_strings[0] for a in parser._actions
                    if a.option_strings and not isinstance(a, argparse._HelpAction) and not a.help]
    assert not undocumented, f"options without help: {undocumented}"


def test_console_script_is_installed():
    result = subprocess.run(["chatmusician-hf", "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "init-tiny" in result.stdout


@dataclass
class _Example:
    learning_rate: float = field(default=1e-4, metadata={"help": "lr"})
    lora_r: int = field(default=8, metadata={"help": "rank"})


def test_recipe_misspelled_key_names_file_key_and_suggestion(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("lerning_rate: 0.1\n")
    with pytest.raises(RecipeError) as err:
        RecipeParser([_Example]).parse_args_and_config(["--config", str(recipe)])
    message = str(err.value)
    assert str(recipe) in message and "'lerning_rate'" in message and "'learning_rate'" in message


def test_cli_flag_overrides_recipe_value(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("learning_rate: 0.1\nlora_r: 16\nenv:\n  CMHF_TEST_VAR: set-by-recipe\n")
    (args,) = RecipeParser([_Example]).parse_args_and_config(["--config", str(recipe), "--lora_r", "4"])
    assert args.learning_rate == 0.1 and args.lora_r == 4
    import os

    assert os.environ["CMHF_TEST_VAR"] == "set-by-recipe"


def test_config_takes_a_packaged_recipe_name_where_no_file_has_it(tmp_path, monkeypatch):
    from chatmusician_hf import cpt

    monkeypatch.chdir(tmp_path)  # no recipes/ here: the names are found in the installed package
    data_args, training_args, model_args = cpt.make_parser().parse_args_and_config(["--config", "tiny/cpt"])
    assert data_args.dataset_name == "music21" and training_args.learning_rate == 3.0e-3
    assert model_args.model_name_or_path == "outputs/tiny-base"
    (tmp_path / "tiny").mkdir()
    (tmp_path / "tiny" / "cpt.yaml").write_text("learning_rate: 0.5\n")  # a file at that path wins over the name
    _, training_args, _ = cpt.make_parser().parse_args_and_config(["--config", "tiny/cpt.yaml"])
    assert training_args.learning_rate == 0.5
    with pytest.raises(RecipeError, match="not found: tiny/cpt_lroa. Did you mean the packaged recipe 'tiny/cpt_lora'"):
        cpt.make_parser().parse_args_and_config(["--config", "tiny/cpt_lroa"])


def test_misspelled_cli_flag_is_rejected_with_suggestion():
    with pytest.raises(RecipeError, match="Did you mean '--lora_r'"):
        RecipeParser([_Example]).parse_args_and_config(["--lora_rr", "4"])


def test_cli_reports_recipe_errors_without_traceback(tmp_path):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text("vocab_sise: 3\n")
    result = run_cli("init-tiny", "--config", str(recipe))
    assert result.returncode == 2
    assert "unknown key 'vocab_sise'" in result.stderr and "vocab_size" in result.stderr
    assert "Traceback" not in result.stderr


def test_chat_template_renders_exact_chatmusician_string(tiny_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    messages = [
        {"role": "user", "content": "Compose a reel in D."},
        {"role": "assistant", "content": "X:1\nK:D\nABcd|"},
        {"role": "user", "content": "Now in G."},
        {"role": "assistant", "content": "X:1\nK:G\nGABc|"},
    ]
    expected = (
        "Human: Compose a reel in D. </s> Assistant: X:1\nK:D\nABcd| </s> "
        "Human: Now in G. </s> Assistant: X:1\nK:G\nGABc| </s>"
    )
    assert tokenizer.apply_chat_template(messages, tokenize=False) == expected
    assert render_conversation(messages) == expected
    prompt = tokenizer.apply_chat_template(messages[:1], tokenize=False, add_generation_prompt=True)
    assert prompt == "Human: Compose a reel in D. </s> Assistant: " == inference_prompt("Compose a reel in D.")


def test_assistant_mask_covers_answer_and_its_eos(tiny_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "X:1"}]
    out = tokenizer.apply_chat_template(messages, return_dict=True, return_assistant_tokens_mask=True)
    ids, mask = out["input_ids"], out["assistant_masks"]
    answer = [i for i, m in zip(ids, mask) if m]
    assert tokenizer.decode(answer) == "X:1 </s>"
    assert answer[-1] == tokenizer.eos_token_id
    assert tokenizer.decode([i for i, m in zip(ids, mask) if not m]) == "Human: Hi </s> Assistant: "


def test_tiny_default_loads_like_a_hub_model(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert tokenizer.convert_tokens_to_ids("</s>") == tokenizer.eos_token_id == 2
    assert tokenizer("</s>", add_special_tokens=False).input_ids == [tokenizer.eos_token_id]
    assert tokenizer.pad_token is not None and tokenizer.pad_token_id != tokenizer.eos_token_id
    assert tokenizer("X:1", add_special_tokens=True).input_ids[0] != tokenizer.bos_token_id  # ChatMusician: no BOS
    assert model.config.model_type == "llama" and model.config.vocab_size == len(tokenizer)
    assert 0.5e6 < model.num_parameters() < 3e6
    generation = GenerationConfig.from_pretrained(tiny_model_dir)
    assert (generation.temperature, generation.top_k, generation.top_p) == (0.2, 40, 0.9)


def test_every_music21_tune_round_trips_byte_for_byte(tiny_model_dir):
    from transformers import AutoTokenizer

    from chatmusician_hf.data.corpus import iter_music21_tunes

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    texts = [tune.text for tune in iter_music21_tunes()]
    encoded = tokenizer(texts, add_special_tokens=False).input_ids
    decoded = tokenizer.batch_decode(encoded)
    mismatches = [t for t, d in zip(texts, decoded) if t != d]
    assert len(texts) > 12_000 and not mismatches
    assert sum(map(len, texts)) / sum(map(len, encoded)) > 1.6


# A tune cut into ABC atoms by hand: a note with its accidental, octave and length, a bar line or repeat with its
# ending, a tuplet, a chord symbol, a decoration, a field label, a newline; a space belongs to the atom it precedes.
ATOMS = ["X:", "1", "\n", "M:", "6/8", "\n", "L:", "1/8", "\n", "K:", "Dmix", "\n", "|:", '"G"', "G", "A", "B",
         " c2", "d", "|", "^f3/2", "e/", " (3", "f", "e", "d", " z2", ":|2", " [", "C", "E,", "G", "]2", " !trill!",
         "A,,", "|]", "\n", "T:", "The", " Gold", " Ring", "\n"]


def test_tiny_tokenizer_keeps_abc_atoms_whole(tiny_model_dir):
    from itertools import accumulate

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    encoding = tokenizer("".join(ATOMS), add_special_tokens=False, return_offsets_mapping=True)
    token_ends = {end for _, end in encoding["offset_mapping"]}
    # No token reaches across two atoms ...
    assert set(accumulate(map(len, ATOMS))) <= token_ends
    # ... and the common ones are tokens of their own: a note's length and a bar line are never in a note run.
    for atom in ("|", "|:", ":|", "|]", " |", "A2", " c2", "d2", "B", "z2", "\n", "K:", "M:", "6/8", "1/8"):
        assert len(tokenizer(atom, add_special_tokens=False).input_ids) == 1, atom


def test_whitespace_pretokenizer_is_an_option_and_a_wrong_name_is_refused(tmp_path):
    from chatmusician_hf.tiny_tokenizer import train_tokenizer

    texts = ["X:1\nK:D\n|:fed|(B/c/)d:|\n"] * 50
    line = "|:fed|(B/c/)d:|"

    def mixed(tokenizer):  # tokens that hold both a bar line and a note
        return [token for token in tokenizer.tokenize(line) if "|" in token and any(c in token for c in "fedBcd")]

    # Split only at whitespace, BPE learns pieces such as "fed|"; cut into atoms, it cannot.
    assert mixed(train_tokenizer(texts, 300, "whitespace"))
    assert not mixed(train_tokenizer(texts, 300, "abc-atoms"))
    with pytest.raises(ValueError, match="pretokenizer must be one of abc-atoms, whitespace"):
        train_tokenizer(texts, 300, "atoms")
    result = run_cli("init-tiny", "--pretokenizer", "atoms", "--output_dir", str(tmp_path / "never"))
    assert result.returncode != 0 and "Traceback" not in result.stderr and "abc-atoms" in result.stderr
    assert not (tmp_path / "never").exists()


def test_init_tiny_is_deterministic(tiny_model_dir, tmp_path):
    from safetensors.torch import load_file

    from chatmusician_hf.tiny import InitTinyArguments, main

    main(InitTinyArguments(output_dir=str(tmp_path)))
    assert json.loads((tmp_path / "tokenizer.json").read_text()) == json.loads(
        (tiny_model_dir / "tokenizer.json").read_text()
    )
    first, second = load_file(tiny_model_dir / "model.safetensors"), load_file(tmp_path / "model.safetensors")
    assert first.keys() == second.keys() and all((first[k] == second[k]).all() for k in first)


def test_music21_corpus_schema_unique_and_stable_split():
    from chatmusician_hf.data.corpus import build_music21_corpus

    corpus = build_music21_corpus()
    again = build_music21_corpus()
    for split in ("train", "validation"):
        assert corpus[split].column_names == ["id", "text", "src"]
        assert list(corpus[split]["id"]) == list(again[split]["id"])
    texts = list(corpus["train"]["text"]) + list(corpus["validation"]["text"])
    assert len(set(texts)) == len(texts)
    assert 0.03 < len(corpus["validation"]) / len(texts) < 0.07
    assert all(text.startswith("X:1\n") for text in texts)
    assert {src.split("/")[0] for src in corpus["train"]["src"]} == {"music21"}
    # A different seed moves tunes between splits: the split is seeded, not positional.
    assert list(build_music21_corpus(seed=7)["validation"]["id"]) != list(corpus["validation"]["id"])


def test_music21_corpus_text_is_music_without_bookkeeping_lines():
    import re

    from chatmusician_hf.data.corpus import build_music21_corpus, without_bookkeeping

    music, kept = build_music21_corpus(), build_music21_corpus(keep_bookkeeping=True)
    bookkeeping = re.compile(r"^(?:[ZNSBDFHGI]:(?![|:])|%)", re.MULTILINE)
    texts = list(music["train"]["text"]) + list(music["validation"]["text"])
    assert not any(bookkeeping.search(text) for text in texts)
    assert not any("Campin" in text for text in texts)
    # The same tunes in the same split; keep_bookkeeping keeps the lines (1,180 tunes carry Campin's Z: line).
    for split in ("train", "validation"):
        assert list(kept[split]["id"]) == list(music[split]["id"])
    assert sum("Z:Jack Campin" in text for text in kept["train"]["text"]) > 1000
    # A note B or G before a repeat sign is music, not a book or group field.
    assert without_bookkeeping("X:1\nZ:me\nK:G\nB:|A2 G::\nG::B\n% a comment\n") == "X:1\nK:G\nB:|A2 G::\nG::B\n"
