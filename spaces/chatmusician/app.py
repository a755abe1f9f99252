"""ChatMusician Space: chat with the model, see the score of every tune it writes, and listen to it.

Run locally with any model folder or Hub ID (``CHATMUSICIAN_MODEL``, default ``m-a-p/ChatMusician``)::

    CHATMUSICIAN_MODEL=outputs/tiny-base python spaces/chatmusician/app.py     # serves on http://127.0.0.1:7860

Settings (environment variables): ``CHATMUSICIAN_MODEL``, ``CHATMUSICIAN_ADAPTER`` (a PEFT adapter on top),
``CHATMUSICIAN_DEVICE`` (auto, cpu, cuda), ``CHATMUSICIAN_MAX_NEW_TOKENS`` (cap on answer length, 1536),
``CHATMUSICIAN_MAX_INPUT_CHARS`` (cap on a message, 12000), ``CHATMUSICIAN_MAX_ABC_CHARS`` (cap on pasted ABC,
20000), ``CHATMUSICIAN_MAX_AUDIO_SECONDS`` (longest music rendered to MIDI and audio, 600),
``CHATMUSICIAN_CONCURRENCY`` (answers generated at once, 2), and gradio's own ``GRADIO_SERVER_NAME`` /
``GRADIO_SERVER_PORT``.

Scores, MIDI and audio come from abcm2ps, abc2midi and fluidsynth (``packages.txt``) through
:mod:`chatmusician_hf.music`, which removes directives that read files or pass raw code, makes every SVG inert and
holds each output to its budget. Text and numbers from clients are checked once, here, with
:mod:`chatmusician_hf.text_input`; a refusal is one line. Every request renders into its own temporary folder,
removed as soon as gradio has taken its copies; gradio's copies are removed after ten minutes, and everything when
the server stops.
"""

from __future__ import annotations

import atexit
import base64
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from chatmusician_hf.constrain.request import RequestError, read_abc_header
from chatmusician_hf.inference import (
    GenerationArguments,
    LoadedModel,
    ModelArguments,
    PromptTooLongError,
    fit_prompt,
    load_model,
    logits_processors,
    stream_answer,
)
from chatmusician_hf.music import AbcError, MissingToolError, extract_tunes, render_abc
from chatmusician_hf.music.budget import OutputBudget
from chatmusician_hf.text_input import TextInputError, finite_number, text_problem

# Everything this app writes lives under one folder removed at exit: each request's renders, and gradio's cached
# copies too unless GRADIO_TEMP_DIR says otherwise (gradio deletes its files at shutdown but leaves their folders).
TEMP_ROOT = Path(tempfile.mkdtemp(prefix="chatmusician-space-"))
atexit.register(shutil.rmtree, TEMP_ROOT, ignore_errors=True)
os.environ.setdefault("GRADIO_TEMP_DIR", str(TEMP_ROOT / "gradio-cache"))

import gradio as gr  # noqa: E402  (reads GRADIO_TEMP_DIR at import)

MODEL_ID = os.environ.get("CHATMUSICIAN_MODEL", "m-a-p/ChatMusician")
ADAPTER = os.environ.get("CHATMUSICIAN_ADAPTER") or None
MAX_NEW_TOKENS = int(os.environ.get("CHATMUSICIAN_MAX_NEW_TOKENS", "1536"))
MAX_INPUT_CHARS = int(os.environ.get("CHATMUSICIAN_MAX_INPUT_CHARS", "12000"))
MAX_ABC_CHARS = int(os.environ.get("CHATMUSICIAN_MAX_ABC_CHARS", "20000"))
CONCURRENCY = int(os.environ.get("CHATMUSICIAN_CONCURRENCY", "2"))
BUDGET = OutputBudget(
    max_audio_seconds=float(os.environ.get("CHATMUSICIAN_MAX_AUDIO_SECONDS", OutputBudget.max_audio_seconds))
).check()
# Older turns beyond this are dropped before tokenizing, so a huge history sent by a client costs nothing.
MAX_HISTORY_CHARS = 4 * MAX_INPUT_CHARS
MAX_PREFIX_CHARS = 2000
MAX_HEADER_CHARS = 200
MAX_TUNES_SHOWN = 4
CACHE_SECONDS = 600

try:  # ZeroGPU: a GPU is attached only while a decorated function runs; elsewhere the decorator is a no-op.
    import spaces

    gpu = spaces.GPU(duration=120)
except (ImportError, AttributeError):

    def gpu(function):
        return function


