"""Training, the local engine and the saved MLflow model see the same tokens and answer alike.

The trained twin carries Phi-3-mini's tokenizer files, whose post-processor puts `<s>` first
in every plain encoding; training never sees `<s>`. These tests follow one question through
the three paths that encode it, and through the two that answer it with the tutorial's
request parameters (`return_full_text: true` among them).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

QUESTION = "What is the capital of Peru?"
# The tutorial's Prompt flow tool sends these with every request.
TUTORIAL_PARAMS = {"temperature": 0.7, "max_new_tokens": 128, "do_sample": True}
TUTORIAL_PARAMS["return_full_text"] = True
MARKERS = ("<|user|>", "<|assistant|>", "<|end|>", "<|system|>", "<|endoftext|>", "<s>")


def prompt_template(mlflow_model: Path) -> str:
    import yaml

    meta = yaml.safe_load((mlflow_model / "MLmodel").read_text())
    return meta["metadata"]["prompt_template"]


def test_training_the_engine_and_mlflow_encode_a_question_alike(trained_model_dir: Path) -> None:
    import mlflow
    from transformers import AutoTokenizer

    from core.serving.engine import Engine

    hf_model, mlflow_model = trained_model_dir / "hf_model", trained_model_dir / "mlflow_model"
    tokenizer = AutoTokenizer.from_pretrained(hf_model)
    asked = [{"role": "user", "content": QUESTION}]
    # What training saw: TRL tokenizes the rendered conversation without special tokens.
    trained = tokenizer.apply_chat_template(
        [*asked, {"role": "assistant", "content": "The capital of Peru is Lima."}],
        return_dict=True,
    )["input_ids"]
    prompt_ids = tokenizer.apply_chat_template(asked, add_generation_prompt=True, return_dict=True)[
        "input_ids"
    ]
    assert trained[: len(prompt_ids)] == prompt_ids and prompt_ids[0] == 32010  # <|user|>

    engine = Engine.load(mlflow_model, device="cpu", threads=1)
    assert engine.encode(engine.render(QUESTION), 8) == prompt_ids
    assert engine.encode(engine.render(asked), 8) == prompt_ids

    pipeline = mlflow.transformers.load_model(str(mlflow_model))
    text = prompt_template(mlflow_model).format(prompt=QUESTION)
    assert pipeline.preprocess(text)["input_ids"][0].tolist() == prompt_ids  # no <s> first
    assert tokenizer(text)["input_ids"] == prompt_ids  # the saved tokenizer, for any caller
    saved = json.loads((hf_model / "tokenizer.json").read_text())
    assert "<s>" not in json.dumps(saved["post_processor"])


def test_answers_stop_at_end_of_turn_without_the_prompt(trained_model_dir: Path) -> None:
    import mlflow
    import torch
    from transformers import AutoTokenizer

    from core.serving.engine import Engine
    from core.serving.params import parse_score_request

    mlflow_model = trained_model_dir / "mlflow_model"
    request = parse_score_request({"input_data": [QUESTION], "params": TUTORIAL_PARAMS})
    engine = Engine.load(mlflow_model, device="cpu", threads=1)
    torch.manual_seed(0)
    [answer] = engine.generate(
        [engine.encode(engine.render(QUESTION), 128)], request.generation, lambda: [False]
    )
    assert answer.tokens < 128  # stopped at <|end|>, not cut at max_new_tokens
    assert answer.text.startswith("The capital of") and not any(m in answer.text for m in MARKERS)

    # What Azure ML's no-code MLflow deployment runs: the pyfunc, with the request's params.
    pyfunc = mlflow.pyfunc.load_model(str(mlflow_model))
    torch.manual_seed(0)
    [reply] = pyfunc.predict([QUESTION], params=TUTORIAL_PARAMS)
    assert reply.startswith("The capital of"), reply
    assert QUESTION not in reply and not any(marker in reply for marker in MARKERS)
    tokenizer = AutoTokenizer.from_pretrained(trained_model_dir / "hf_model")
    assert len(tokenizer(reply, add_special_tokens=False)["input_ids"]) < 120  # it stopped
