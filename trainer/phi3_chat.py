"""Phi-3's chat format, and the tokenizer fixes that make a fine-tuned model stop talking.

A model that "never stops" was trained on one end-of-turn token and served with another.
Here the chat template decides both: training renders assistant turns ending in `<|end|>`,
and the saved tokenizer and generation config stop generation at `<|end|>`.
"""

from __future__ import annotations

END_OF_TEXT = "<|endoftext|>"
END_OF_TURN = "<|end|>"
ROLE_TOKENS = ["<|user|>", "<|assistant|>", "<|system|>"]
SPECIAL_TOKENS = [END_OF_TEXT, END_OF_TURN, *ROLE_TOKENS]
FALLBACK_PAD = "<|pad|>"

# Phi-3-mini-4k-instruct's chat template, byte for byte as TRL stores it
# (trl/chat_templates/phi3.jinja), so TRL recognises it and can swap in its training
# variant (with generation markers) for assistant-only loss.
PHI3_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'system' %}{{'<|system|>\n' + "
    "message['content'] + '<|end|>\n'}}{% elif message['role'] == 'user' %}{{'<|user|>\n' + "
    "message['content'] + '<|end|>\n'}}{% elif message['role'] == 'assistant' %}"
    "{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}"
)


# Training only, for data with `weight: 0` assistant turns: TRL's Phi-3 training variant
# (generation markers around what the assistant says, so assistant-only loss can mask the
# rest), except that a turn with weight 0 gets no markers and so no loss. It renders the
# same text as PHI3_CHAT_TEMPLATE; the saved tokenizer keeps that one.
WEIGHTED_TRAINING_TEMPLATE = (
    "{%- for message in messages %}{%- if message['role'] == 'system' %}{{- '<|system|>\n' + "
    "message['content'] + '<|end|>\n' }}{%- elif message['role'] == 'user' %}{{- '<|user|>\n'"
    " + message['content'] + '<|end|>\n' }}{%- elif message['role'] == 'assistant' %}"
    "{{- '<|assistant|>\n' }}{%- if message.get('weight') == 0 %}{{- message['content'] + "
    "'<|end|>\n' }}{%- else %}{%- generation %}{{- message['content'] + '<|end|>\n' }}"
    "{%- endgeneration %}{%- endif %}{%- endif %}{%- endfor %}{%- if add_generation_prompt %}"
    "{{- '<|assistant|>\n' }}{%- elif messages[-1]['role'] == 'assistant' and "
    "messages[-1].get('weight') != 0 %}{%- generation %}{{- eos_token }}{%- endgeneration %}"
    "{%- else %}{{- eos_token }}{%- endif %}"
)


def ensure_chat_template(tokenizer) -> bool:
    """Give a tokenizer without a chat template Phi-3's; True when one was added."""
    if tokenizer.chat_template:
        return False
    tokenizer.chat_template = PHI3_CHAT_TEMPLATE
    return True


def ensure_pad_token(tokenizer) -> bool:
    """Make sure padding uses a real token, never the unknown token; True if one was added.

    The end-of-turn token is refused too: it is what the model must learn to emit, and some
    collators mask the pad id out of the labels. Prefer `<|endoftext|>` (Phi-3's own pad);
    only when the vocabulary lacks it is a new `<|pad|>` added (the caller then resizes the
    model's embeddings).
    """
    pad = tokenizer.pad_token
    if pad is not None and pad not in (tokenizer.unk_token, END_OF_TURN):
        return False
    if END_OF_TEXT in tokenizer.get_vocab():
        tokenizer.pad_token = END_OF_TEXT
        return False
    tokenizer.add_special_tokens({"pad_token": FALLBACK_PAD})
    return True


def encode_as_chat_template(tokenizer) -> bool:
    """Make plain `tokenizer(text)` add no special tokens, as the chat template's own
    tokenization does not; True when the tokenizer was changed.

    Phi-3's tokenizer.json puts `<s>` before every plain encoding (its post-processor;
    transformers 5 reads that, not tokenizer_config's `add_bos_token: false`), while its
    chat template renders no `<s>` and TRL tokenizes chats without special tokens: training
    never sees `<s>`. MLflow's text-generation pipeline encodes the rendered prompt as plain
    text, so it would start every request with a token the model never saw first. Turning
    `add_bos_token` off rewrites the post-processor, and the saved tokenizer encodes a
    prompt the way training did, for every caller.
    """
    probe = "x"
    plain = tokenizer(probe, add_special_tokens=False)["input_ids"]
    if tokenizer(probe)["input_ids"] == plain:
        return False
    tokenizer.add_bos_token = False
    tokenizer.add_eos_token = False
    if tokenizer(probe)["input_ids"] != plain:
        raise ValueError("could not stop the tokenizer adding special tokens to plain text")
    return True


def stop_token_ids(tokenizer) -> list[int]:
    """The ids generation must stop at: the end-of-turn token first, then the tokenizer's eos."""
    vocab = tokenizer.get_vocab()
    ids = [vocab[END_OF_TURN]] if END_OF_TURN in vocab else []
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids


def align_generation_config(model, tokenizer) -> None:
    """Stop generation at end of turn and pad with the tokenizer's pad token."""
    config = model.generation_config
    current = config.eos_token_id
    current = [] if current is None else [current] if isinstance(current, int) else list(current)
    wanted = stop_token_ids(tokenizer)
    config.eos_token_id = wanted + [i for i in current if i not in wanted]
    config.pad_token_id = tokenizer.pad_token_id
    model.config.pad_token_id = tokenizer.pad_token_id
