"""How likely the model finds each reference answer: teacher-forced loss on its tokens.

Where the model's files are on this machine (a local deployment, a temporary server, the
base model), the conversation is rendered with the model's chat template exactly as the
scoring server renders it, the reference is appended as the assistant's turn, and the
negative log-likelihood is summed over the assistant's tokens only — the reference and its
end-of-turn token, which is what teaches a model to stop. The aggregate is the loss per
token and its perplexity (exp of it). The model is loaded the way the server loads it
(`core.serving.engine.Engine`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.eval.data import Case


def answer_ids(engine: Any, case: Case) -> tuple[list[int], list[int]] | None:
    """(prompt ids, assistant ids up to and including the end of turn); None when the
    template renders the prompt differently once the answer follows it."""
    tokenizer = engine.tokenizer
    messages = case.messages()
    prompt = engine.render(messages)
    full = tokenizer.apply_chat_template(
        [*messages, {"role": "assistant", "content": case.reference}], tokenize=False
    )
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    full_ids = tokenizer(full, add_special_tokens=False)["input_ids"]
    if full_ids[: len(prompt_ids)] != prompt_ids or len(full_ids) <= len(prompt_ids):
        return None
    answer = full_ids[len(prompt_ids) :]
    stops = set(engine.stop_ids)
    for index, token in enumerate(answer):
        if token in stops:
            answer = answer[: index + 1]
            break
    return prompt_ids, answer


def reference_losses(
    model_dir: str | Path,
    cases: list[Case],
    progress: Callable[[int, int], None] | None = None,
    *,
    engine: Any = None,
) -> dict[int, tuple[float, int]]:
    """case line -> (summed loss over the reference's tokens, how many tokens)."""
    import torch
    from transformers.utils import logging as hf_logging

    from core.serving.engine import Engine

    hf_logging.disable_progress_bar()  # "Loading weights" would draw over the CLI's output
    engine = engine or Engine.load(model_dir)
    model = engine.model
    losses: dict[int, tuple[float, int]] = {}
    for done, case in enumerate(cases, start=1):
        found = answer_ids(engine, case)
        if found is not None:
            prompt_ids, answer = found
            ids = prompt_ids + answer
            if engine.context and len(ids) > engine.context:
                ids = ids[-engine.context :]  # keep the answer; the oldest prompt tokens go
            inputs = torch.tensor([ids], dtype=torch.long, device=engine.device)
            with torch.inference_mode():
                logits = model(input_ids=inputs).logits[0, -len(answer) - 1 : -1].float()
            targets = torch.tensor(answer, dtype=torch.long, device=logits.device)
            total = torch.nn.functional.cross_entropy(logits, targets, reduction="sum")
            losses[case.line] = (float(total), len(answer))
        if progress is not None:
            progress(done, len(cases))
    return losses
