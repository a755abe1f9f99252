"""Music21 SFT tasks: schema, families, answers read from the tune, determinism, split by tune."""

from __future__ import annotations

import pytest

from chatmusician_hf.data.corpus import CorpusTune
from chatmusician_hf.data.tasks import (
    FAMILIES,
    TEXT_TO_ABC_INSTRUCTION,
    build_music21_tasks,
    count_bars,
    describe_key,
    describe_meter,
    musical_form,
    split_header,
    tasks_for_tune,
)

REEL = """X:1
T:The Test Reel
R:reel
M:C|
L:1/8
K:Ador
|:EA A2 EAAB|cBcd e2dc|BG G2 DGGA|BcdB AGEG:|
|:Ac c2 Bd d2|ce e2 fed^c|d2 dB G2 Bd|"Am"edcB A4:|"""


def test_header_helpers():
    fields, body = split_header(REEL)
    assert [code for code, _ in fields] == ["X", "T", "R", "M", "L", "K"]
    assert body.startswith("|:EA")
    assert describe_key("Ador") == "A dorian"
    assert describe_key("F#m") == "F sharp minor"
    assert describe_key("Bb") == "B flat major"
    assert describe_key("Dmix") == "D mixolydian"
    assert describe_key("HP") is None
    assert describe_meter("C|") == "2/2 (cut time)" and describe_meter("6/8") == "6/8"


def test_bars_and_form_are_read_from_the_repeats():
    _, body = split_header(REEL)
    assert count_bars(body) == 8
    assert musical_form(body) == "AABB"
    assert musical_form("|:abc|def|gab|c'ba:|\nabc|def|gfe|d3|]") == "AAB"
    assert musical_form("|:ab|cd|1ef:|2ga||\n|:ab|cd|ef|ga:|") == "AABB"  # a second ending is not a section
    assert musical_form("abc|def|gab|c3|abc|def|") is None  # no sections to read


def test_every_family_from_one_tune():
    rows = {
        row["src"].split("/")[1]: row for row in tasks_for_tune(CorpusTune("t#0", REEL, "music21/x"), seed=1)
    }
    assert set(rows) >= {"text_to_abc", "continuation", "form", "question"}
    text = rows["text_to_abc"]
    assert text["instruction"] == TEXT_TO_ABC_INSTRUCTION and text["output"] == REEL
    assert sorted(text["input"].split("\n")) == sorted(
        ["Title The Test Reel", "Rhythm reel", "Meter C|", "Note Length 1/8", "Key Ador"]
    )
    cont = rows["continuation"]
    assert cont["input"] == "X:1\nM:C|\nL:1/8\nK:Ador\n|:EA A2 EAAB|cBcd e2dc|BG G2 DGGA|BcdB AGEG:|"
    assert cont["output"] == REEL
    assert rows["form"]["input"] == "Form AABB\nRhythm reel\nMeter C|\nKey Ador"
    question = rows["question"]
    assert question["input"] == REEL
    assert question["output"] in {
        "The tune is in A dorian.",
        "The time signature is 2/2 (cut time).",
        "8 bars.",
    }
    assert all(row["id"].startswith("t#0/") for row in rows.values())


def test_transpose_family_uses_the_abc_layer():
    import shutil

    if shutil.which("abc2abc") is None:
        pytest.skip("abc2abc (Debian package abcmidi) is not installed")
    music = pytest.importorskip("chatmusician_hf.music")
    tune = CorpusTune("t#0", REEL, "music21/x")
    (row,) = tasks_for_tune(
        tune, seed=1, families=("transpose",), transpose_abc=music.transpose_abc, transpose_fraction=1
    )
    assert row["input"] == REEL and row["output"] != REEL
    assert row["instruction"].startswith("Transpose this tune ") and "from A dorian to " in row["instruction"]
    target = row["instruction"].rsplit(" to ", 1)[1].rstrip(".\n")
    new_key = dict(split_header(row["output"])[0])["K"]
    assert describe_key(new_key) == target


def test_build_is_deterministic_and_split_by_tune():
    first = build_music21_tasks(seed=3, max_tunes=60, families=("text_to_abc", "form", "question"))
    second = build_music21_tasks(seed=3, max_tunes=60, families=("text_to_abc", "form", "question"))
    assert set(first) == {"train", "validation"}
    assert first["train"].column_names == ["instruction", "input", "output", "src", "id"]
    assert first["train"].to_list() == second["train"].to_list()
    tune_ids = {split: {row_id.rsplit("/", 1)[0] for row_id in first[split]["id"]} for split in first}
    assert tune_ids["train"] and tune_ids["validation"]
    assert not tune_ids["train"] & tune_ids["validation"]
    assert {src.split("/")[1] for src in first["train"]["src"]} == {"text_to_abc", "form", "question"}
    with pytest.raises(ValueError, match="unknown task families"):
        build_music21_tasks(families=("harmonize",))
    assert set(FAMILIES) == {"text_to_abc", "continuation", "form", "transpose", "question"}


def test_train_tunes_are_also_asked_for_in_other_keys():
    """Each train tune gives text-to-ABC rows in two more keys, its Key line moved with it; held-out rows do not."""
    tasks = build_music21_tasks(seed=3, max_tunes=30, families=("text_to_abc",), key_transpositions=2)
    by_tune: dict[str, list[dict]] = {}
    for row in tasks["train"]:
        by_tune.setdefault(row["id"].rsplit("/", 1)[0], []).append(row)
    assert sum(len(rows) == 3 for rows in by_tune.values()) >= 25
    for rows in by_tune.values():
        original, *others = rows
        keys = {dict(split_header(row["output"])[0])["K"] for row in rows}
        assert len(keys) == len(rows), "each row is in its own key"
        for row in others:
            key = dict(split_header(row["output"])[0])["K"]
            assert f"Key {key}" in row["input"].split("\n")
            assert [line.split(" ", 1)[0] for line in row["input"].split("\n")] == [
                line.split(" ", 1)[0] for line in original["input"].split("\n")
            ], "the same fields, in the same order"
    assert all(row["id"].endswith("/text_to_abc") for row in tasks["validation"])
    plain = build_music21_tasks(seed=3, max_tunes=30, families=("text_to_abc",), key_transpositions=0)
    assert len(plain["train"]) == len(by_tune)