# On ZeroGPU the model is moved to "cuda" at startup (the GPU itself arrives with each decorated call).
DEVICE = os.environ.get("CHATMUSICIAN_DEVICE") or ("cuda" if os.environ.get("SPACES_ZERO_GPU") else "auto")
DEFAULTS = GenerationArguments()
LOADED = load_model(ModelArguments(model=MODEL_ID, adapter=ADAPTER, device=DEVICE))
CONSTRAINED = None  # built on first use: the constrained decoder is optional

EXAMPLES = [
    # From the original ChatMusician README (text to ABC).
    "Using ABC notation, recreate the given text as a musical score.\nMeter C\n"
    "Notes The parts are commonly interchanged.\nTranscription 1997 by John Chambers\nKey D\nNote Length 1/8\n"
    "Rhythm reel",
    # Chords.
    "Write a tune in ABC notation over this chord progression, one chord per bar: G, C, D, G, Em, C, D7, G.",
    # Melody / motif.
    "Develop this opening motif into a complete 16-bar tune in ABC notation.\nX:1\nM:6/8\nL:1/8\nK:D\n"
    "|: A | dfe dcB | AFA D2",
    # Musical form.
    "Compose a waltz in 3/4 in G major with the musical form AABB (two repeated 8-bar parts), in ABC notation.",
]


class InputRefused(ValueError):
    """Input the app will not process; the message says why and is shown to the user."""


def check_text(text, limit: int, what: str) -> str:
    if not isinstance(text, str):
        raise InputRefused(f"The {what} must be text.")
    problem = text_problem(text)
    if problem:
        raise InputRefused(f"The {what} {problem}.")
    if len(text) > limit:
        raise InputRefused(f"The {what} is {len(text):,} characters long; the limit is {limit:,}.")
    if not text.strip():
        raise InputRefused(f"The {what} is empty.")
    return text


@contextmanager
def request_dir() -> Iterator[Path]:
    """A private folder for one request's files, removed when the request is done."""
    path = Path(tempfile.mkdtemp(prefix="request-", dir=TEMP_ROOT))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def score_html(svg_pages: list[Path]) -> str:
    # Scores are shown as <img> data URIs: an SVG inside <img> can run no script and load nothing. The SVGs are
    # already made inert by the ABC layer; this keeps the page safe should a future abcm2ps find a new way out.
    images = []
    for page in svg_pages:
        data = base64.b64encode(page.read_bytes()).decode("ascii")
        images.append(f'<img class="score-page" alt="score" src="data:image/svg+xml;base64,{data}">')
    return '<div class="score">' + "".join(images) + "</div>"


def render_tunes(tunes: list[str], folder: Path) -> tuple[str, str | None, list[str], str]:
    """(score HTML, first WAV, downloadable files, validation text) for ``tunes`` rendered into ``folder``."""
    pages: list[Path] = []
    audio = None
    files: list[str] = []
    notes: list[str] = []
    for number, abc in enumerate(tunes[:MAX_TUNES_SHOWN], start=1):
        label = f"Tune {number}" if len(tunes) > 1 else "Tune"
        try:
            result = render_abc(
                abc, folder, formats=("abc", "svg", "mid", "wav"), stem=f"tune{number}", budget=BUDGET
            )
        except (AbcError, MissingToolError) as err:
            notes.append(f"{label}: not rendered: {err}")
            continue
        if "svg" in result.paths:
            pages += [result.paths["svg"], *result.extra_pages]
        if audio is None and "wav" in result.paths:
            audio = str(result.paths["wav"])
        files += [str(result.paths[kind]) for kind in ("abc", "mid", "wav", "svg") if kind in result.paths]
        notes.append(f"{label}: {result.report.summary()}")
        notes += [f"{label}: {tool} said: {message}" for tool, message in result.messages.items()]
    if len(tunes) > MAX_TUNES_SHOWN:
        notes.append(f"{len(tunes) - MAX_TUNES_SHOWN} more tune(s) not shown.")
    return score_html(pages) if pages else "", audio, files, "\n".join(notes)


def render(abc: str):
    """Render pasted ABC without the model: score, audio, downloads and the validator's messages."""
    try:
        abc = check_text(abc, MAX_ABC_CHARS, "ABC text")
    except InputRefused as err:
        yield "", None, [], str(err)
        return
    with request_dir() as folder:
        # A generator so the folder outlives the yield: gradio copies the files out before asking for more.
        yield render_tunes([abc], folder)


