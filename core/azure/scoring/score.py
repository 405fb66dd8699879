"""The Azure ML online deployment's scoring script: phiops's own engine behind Azure ML's
inference server (azureml-inference-server-http), so the deployment answers what the local
scoring server answers — `input_data` strings *and* chat-message lists, generation stopped
at `<|end|>`, the answer and nothing but the answer.

The inference server imports this file, calls `init()` once and `run(raw_body)` for each
`POST /score`. The model is the registered MLflow model, mounted under `AZUREML_MODEL_DIR`
(its folder, e.g. `mlflow_model/`, inside). This file travels in the deployment's code
folder beside the few modules of `core/serving/` it uses (`core/azure/scoring/__init__.py`
assembles it), and imports nothing else of phiops.

`return_full_text` is accepted (the tutorial's client sends `true`) but the answer is
always the answer: the prompt the client sent is not echoed back.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

log = logging.getLogger("phiops.scoring")
engine: Any = None


def init() -> None:
    global engine
    from core.serving.engine import Engine

    folder = os.environ.get("AZUREML_MODEL_DIR", ".")
    engine = Engine.load(folder, threads=int(os.environ.get("PHIOPS_SCORING_THREADS", "0")))


def answer(body: Any) -> list[Any]:
    """The answers to one request body (parsed JSON); BadRequest when it cannot be served."""
    from core.serving.params import parse_score_request

    request = parse_score_request(body)
    max_new = int(request.generation["max_new_tokens"])
    rows = [engine.encode(engine.render(item), max_new) for item in request.inputs]
    return engine.generate(rows, request.generation, lambda: [False] * len(rows))


def run(raw_data: Any) -> Any:
    """Azure's list of strings, with the local server's headers saying how many tokens each
    answer took and whether it stopped at the end of its turn (an evaluation counts both)."""
    from azureml.contrib.services.aml_response import AMLResponse

    from core.serving.params import FINISH_HEADER, TOKENS_HEADER, BadRequest

    try:
        body = json.loads(raw_data) if isinstance(raw_data, str | bytes) else raw_data
    except ValueError:
        return _refuse("the body is not JSON")
    try:
        answers = answer(body)
    except BadRequest as error:
        return _refuse(str(error))
    facts = {
        TOKENS_HEADER: ",".join(str(item.tokens) for item in answers),
        FINISH_HEADER: ",".join("stop" if item.finished else "length" for item in answers),
    }
    return AMLResponse([item.text for item in answers], 200, facts, json_str=True)


def _refuse(message: str) -> Any:
    """A 400 with one sentence, as the local server answers a bad request."""
    from azureml.contrib.services.aml_response import AMLResponse

    return AMLResponse({"error": message}, 400, json_str=True)
