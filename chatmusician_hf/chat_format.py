"""The ChatMusician conversation format, as a chat template and as plain strings, and its sampling defaults.

ChatMusician was trained on ``Human: {instruction}{input} </s> Assistant: {output} </s>`` where ``</s>`` is the
EOS token and no BOS is used. Turns of a multi-turn conversation are joined by one space, and an inference
prompt ends right after ``Assistant: `` so the model writes the answer and then EOS.

Its text-to-ABC prompts describe a tune's header in words, one field a line (``Meter 6/8``, ``Key G``,
``Note Length 1/8``, ``Rhythm jig``): :data:`FIELD_NAMES` holds those words, for the task writer
(``data.tasks``) and the request reader (``constrain.request``) alike.
"""

from __future__ import annotations

EOS = "</s>"
HUMAN = "Human: "
ASSISTANT = "Assistant: "
TURN_END = f" {EOS}"

# ABC header field -> the words ChatMusician's prompts use for it.
FIELD_NAMES = {
    "T": "Title",
    "C": "Composer",
    "O": "Origin",
    "A": "Area",
    "R": "Rhythm",
    "M": "Meter",
    "L": "Note Length",
    "Q": "Tempo",
    "K": "Key",
    "N": "Notes",
    "Z": "Transcription",
    "S": "Source",
    "B": "Book",
    "H": "History",
    "G": "Group",
    "D": "Discography",
}
# The line a form prompt names the form with (``Form AABB``).
FORM_NAME = "Form"

# The {% generation %} markers let TRL's assistant_only_loss find the answer tokens, and the answer's closing
# " </s>" is inside them because ChatMusician trained the model to emit EOS.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'user' -%}"
    "{%- if not loop.first %}{{ ' ' }}{% endif -%}"
    "{{ 'Human: ' + message['content'] + ' </s> ' }}"
    "{%- elif message['role'] == 'assistant' -%}"
    "{{ 'Assistant: ' }}{% generation %}{{ message['content'] + ' </s>' }}{% endgeneration %}"
    "{%- else -%}"
    "{{ raise_exception('The ChatMusician format has only user and assistant turns, got role ' + message['role']) }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt %}{{ 'Assistant: ' }}{% endif -%}"
)

# ChatMusician's sampling settings (its README and generation_config.json): what chat, generate, the Space and the
# merged model's generation_config.json use unless told otherwise.
CHATMUSICIAN_GENERATION_DEFAULTS = dict(
    do_sample=True, temperature=0.2, top_k=40, top_p=0.9, repetition_penalty=1.1, min_new_tokens=10, max_new_tokens=1536
)


def render_conversation(messages: list[dict[str, str]], add_generation_prompt: bool = False) -> str:
    """Render ``messages`` exactly as :data:`CHAT_TEMPLATE` does, without a tokenizer.

    Used where no tokenizer is at hand (prompt files, reports) and as the reference the template is tested against.
    """
    parts: list[str] = []
    for i, message in enumerate(messages):
        role, content = message["role"], message["content"]
        if role == "user":
            parts.append((" " if i else "") + HUMAN + content + TURN_END + " ")
        elif role == "assistant":
            parts.append(ASSISTANT + content + TURN_END)
        else:
            raise ValueError(f"The ChatMusician format has only user and assistant turns, got role {role!r}")
    if add_generation_prompt:
        parts.append(ASSISTANT)
    return "".join(parts)


def inference_prompt(text: str, history: list[tuple[str, str]] | None = None) -> str:
    """The original inference prompt ``'Human: ' + text + ' </s> Assistant: '``, after any earlier turns."""
    messages: list[dict[str, str]] = []
    for user, assistant in history or []:
        messages += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    messages.append({"role": "user", "content": text})
    return render_conversation(messages, add_generation_prompt=True)