def message_text(content) -> str:
    """The text of a chat message, whatever shape gradio gives it in (str, or a list of typed parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        return content.get("text") or ""
    if isinstance(content, list):
        return "".join(message_text(part) for part in content)
    return ""


def history_pairs(messages: list[dict]) -> list[tuple[str, str]]:
    """(user, assistant) turns from gradio's message list, newest kept within MAX_HISTORY_CHARS."""
    pairs, user = [], None
    for message in messages or []:
        role, text = message.get("role"), message_text(message.get("content"))
        problem = text_problem(text)
        if problem:
            raise InputRefused(f"A message in the conversation {problem}.")
        if role == "user":
            user = text
        elif role == "assistant" and user is not None:
            pairs.append((user, text))
            user = None
    kept, size = [], 0
    for user, assistant in reversed(pairs):
        size += len(user) + len(assistant)
        if size > MAX_HISTORY_CHARS:
            break
        kept.insert(0, (user, assistant))
    return kept


def sampling(temperature, top_k, top_p, repetition_penalty, max_new_tokens) -> GenerationArguments:
    """Sampling settings from the sliders, clamped: API clients can send any number."""

    def clamp(value, low, high, kind, label):
        # NaN passes gradio's own range check (every comparison with it is false), and top_p NaN even samples
        try:
            number = finite_number(value, label)
        except TextInputError as err:
            raise InputRefused(f"{err}.") from None
        return kind(min(max(number, low), high))

    return GenerationArguments(
        do_sample=True,
        temperature=clamp(temperature, 0.01, 2.0, float, "Temperature"),
        top_k=clamp(top_k, 0, 1000, int, "Top-k"),
        top_p=clamp(top_p, 0.01, 1.0, float, "Top-p"),
        repetition_penalty=clamp(repetition_penalty, 1.0, 2.0, float, "Repetition penalty"),
        min_new_tokens=min(
            DEFAULTS.min_new_tokens, clamp(max_new_tokens, 1, MAX_NEW_TOKENS, int, "Max new tokens")
        ),
        max_new_tokens=clamp(max_new_tokens, 1, MAX_NEW_TOKENS, int, "Max new tokens"),
        max_prompt_tokens=DEFAULTS.max_prompt_tokens,
    )


def model_for(constrain: bool) -> LoadedModel:
    """The loaded model, decoding freely or with the ABC constraint (same weights either way)."""
    global CONSTRAINED
    if not constrain:
        return LOADED
    if CONSTRAINED is None:
        candidate = replace(LOADED, constrain="abc")
        try:
            logits_processors(candidate)
        except RuntimeError as err:
            raise InputRefused(str(err)) from None
        CONSTRAINED = candidate
    return CONSTRAINED


@gpu
def chat(
    message,
    history,
    temperature,
    top_k,
    top_p,
    repetition_penalty,
    max_new_tokens,
    constrain=True,
    answer_prefix="",
    abc_header="",
):
    """Stream the model's answer into the chat; when it holds tunes, show their score, audio and files."""
    history = list(history or [])
    try:
        message = check_text(message, MAX_INPUT_CHARS, "message")
        answer_prefix = check_text(answer_prefix, MAX_PREFIX_CHARS, "answer start") if answer_prefix else ""
        settings = sampling(temperature, top_k, top_p, repetition_penalty, max_new_tokens)
        if abc_header and constrain:
            settings.abc_header = check_text(abc_header, MAX_HEADER_CHARS, "tune header")
            read_abc_header(settings.abc_header)
        loaded = model_for(bool(constrain))
        prompt = fit_prompt(
            loaded.tokenizer, message, history_pairs(history), settings.max_prompt_tokens, answer_prefix
        )
    except (InputRefused, PromptTooLongError, RequestError) as err:
        raise gr.Error(str(err)) from None
    history += [{"role": "user", "content": message}, {"role": "assistant", "content": ""}]
    answer = ""
    for piece in stream_answer(loaded, prompt, settings):
        answer += piece
        history[-1] = {"role": "assistant", "content": answer}
        yield history, "", gr.skip(), gr.skip(), gr.skip(), gr.skip()
    tunes = [tune.abc for tune in extract_tunes(answer)]
    if not tunes:
        yield history, "", "", None, [], "No ABC tune in this answer."
        return
    with request_dir() as folder:
        yield (history, "", *render_tunes(tunes, folder))


CSS = ".score img { width: 100%; background: white; } #validation textarea { font-family: monospace; }"


