"""Chat rows -> text segments, each marked trainable (assistant replies) or not, through a chat template.

Works with any template that renders a conversation's prefix as a prefix of the whole (the usual
case): each assistant reply is the text between the render of the turns before it (with the
generation prompt) and the render that includes it. So the loss covers exactly what the model
would have to generate, whatever the template, including how the template closes the turn
(`</s>\n`, ChatML's `<|im_end|>\n`).

Alpaca rows become one user turn (the instruction, then data.alpaca_separator and the input when
there is one) and one assistant turn, rendered by the same template.
"""

from __future__ import annotations

from pathlib import Path

from launcher.errors import UserError

CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
PLAIN = (
    "{% for message in messages %}{{ message['role'] + ': ' + message['content'] + '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'assistant:' }}{% endif %}"
)
ROLES = ("system", "user", "assistant")


def template_for(tokenizer, name: str, file: str | None) -> str:
    if file is not None:
        try:
            return Path(file).read_text(encoding="utf-8")
        except OSError as exc:
            raise UserError(f"data.chat_template_file {file}: {exc.strerror}") from None
    if name == "tokenizer" and getattr(tokenizer, "chat_template", None):
        return tokenizer.chat_template
    return PLAIN if name == "plain" else CHATML


def alpaca_messages(instruction: str, extra: str | None, output: str, separator: str) -> list[dict[str, str]]:
    prompt = instruction if not extra else instruction + separator + extra
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": output}]


SHAREGPT_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant"}


def sharegpt_messages(turns) -> list[dict[str, str]] | str:
    """ShareGPT's [{from, value}] as [{role, content}], or the problem with the row."""
    if not isinstance(turns, list):
        return "expected a list of {from, value}"
    out = []
    for k, turn in enumerate(turns):
        if not isinstance(turn, dict) or turn.get("from") not in SHAREGPT_ROLES:
            return f"turn {k}: 'from' is not one of {', '.join(SHAREGPT_ROLES)}"
        out.append({"role": SHAREGPT_ROLES[turn["from"]], "content": turn.get("value")})
    return out


def check_messages(messages) -> str | None:
    """A problem with a chat row, or None."""
    if not isinstance(messages, list) or not messages:
        return "expected a non-empty list of {role, content}"
    for k, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("content"), str):
            return f"message {k}: expected {{role, content}} with text content"
        if message.get("role") not in ROLES:
            return f"message {k}: role {message.get('role')!r} is not one of {', '.join(ROLES)}"
    if not any(m["role"] == "assistant" for m in messages):
        return "no assistant message to learn from"
    return None


def segments(tokenizer, template: str, messages: list[dict[str, str]]) -> list[tuple[str, bool]]:
    """[(text, trainable)] whose concatenation is the rendered conversation."""

    def render(turns, prompt: bool) -> str:
        return tokenizer.apply_chat_template(turns, chat_template=template, tokenize=False,
                                             add_generation_prompt=prompt)

    out, done = [], ""
    for k, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before, through = render(messages[:k], True), render(messages[:k + 1], False)
        if not before.startswith(done) or not through.startswith(before):
            raise UserError("data.chat_template: the template does not render a conversation's beginning as a "
                            "prefix of the whole, so reply tokens cannot be found; use another template")
        out += [(before[len(done):], False), (through[len(before):], True)]
        done = through
    # a conversation that ends on a reply was rendered whole by the loop's last `through`
    rest = "" if messages[-1]["role"] == "assistant" else render(messages, False)[len(done):]
    if rest:
        out.append((rest, False))
    return [(text, trainable) for text, trainable in out if text]


def turn_end_id(tokenizer, template: str) -> int | None:
    """The special token the template closes an assistant turn with (EOS, ChatML's `<|im_end|>`, Llama 3's
    `<|eot_id|>`), or None when it closes turns with ordinary text (plain) or nothing.

    Found by rendering a one-turn probe conversation: the last special token of its reply segment (one the
    vocabulary marks special, as `<|im_end|>` is in Qwen's). Reply text holds none of its own (an unknown
    character becomes UNK, which is never a turn end).
    """
    probe = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "a"}]
    reply = "".join(text for text, trainable in segments(tokenizer, template, probe) if trainable)
    special = {i for i, token in tokenizer.added_tokens_decoder.items() if token.special} - {tokenizer.unk_token_id}
    ends = [i for i in tokenizer(reply, add_special_tokens=False)["input_ids"] if i in special]
    return ends[-1] if ends else None
