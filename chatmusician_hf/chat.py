"""``chatmusician-hf chat``: talk to a ChatMusician model in the terminal, with streamed answers.

Type or paste a message over as many lines as you like; an empty line sends it, so a pasted ABC tune (which holds
no blank lines) goes through whole. Text that itself holds blank lines (several tunes, a tune and then a question)
can be pasted too: on terminals with bracketed paste, which most have, blank lines inside a paste are kept; press
Enter on an empty line after the paste to send. Elsewhere, put the text between two lines that hold only three
double quotes. Ctrl-D sends what is pending and quits; Ctrl-C stops an answer early and keeps what was written.

Commands, typed alone as a message: /reset forgets the conversation, /save FILE writes it as JSON, /help, /quit.

The conversation is kept inside the model's context by dropping its oldest turns (--max_prompt_tokens). With
--render DIR, every tune found in an answer is written as turnN-tuneM.abc, .svg, .mid and .wav, and the validator's
verdict is printed.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TextIO

from .configs import make_stage_parser
from .generate import check_generation
from .inference import (
    GenerationArguments,
    LoadedModel,
    ModelArguments,
    PromptTooLongError,
    fit_prompt,
    load_model,
    stream_answer,
)
from .text_input import text_problem

PASTE_START, PASTE_END = "\x1b[200~", "\x1b[201~"
BRACKETED_PASTE_ON, BRACKETED_PASTE_OFF = "\x1b[?2004h", "\x1b[?2004l"
FENCE = '"""'
COMMANDS = {
    "/reset": "forget the conversation so far",
    "/save FILE": "write the conversation (and the settings) to FILE as JSON",
    "/help": "show this help",
    "/quit": "leave (Ctrl-D does the same)",
}


@dataclass
class ChatArguments:
    render: str | None = field(
        default=None,
        metadata={"help": "Folder to write each tune found in an answer to, as .abc, .svg, .mid and .wav."},
    )
    user_prompt: str = field(default="You: ", metadata={"help": "Text shown before your message."})
    assistant_prompt: str = field(
        default="ChatMusician: ", metadata={"help": "Text shown before each answer."}
    )


def read_message(stdin: TextIO) -> str | None:
    """One message from ``stdin``: lines up to an empty line, blank lines kept inside pastes and fences.

    Returns None at end of input with nothing pending. A ``/command`` on the first line returns at once.
    """
    lines: list[str] = []
    in_paste = in_fence = False
    while True:
        raw = stdin.readline()
        if not raw:
            return "\n".join(lines) if lines else None
        line = raw.rstrip("\r\n")
        pasted_end = PASTE_END in line
        if PASTE_START in line:
            in_paste = True
        line = line.replace(PASTE_START, "").replace(PASTE_END, "")
        if pasted_end:
            in_paste = False
            if not line:
                # the newline that ended the paste: the next empty line sends
                continue
        if line.strip() == FENCE and not in_paste:
            in_fence = not in_fence
            if not in_fence:
                return "\n".join(lines)
            continue
        if in_paste or in_fence:
            lines.append(line)
            continue
        if not lines and line.startswith("/"):
            return line.strip()
        if not line.strip():
            if lines:
                return "\n".join(lines)
            continue
        lines.append(line)


def render_tunes(answer: str, out_dir: Path, prefix: str) -> list[tuple[str, object]]:
    """Write every tune in ``answer`` to ``out_dir/<prefix>-tuneN.*``; returns (stem, RenderResult or error text)."""
    from .music import AbcError, MissingToolError, extract_tunes, render_abc

    results = []
    for number, tune in enumerate(extract_tunes(answer), start=1):
        stem = f"{prefix}-tune{number}"
        try:
            result = render_abc(tune.abc, out_dir, formats=("abc", "svg", "mid", "wav"), stem=stem)
        except (AbcError, MissingToolError) as err:
            results.append((stem, str(err)))
            continue
        results.append((stem, result))
    return results


def describe_render(stem: str, result, out: TextIO) -> None:
    if isinstance(result, str):
        out.write(f"[{stem}] not rendered: {result}\n")
        return
    written = ", ".join(str(path) for path in result.paths.values())
    out.write(f"[{stem}] wrote {written}\n{result.report.summary()}\n")
    for tool, message in result.messages.items():
        out.write(f"[{stem}] {tool}: {message}\n")