def build_demo() -> gr.Blocks:
    with gr.Blocks(title="ChatMusician", delete_cache=(CACHE_SECONDS, CACHE_SECONDS)) as demo:
        gr.Markdown(
            f"# ChatMusician\nA language model that reads and writes music in ABC notation (`{MODEL_ID}`). "
            "Ask for a tune; when the answer holds one, its score, audio and files appear on the right. "
            "Or paste ABC below and render it without the model."
        )
        with gr.Row():
            with gr.Column(scale=3):
                chatbot = gr.Chatbot(
                    label="Conversation", elem_id="chatbot", render_markdown=False, height=460
                )
                message = gr.Textbox(
                    label="Message",
                    lines=4,
                    max_length=MAX_INPUT_CHARS,
                    elem_id="message",
                    placeholder="Ask for a tune, or paste ABC and ask about it. Shift+Enter for a new line.",
                )
                with gr.Row():
                    send = gr.Button("Send", variant="primary", elem_id="send")
                    gr.ClearButton([chatbot, message], value="New conversation")
                gr.Examples(EXAMPLES, inputs=message, label="Examples")
                with gr.Accordion("Sampling", open=False):
                    temperature = gr.Slider(
                        0.01, 2.0, value=DEFAULTS.temperature, step=0.01, label="Temperature"
                    )
                    top_k = gr.Slider(0, 200, value=DEFAULTS.top_k, step=1, label="Top-k")
                    top_p = gr.Slider(0.01, 1.0, value=DEFAULTS.top_p, step=0.01, label="Top-p")
                    repetition_penalty = gr.Slider(
                        1.0, 2.0, value=DEFAULTS.repetition_penalty, step=0.01, label="Repetition penalty"
                    )
                    max_new_tokens = gr.Slider(
                        1,
                        MAX_NEW_TOKENS,
                        value=min(DEFAULTS.max_new_tokens, MAX_NEW_TOKENS),
                        step=1,
                        label="Max new tokens",
                    )
                    constrain = gr.Checkbox(
                        True, label="Music-aware decoding (whole, valid tunes in the key and meter asked for)"
                    )
                    abc_header = gr.Textbox(
                        label="Tune header (music-aware decoding)",
                        max_length=MAX_HEADER_CHARS,
                        placeholder="e.g. M:6/8 K:D L:1/8; empty: read from the message",
                    )
                    answer_prefix = gr.Textbox(
                        label="Start the answer with",
                        lines=2,
                        max_length=MAX_PREFIX_CHARS,
                        placeholder="e.g. X:1 and a few header lines: the model then writes the tune's body",
                    )
            with gr.Column(scale=2):
                score = gr.HTML(label="Score", elem_id="score")
                # The browser's own <audio> player (no waveform): it streams the WAV instead of decoding it all first.
                audio = gr.Audio(
                    label="Audio",
                    type="filepath",
                    interactive=False,
                    elem_id="audio",
                    waveform_options=gr.WaveformOptions(show_recording_waveform=False),
                )
                files = gr.File(
                    label="Downloads (.abc, .mid, .wav, .svg)", file_count="multiple", elem_id="files"
                )
                validation = gr.Textbox(label="Validation", lines=6, interactive=False, elem_id="validation")
        with gr.Accordion("Render ABC without the model", open=True):
            abc = gr.Textbox(
                label="ABC",
                lines=8,
                max_length=MAX_ABC_CHARS,
                elem_id="abc-input",
                placeholder="X:1\nT:...\nM:4/4\nL:1/8\nK:G\n...",
            )
            render_button = gr.Button("Render", elem_id="render-button")

        # The message box is an output so the first streamed update empties it; a refused message stays to edit.
        outputs = [chatbot, message, score, audio, files, validation]
        inputs = [
            message, chatbot, temperature, top_k, top_p, repetition_penalty, max_new_tokens, constrain, answer_prefix,
            abc_header,
        ]  # fmt: skip
        send.click(chat, inputs, outputs, api_name="chat")
        message.submit(chat, inputs, outputs, api_name=False)
        render_button.click(render, abc, [score, audio, files, validation], api_name="render")
    demo.queue(default_concurrency_limit=CONCURRENCY, max_size=128)
    return demo


demo = build_demo()


def _stop_on_sigterm(signum, frame):
    # Spaces and test harnesses stop the server with SIGTERM; turning it into KeyboardInterrupt lets gradio shut
    # down cleanly, which deletes its cached files, and lets atexit remove TEMP_ROOT.
    raise KeyboardInterrupt


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    demo.launch(ssr_mode=False, css=CSS)
