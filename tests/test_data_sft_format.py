"""SFT formatting: exact ChatMusician strings, separators never doubled or lost, exact loss-mask spans."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chatmusician_hf.data.config import DataArguments
from chatmusician_hf.data.sft_format import (
    build_sft_dataset,
    normalize_sft_row,
    render_sft_text,
    sft_messages,
    sft_prompt_and_answer,
    tokenize_sft_batch,
)

FIXTURE = Path(__file__).parent / "fixtures" / "musicpile_sft_sample.jsonl"
ROWS = [json.loads(line) for line in FIXTURE.read_text().splitlines()]

EXPECTED_TEXTS = [
    "Human: Develop a tune in ABC notation that follows the given musical form.['AABB', 'Sectional: Verse/Chorus'] "
    "</s> Assistant: X:1\nL:1/8\nM:6/8\nK:G\n|: D | GAG GBd | edB dBG | cBA BAG | AFD D2 :|\n"
    "|: d | gfg ged | ege dBG | cBA BAG | AFD D2 :| </s>",
    "Human: Using ABC notation, recreate the given text as a musical score.\nMeter 3/4\nKey Dm\nNote Length 1/8\n"
    "Rhythm waltz </s> Assistant: X:1\nL:1/8\nM:3/4\nK:Dm\nA2 | d3 e f2 | e2 d2 c2 | A4 A2 | d6 |] </s>",
    "Human: Harmonize the melody below with a chord progression.X:1\nL:1/4\nM:4/4\nK:C\nc d e f | g2 g2 |] </s> "
    'Assistant: X:1\nL:1/4\nM:4/4\nK:C\n"C" c d "F" e f | "G" g2 "C" g2 |] </s>',
    "Human: Compose a four-part chorale opening in the style of Bach. </s> Assistant: X:1\nL:1/4\nM:4/4\nK:G\nV:1\n"
    "G A B c | d2 d2 |]\nV:2\nD F G A | B2 B2 |] </s>",
    "Human: What is a hemiola, and where is it common? </s> Assistant: A hemiola re-groups six beats so that two "
    "bars of 3/4 sound like three bars of 2/4. It is common at cadences in Baroque dance music such as the "
    "courante. </s>",
    "Human: Summarize the following track description.Title: Harbour Lights\nArtist: The Tide Singers\nA slow folk "
    "ballad sung over fingerpicked guitar. </s> Assistant: A gentle, guitar-led folk ballad with a slow, wistful "
    "vocal. </s>",
]


@pytest.mark.parametrize("index", range(len(ROWS)))
def test_fixture_rows_render_to_the_exact_chatmusician_string(index):
    text = render_sft_text(ROWS[index])
    assert text == EXPECTED_TEXTS[index]
    assert text.count("</s>") == 2 and text.count("Human: ") == 1 and text.count("Assistant: ") == 1


def test_rows_with_and_without_separators_render_the_same():
    bare = {"instruction": "Name the key.", "input": "\nX:1\nK:D\nd2 A2 |]", "output": "D major."}
    variants = [
        bare,
        {**bare, "input": bare["input"] + " </s> ", "output": "Assistant: D major. </s> "},
        {**bare, "input": bare["input"] + "</s>", "output": "Assistant: D major.</s>"},
        {**bare, "instruction": "Human: Name the key.", "input": bare["input"] + " </s> Assistant: "},
    ]
    expected = "Human: Name the key.\nX:1\nK:D\nd2 A2 |] </s> Assistant: D major. </s>"
    assert [render_sft_text(v) for v in variants] == [expected] * len(variants)


def test_text_that_is_not_a_separator_is_kept():
    user, answer = normalize_sft_row("Explain </s> tokens", "", "The Assistant: role answers.")
    assert user == "Explain </s> tokens"
    assert answer == "The Assistant: role answers."


def test_chat_template_renders_the_same_string(tiny_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    for row, expected in zip(ROWS, EXPECTED_TEXTS, strict=True):
        assert tokenizer.apply_chat_template(sft_messages(row), tokenize=False) == expected


def test_loss_mask_covers_exactly_the_answer_and_its_eos(tiny_model_dir, tmp_path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    args = DataArguments(dataset_name=str(FIXTURE), validation_fraction=0, data_cache_dir=str(tmp_path))
    dataset = build_sft_dataset(args, tokenizer, max_length=512, max_prompt_length=256)
    assert dataset.column_names == ["input_ids", "assistant_masks", "messages"]
    assert len(dataset) == len(ROWS)
    eos = tokenizer.eos_token_id
    for row, example in zip(ROWS, dataset, strict=True):
        prompt, answer = sft_prompt_and_answer(row)
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        answer_ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
        ids, mask = example["input_ids"], example["assistant_masks"]
        assert ids == prompt_ids + answer_ids
        assert mask == [0] * len(prompt_ids) + [1] * len(answer_ids)
        assert ids[-1] == eos and mask[-1] == 1
        assert tokenizer.decode([t for t, m in zip(ids, mask, strict=True) if m]) == answer
        assert tokenizer.decode([t for t, m in zip(ids, mask, strict=True) if not m]) == prompt
        assert prompt.endswith(" </s> Assistant: ") and answer.endswith(" </s>")
    first = dataset[0]
    learned = tokenizer.decode(
        [t for t, m in zip(first["input_ids"], first["assistant_masks"], strict=True) if m]
    )
    assert learned == (
        "X:1\nL:1/8\nM:6/8\nK:G\n|: D | GAG GBd | edB dBG | cBA BAG | AFD D2 :|\n"
        "|: d | gfg ged | ege dBG | cBA BAG | AFD D2 :| </s>"
    )


def test_truncation_keeps_the_turn_structure_and_drops_eos_of_a_cut_answer(tiny_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    long_input = " ".join(f"bar{i} |" for i in range(400))
    long_output = "X:1\nK:D\n" + " ".join("abc|" for _ in range(400))
    batch = {"instruction": ["Continue:"], "input": [long_input], "output": [long_output], "src": ["test"]}
    out = tokenize_sft_batch(batch, tokenizer, max_length=300, max_prompt_length=100)
    ids, mask = out["input_ids"][0], out["assistant_masks"][0]
    assert len(ids) == 300 and mask.count(0) == 100
    prompt = tokenizer.decode(ids[:100])
    assert prompt.startswith("Human: Continue:bar0 |") and prompt.endswith(" </s> Assistant: ")
    assert ids[-1] != tokenizer.eos_token_id  # a cut answer must not teach the model to stop there
    assert tokenizer.decode(ids[100:]) == tokenizer.decode(tokenizer(long_output)["input_ids"][:200])


def test_sft_trainer_turns_the_masks_into_labels(tiny_model_dir, tmp_path):
    """TRL 1.16 accepts the rows with assistant_only_loss and packing, and trains on exactly the masked tokens."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    args = DataArguments(
        dataset_name=str(FIXTURE), validation_fraction=0, data_cache_dir=str(tmp_path / "cache")
    )
    dataset = build_sft_dataset(args, tokenizer, max_length=256, max_prompt_length=128)
    config = SFTConfig(
        output_dir=str(tmp_path / "out"),
        use_cpu=True,
        bf16=False,
        gradient_checkpointing=False,
        packing=True,
        packing_strategy="bfd",
        max_length=256,
        assistant_only_loss=True,
        report_to=[],
    )
    trainer = SFTTrainer(model=model, args=config, train_dataset=dataset, processing_class=tokenizer)
    packed = trainer.train_dataset
    assert len(packed) < len(dataset)  # rows were packed together
    labels = sorted(t for example in packed for t in example["labels"] if t != -100)
    expected = sorted(
        t for ex in dataset for t, m in zip(ex["input_ids"], ex["assistant_masks"], strict=True) if m
    )
    assert labels == expected
