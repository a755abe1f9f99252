"""``chatmusician-hf chat``: multi-line input, streaming, /save, /reset, history within the context, --render."""

from __future__ import annotations

import io
import json
import sys

import pytest

from chatmusician_hf.chat import (
    PASTE_END,
    PASTE_START,
    ChatArguments,
    ChatSession,
    read_message,
    render_tunes,
)
from chatmusician_hf.chat_format import inference_prompt
from chatmusician_hf.inference import (
    GenerationArguments,
    ModelArguments,
    PromptTooLongError,
    fit_prompt,
    load_model,
    stream_answer,
)

TUNE = """X:1
T:Speed the Plough
M:4/4
L:1/8
K:G
|:GABc dedB|dedB dedB|c2ec B2dB|c2A2 A2BA|
GABc dedB|dedB dedB|c2ec B2dB|A2F2 G4:|"""

SECOND_TUNE = """X:2
T:Second
M:3/4
L:1/4
K:D
D F A|d2 A|F E D|D3|"""


@pytest.fixture(scope="module")
def loaded(tiny_model_dir):
    return load_model(ModelArguments(model=str(tiny_model_dir)))


# ---------------------------------------------------------------- reading messages


def test_empty_line_sends_a_pasted_tune_whole():
    stdin = io.StringIO(TUNE + "\n\nnext message\n")
    assert read_message(stdin) == TUNE
    assert read_message(stdin) == "next message"
    assert read_message(stdin) is None


def test_bracketed_paste_and_fences_keep_blank_lines():
    both = TUNE + "\n\n" + SECOND_TUNE
    pasted = io.StringIO(PASTE_START + both + "\n" + PASTE_END + "\n\n")
    assert read_message(pasted) == both
    fenced = io.StringIO('"""\n' + both + '\n"""\n')
    assert read_message(fenced) == both


def test_commands_run_at_once_but_not_inside_a_message():
    stdin = io.StringIO("/reset\nplay /reset\nnow\n\n")
    assert read_message(stdin) == "/reset"
    assert read_message(stdin) == "play /reset\nnow"


# ---------------------------------------------------------------- context and sampling


def test_oldest_turns_are_dropped_to_fit_the_prompt_budget(loaded):
    history = [(f"question {i} " * 20, f"answer {i} " * 20) for i in range(6)]
    full = len(loaded.tokenizer(inference_prompt("last", history), add_special_tokens=False)["input_ids"])
    budget = full // 2
    fitted = fit_prompt(loaded.tokenizer, "last", history, budget)
    assert len(fitted.input_ids) <= budget
    assert 0 < fitted.dropped_turns < len(history)
    assert fitted.history == history[fitted.dropped_turns :]  # the newest turns are the ones kept
    assert fitted.text == inference_prompt("last", fitted.history)
    with pytest.raises(PromptTooLongError, match="limit is 5"):
        fit_prompt(loaded.tokenizer, TUNE, [], 5)


def test_answer_length_is_clamped_to_the_context(loaded):
    from chatmusician_hf.inference import generation_kwargs

    args = GenerationArguments(max_new_tokens=10_000)
    assert generation_kwargs(loaded, args, 2000)["max_new_tokens"] == loaded.context_length - 2000
    assert generation_kwargs(loaded, GenerationArguments(), 10)["temperature"] == 0.2
    with pytest.raises(PromptTooLongError):
        generation_kwargs(loaded, args, loaded.context_length)


def test_constrain_abc_adds_the_music_aware_logits_processor(loaded):
    from dataclasses import replace

    from chatmusician_hf.constrain import AbcLogitsProcessor
    from chatmusician_hf.inference import generation_kwargs

    assert "logits_processor" not in generation_kwargs(loaded, GenerationArguments(), 10)
    constrained = replace(loaded, constrain="abc")
    (processor,) = generation_kwargs(constrained, GenerationArguments(top_k=7), 10)["logits_processor"]
    assert isinstance(processor, AbcLogitsProcessor)
    # the processor must know where generate stops, the context window's cap included
    kwargs = generation_kwargs(constrained, GenerationArguments(max_new_tokens=10**6), 10)
    assert kwargs["logits_processor"][0].max_new_tokens == kwargs["max_new_tokens"] == loaded.context_length - 10


