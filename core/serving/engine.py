"""A loaded model: prompts rendered with its chat template, batched greedy/sampled generation.

Used by one thread only (the batcher's worker), except `render`, which touches nothing but
the chat template. Generation stops at the end-of-turn token the trainer taught the model
(`<|end|>`, as trainer/phi3_chat.py sets it) and at the tokenizer's and generation
config's eos, so serving and training agree on where an answer ends. Batches are
left-padded, so every row's answer starts at the same column.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.serving.modelfiles import ModelFiles, find_model_files
from core.serving.params import BadRequest, ChatInput

END_OF_TURN = "<|end|>"
log = logging.getLogger("phiops.serving")


def default_threads() -> int:
    """Half the CPUs (at least one): a blue and a green deployment, or a server and the
    program calling it, then share the machine without oversubscribing it. Torch's default
    (every core) makes its threads spin against each other as soon as two processes
    generate at once, which on a small machine costs several times the work itself."""
    return max(1, (os.cpu_count() or 2) // 2)


class PromptTooLong(BadRequest):
    """The prompt and the answer asked for do not fit the model's context."""


@dataclass
class Answer:
    text: str
    tokens: int
    finished: bool = True  # it ended at a stop token, not at max_new_tokens (or a cancel)


def _stop_ids(tokenizer: Any, model: Any) -> list[int]:
    """End of turn first, then the tokenizer's and the generation config's eos."""
    vocab = tokenizer.get_vocab()
    ids = [vocab[END_OF_TURN]] if END_OF_TURN in vocab else []
    configured = model.generation_config.eos_token_id
    if configured is None:
        configured = []
    elif isinstance(configured, int):
        configured = [configured]
    for token in (tokenizer.eos_token_id, *configured):
        if token is not None and token not in ids:
            ids.append(int(token))
    return ids


@functools.cache
def _hf_classes() -> tuple[type, type]:
    """Subclasses of transformers' streamer and stopping criterion, made on first use."""
    import torch
    from transformers import StoppingCriteria, TextIteratorStreamer

    class CallbackStreamer(TextIteratorStreamer):
        """TextIteratorStreamer's decoding (whole words, no broken characters), handing each
        piece to a callback instead of a blocking queue, so the event loop never waits."""

        def __init__(self, tokenizer: Any, emit: Callable[[str], None]) -> None:
            super().__init__(tokenizer, skip_prompt=False, skip_special_tokens=True)
            self.emit = emit

        def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
            if text:
                self.emit(text)

    class RowsCancelled(StoppingCriteria):
        """Stops each row whose request was cancelled (timed out, client gone, shutdown)."""

        def __init__(self, cancelled: Callable[[], list[bool]]) -> None:
            self.cancelled = cancelled

        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            return torch.tensor(self.cancelled(), dtype=torch.bool, device=input_ids.device)

    return CallbackStreamer, RowsCancelled


class _Fanout:
    """One `generate` streamer that hands each row's tokens to that row's own streamer."""

    def __init__(self, rows: Sequence[Any | None], stop_ids: list[int]) -> None:
        self.rows = list(rows)
        self.stop = set(stop_ids)
        self.done = [row is None for row in self.rows]
        self.prompt_seen = False

    def put(self, value: Any) -> None:
        import torch

        if not self.prompt_seen:  # generate hands over the prompt first
            self.prompt_seen = True
            return
        tokens = value.reshape(-1).tolist()
        for index, token in enumerate(tokens):
            if self.done[index]:
                continue
            if token in self.stop:
                self.done[index] = True
                self.rows[index].end()
            else:
                self.rows[index].put(torch.tensor([token]))

    def end(self) -> None:
        for index, row in enumerate(self.rows):
            if not self.done[index]:
                self.done[index] = True
                row.end()