class ChatSession:
    """The conversation state and the loop that reads messages and streams answers."""

    def __init__(
        self, loaded: LoadedModel, generation: GenerationArguments, args: ChatArguments, model_id: str
    ):
        self.loaded = loaded
        self.generation = generation
        self.args = args
        self.model_id = model_id
        self.history: list[tuple[str, str]] = []
        self.turn = 0

    def save(self, path: str) -> str:
        messages = []
        for user, assistant in self.history:
            messages += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
        record = {"model": self.model_id, "generation": asdict(self.generation), "messages": messages}
        target = Path(path).expanduser()
        target.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return f"saved {len(self.history)} turn(s) to {target}"

    def command(self, line: str) -> str | None:
        """Run a /command; returns the text to show, or None to quit."""
        name, _, argument = line.partition(" ")
        if name in ("/quit", "/exit"):
            return None
        if name == "/reset":
            self.history.clear()
            return "conversation cleared"
        if name == "/save":
            if not argument.strip():
                return "usage: /save FILE"
            try:
                return self.save(argument.strip())
            except OSError as err:
                return f"could not save: {err}"
        if name == "/help":
            return "\n".join(f"  {usage:<12} {text}" for usage, text in COMMANDS.items())
        return f"unknown command {name!r}; commands: {', '.join(c.split()[0] for c in COMMANDS)}"

    def answer(self, message: str, out: TextIO) -> str | None:
        problem = text_problem(message)
        if problem:
            out.write(f"[not sent] the message {problem}\n")
            return None
        try:
            prompt = fit_prompt(
                self.loaded.tokenizer,
                message,
                self.history,
                self.generation.max_prompt_tokens,
                self.generation.answer_prefix,
            )
        except PromptTooLongError as err:
            out.write(f"[not sent] {err}\n")
            return None
        if prompt.dropped_turns:
            out.write(f"[{prompt.dropped_turns} oldest turn(s) dropped to fit the context]\n")
        self.history = prompt.history
        out.write(self.args.assistant_prompt)
        out.flush()
        pieces: list[str] = []
        try:
            for piece in stream_answer(self.loaded, prompt, self.generation):
                pieces.append(piece)
                out.write(piece)
                out.flush()
        except KeyboardInterrupt:
            # Ctrl-C lands inside the stream, whose cleanup stops the generation thread.
            out.write(" [stopped]")
        answer = "".join(pieces).strip()
        out.write("\n")
        self.turn += 1
        self.history.append((message, answer))
        if self.args.render:
            rendered = render_tunes(answer, Path(self.args.render), f"turn{self.turn}")
            for stem, result in rendered:
                describe_render(stem, result, out)
            if not rendered:
                out.write("[render] no ABC tune in this answer\n")
        return answer

    def run(self, stdin: TextIO, out: TextIO) -> None:
        interactive = stdin.isatty() and out.isatty()
        if interactive:
            out.write(BRACKETED_PASTE_ON)
        out.write(
            f"Chatting with {self.model_id}. An empty line sends; blank lines inside a paste or between lines of "
            f"{FENCE} are kept. /help lists commands.\n"
        )
        try:
            while True:
                out.write(self.args.user_prompt)
                out.flush()
                message = read_message(stdin)
                if message is None:
                    break
                if message.startswith("/") and "\n" not in message:
                    reply = self.command(message)
                    if reply is None:
                        break
                    out.write(reply + "\n")
                    continue
                self.answer(message, out)
        finally:
            if interactive:
                out.write(BRACKETED_PASTE_OFF)
            out.write("\n")
            out.flush()


def main(
    model_args: ModelArguments, generation: GenerationArguments, chat_args: ChatArguments
) -> ChatSession:
    print(
        f"[chat] loading {model_args.model}"
        + (f" + adapter {model_args.adapter}" if model_args.adapter else "")
    )
    check_generation(generation)
    loaded = load_model(model_args)
    session = ChatSession(loaded, generation, chat_args, model_args.model)
    # bytes that are not UTF-8 reach answer() as lone surrogates, which it refuses with a message, instead of
    # ending the session with a decoding error
    sys.stdin.reconfigure(errors="surrogateescape")
    session.run(sys.stdin, sys.stdout)
    return session


def make_parser(subparsers=None):
    return make_stage_parser(
        subparsers,
        "chat",
        [ModelArguments, GenerationArguments, ChatArguments],
        help="Chat with a ChatMusician model in the terminal (multi-line input, streaming, --render DIR).",
        description=__doc__,
    )


if __name__ == "__main__":
    from .cli import run_as_main

    run_as_main("chat")