def test_constrained_answer_cut_by_the_budget_is_a_complete_valid_tune(loaded):
    """The untrained model writes noise that never ends the tune on its own; the budget cuts it, and the
    processor must have used the last steps to close it (grace groups, chords, repeats, the last bar)."""
    from dataclasses import replace

    from chatmusician_hf.music import extract_tunes, validate_abc

    constrained = replace(loaded, constrain="abc")
    header = "X:1\nT:Cut\nM:4/4\nL:1/8\nK:G\nGABc dedB|"
    for seed in range(3):
        args = GenerationArguments(max_new_tokens=40, seed=seed, answer_prefix=header)
        prompt = fit_prompt(loaded.tokenizer, "Compose a reel", [], 1536, answer_prefix=args.answer_prefix)
        answer = "".join(stream_answer(constrained, prompt, args))
        (tune,) = extract_tunes(answer)
        report = validate_abc(tune.abc)
        assert report.parses and not report.errors, (seed, answer, report.summary())


def test_abc_header_option_forces_the_header_and_a_bad_one_is_one_line(loaded, tmp_path):
    """``--abc_header``: every tune the untrained model starts has the fields asked for; the prompt asks for
    another key, and loses. A header that cannot be written fails at once, as one line with exit status 2."""
    from dataclasses import replace

    from chatmusician_hf.cli import main as cli_main
    from chatmusician_hf.music import extract_tunes, validate_abc

    constrained = replace(loaded, constrain="abc")
    for seed in range(2):
        args = GenerationArguments(max_new_tokens=120, seed=seed, answer_prefix="X:1\n", abc_header="M:6/8 K:D L:1/8")
        prompt = fit_prompt(loaded.tokenizer, "Compose a jig in G", [], 1536, answer_prefix=args.answer_prefix)
        answer = "".join(stream_answer(constrained, prompt, args))
        (tune,) = extract_tunes(answer)
        lines = [line.strip() for line in tune.abc.splitlines()]
        assert {"M:6/8", "K:D", "L:1/8"} <= set(lines), (seed, answer)
        assert validate_abc(tune.abc).is_valid, (seed, answer)
    code = cli_main(
        ["chat", "--model", "unused", "--constrain", "abc", "--abc_header", "M:6/8 K:Gfoo"]
    )
    assert code == 2


def test_defaults_are_chatmusicians():
    args = GenerationArguments()
    assert (args.temperature, args.top_k, args.top_p, args.repetition_penalty, args.max_new_tokens) == (
        0.2,
        40,
        0.9,
        1.1,
        1536,
    )


def test_streaming_yields_pieces_and_stop_ends_early(loaded):
    prompt = fit_prompt(loaded.tokenizer, "Compose a reel", [], 1536)
    args = GenerationArguments(max_new_tokens=24, min_new_tokens=24, seed=0)
    pieces = list(stream_answer(loaded, prompt, args))
    assert len(pieces) > 1 and "".join(pieces).strip()
    # closing the stream (a client that went away) stops the worker instead of running to max_new_tokens
    stream = stream_answer(loaded, prompt, GenerationArguments(max_new_tokens=1500, min_new_tokens=1500))
    next(stream)
    stream.close()


# ---------------------------------------------------------------- rendering answers


def test_render_writes_every_tune_in_an_answer(tmp_path):
    answer = f"Here is a reel:\n{TUNE}\n\nand a waltz:\n```\n{SECOND_TUNE}\n```\nEnjoy."
    rendered = render_tunes(answer, tmp_path, "turn1")
    assert [stem for stem, _ in rendered] == ["turn1-tune1", "turn1-tune2"]
    for stem, result in rendered:
        assert result.report.is_valid, result.report.summary()
        for suffix in ("abc", "svg", "mid", "wav"):
            assert (tmp_path / f"{stem}.{suffix}").stat().st_size > 0
    assert (tmp_path / "turn1-tune1.abc").read_text().strip() == TUNE
    assert (tmp_path / "turn1-tune1.mid").read_bytes()[:4] == b"MThd"
    assert (tmp_path / "turn1-tune1.wav").read_bytes()[8:12] == b"WAVE"
    assert render_tunes("no music here", tmp_path, "turn2") == []