class Engine:
    """A model and its tokenizer, ready to generate."""

    def __init__(self, files: ModelFiles, tokenizer: Any, model: Any, device: str) -> None:
        self.files = files
        self.tokenizer = tokenizer
        self.model = model
        self.device = device
        self.stop_ids = _stop_ids(tokenizer, model)
        self.pad_id = tokenizer.pad_token_id
        if self.pad_id is None:
            self.pad_id = self.stop_ids[0] if self.stop_ids else 0
        self.context = int(getattr(model.config, "max_position_embeddings", 0) or 0)
        # No token covers more characters than the vocabulary's longest, so a text longer
        # than context × that is too long without being tokenized.
        self.longest_token = max((len(token) for token in tokenizer.get_vocab()), default=1)

    @classmethod
    def load(cls, path: str | Path, device: str | None = None, threads: int = 0) -> Engine:
        """Load the model; on CPU with `threads` torch threads (0: `default_threads()`)."""
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        started = time.monotonic()
        torch.set_num_threads(threads or default_threads())
        files = find_model_files(path)
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        tokenizer = AutoTokenizer.from_pretrained(str(files.tokenizer_dir))
        tokenizer.padding_side = "left"
        # bf16 on a GPU that has it; fp32 on a CPU, where a bf16 checkpoint (the trainer
        # saves in the base's dtype, bf16 for Phi-3) would otherwise compute in emulated bf16.
        dtype = torch.float32 if device != "cuda" else None
        if device == "cuda" and torch.cuda.is_bf16_supported():
            dtype = torch.bfloat16
        model = AutoModelForCausalLM.from_pretrained(
            str(files.model_dir), **({"dtype": dtype} if dtype is not None else {})
        )
        model.to(device)
        model.eval()
        engine = cls(files, tokenizer, model, device)
        log.info(
            "loaded %s model from %s on %s (%d threads) in %.1f s (stop tokens %s)",
            files.kind,
            files.model_dir,
            device,
            torch.get_num_threads(),
            time.monotonic() - started,
            engine.stop_ids,
        )
        return engine

    # -- prompts -------------------------------------------------------------------------

    def render(self, item: str | ChatInput) -> str:
        """The text the model sees: chat messages through the chat template with the
        assistant's turn opened; a plain string as one user turn (MLflow's prompt template
        when the model has one), as an Azure ML deployment of the same model does."""
        if isinstance(item, str):
            if self.files.prompt_template:
                return self.files.prompt_template.replace("{prompt}", item)
            if not self.tokenizer.chat_template:
                return item
            item = [{"role": "user", "content": item}]
        if not self.tokenizer.chat_template:
            raise BadRequest("this model has no chat template, so it takes plain strings only")
        try:
            return self.tokenizer.apply_chat_template(
                item, tokenize=False, add_generation_prompt=True
            )
        except Exception as error:  # the template's own check (e.g. roles must alternate)
            raise BadRequest(f"the chat template refused the messages: {error}") from None

    def encode(self, prompt: str, max_new_tokens: int) -> list[int]:
        """The prompt's token ids; PromptTooLong when it and the answer exceed the context.
        Runs on a request's thread, never on the generation thread."""
        room = self.context - max_new_tokens
        if self.context and len(prompt) > max(room, 0) * max(self.longest_token, 1):
            raise PromptTooLong(
                f"the input is {len(prompt)} characters, more than the model's "
                f"{self.context}-token context can hold with max_new_tokens {max_new_tokens}"
            )
        ids = self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        if self.context and len(ids) + max_new_tokens > self.context:
            raise PromptTooLong(
                f"the input is {len(ids)} tokens and max_new_tokens is {max_new_tokens}, "
                f"more than the model's {self.context}-token context"
            )
        return ids

    # -- generation ----------------------------------------------------------------------

    def generate(
        self,
        rows: list[list[int]],
        generation: dict[str, Any],
        cancelled: Callable[[], list[bool]],
        emitters: Sequence[Callable[[str], None] | None] = (),
    ) -> list[Answer]:
        """One left-padded `generate` call for every row; `emitters[i]` streams row i."""
        import torch

        streamer_class, cancel_class = _hf_classes()
        width = max(len(ids) for ids in rows)
        input_ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        attention = torch.zeros((len(rows), width), dtype=torch.long)
        for index, ids in enumerate(rows):
            input_ids[index, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
            attention[index, width - len(ids) :] = 1
        streams = [
            streamer_class(self.tokenizer, emit) if emit is not None else None
            for emit in (list(emitters) or [None] * len(rows))
        ]
        extra: dict[str, Any] = {}
        if any(stream is not None for stream in streams):
            extra["streamer"] = _Fanout(streams, self.stop_ids)
        from transformers import StoppingCriteriaList

        with torch.inference_mode():
            output = self.model.generate(
                input_ids=input_ids.to(self.device),
                attention_mask=attention.to(self.device),
                eos_token_id=self.stop_ids,
                pad_token_id=self.pad_id,
                stopping_criteria=StoppingCriteriaList([cancel_class(cancelled)]),
                **generation,
                **extra,
            )
        answers = []
        stop = set(self.stop_ids)
        for row in output[:, width:].tolist():
            kept, finished = [], False
            for token in row:
                if token in stop:
                    finished = True
                    break
                kept.append(token)
            text = self.tokenizer.decode(kept, skip_special_tokens=True)
            answers.append(Answer(text, len(kept), finished))
        return answers