def test_session_commands_save_and_reset(loaded, tmp_path):
    out = io.StringIO()
    saved = tmp_path / "conversation.json"
    session = ChatSession(
        loaded,
        GenerationArguments(max_new_tokens=8, seed=0),
        ChatArguments(render=str(tmp_path / "r")),
        "tiny",
    )
    session.run(
        io.StringIO(f"{TUNE}\n\n/save {saved}\n/reset\n/save {tmp_path / 'empty.json'}\n/nope\n"), out
    )
    record = json.loads(saved.read_text())
    assert record["messages"][0] == {"role": "user", "content": TUNE}
    assert record["messages"][1]["role"] == "assistant" and record["messages"][1]["content"]
    assert record["generation"]["max_new_tokens"] == 8
    assert json.loads((tmp_path / "empty.json").read_text())["messages"] == []
    assert "unknown command '/nope'" in out.getvalue()


# ---------------------------------------------------------------- the real terminal program


def test_cli_session_in_a_terminal(tiny_model_dir, tmp_path):
    """A scripted user in a real pty types a tune line by line, pastes two tunes with bracketed paste, and saves.

    The untrained tiny model writes noise, so to make the answers hold a tune without depending on luck, the
    session uses --answer_prefix to start each answer with a tune header; the model writes the body, kept to valid
    ABC by --constrain abc. --render must then write each answer's tune.
    """
    pexpect = pytest.importorskip("pexpect")
    from chatmusician_hf.music import extract_tunes

    render_dir, saved = tmp_path / "renders", tmp_path / "conversation.json"
    header = "X:1\nT:Answer\nM:4/4\nL:1/8\nK:G\nGABc dedB|"
    command = [
        "-m", "chatmusician_hf.cli", "chat", "--model", str(tiny_model_dir), "--max_new_tokens", "40",
        "--seed", "3", "--render", str(render_dir), "--answer_prefix", header.replace("\n", "\\n"),
        "--constrain", "abc",
    ]  # fmt: skip
    child = pexpect.spawn(sys.executable, command, encoding="utf-8", timeout=180, dimensions=(40, 200))
    try:
        child.expect_exact("You: ")
        for line in TUNE.splitlines():
            child.sendline(line)
        child.sendline("")
        child.expect_exact("ChatMusician: X:1")
        child.expect(r"\[turn1-tune1\] wrote .*\n(valid|INVALID): ")
        child.expect_exact("You: ")
        child.send(PASTE_START + TUNE + "\n\n" + SECOND_TUNE + PASTE_END + "\r")
        child.sendline("")
        child.expect_exact("ChatMusician: X:1")
        child.expect_exact("[turn2-tune1] wrote")
        child.expect_exact("You: ")
        child.sendline(f"/save {saved}")
        child.expect_exact("saved 2 turn(s)")
        child.sendeof()
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    messages = json.loads(saved.read_text())["messages"]
    assert [m["content"] for m in messages if m["role"] == "user"] == [TUNE, TUNE + "\n\n" + SECOND_TUNE]
    answers = [m["content"] for m in messages if m["role"] == "assistant"]
    for turn, answer in enumerate(answers, start=1):
        assert answer.startswith(header) and len(answer) > len(header)  # the model wrote a body
        (tune,) = extract_tunes(answer)
        assert (render_dir / f"turn{turn}-tune1.abc").read_bytes().decode().strip() == tune.abc
        assert (render_dir / f"turn{turn}-tune1.svg").read_text().lstrip().startswith("<?xml")
        assert (render_dir / f"turn{turn}-tune1.mid").read_bytes()[:4] == b"MThd"
        assert (render_dir / f"turn{turn}-tune1.wav").read_bytes()[8:12] == b"WAVE"
