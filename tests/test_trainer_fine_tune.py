"""trainer/fine_tune.py end to end on the Phi-3-mini twin: learning, MLflow, resume, bad data."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import QUICK_TRAINING, TRAINER, run_fine_tune
from tests.helpers import HANG

pytestmark = pytest.mark.slow

EVENT_KEYS = {
    "time",
    "phase",
    "step",
    "max_steps",
    "epoch",
    "loss",
    "eval_loss",
    "learning_rate",
    "tokens_per_second",
    "eta_seconds",
    "message",
}
PHASES = {"setup", "loading", "training", "evaluating", "saving", "done", "interrupted", "failed"}
QUESTION = [{"role": "user", "content": "What is the capital of Peru?"}]


def read_events(model_dir: Path) -> list[dict]:
    path = model_dir / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def losses(events: list[dict]) -> list[float]:
    return [event["loss"] for event in events if "loss" in event]


def test_one_epoch_learns_and_logs_to_mlflow(tmp_path: Path, chat_dataset, tiny_base_model) -> None:
    import mlflow

    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(tracking_uri)
    experiment = mlflow.create_experiment("trainer-test", artifact_location=str(tmp_path / "art"))
    run_id = mlflow.MlflowClient().create_run(experiment).info.run_id  # as the job runner does

    out = tmp_path / "model"
    result = run_fine_tune(
        out,
        tiny_base_model,
        chat_dataset,
        "--epochs", "1",
        env={"MLFLOW_TRACKING_URI": tracking_uri, "MLFLOW_RUN_ID": run_id},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]

    events = read_events(out)
    curve = losses(events)
    assert len(curve) >= 5
    assert sum(curve[-3:]) / 3 < curve[0] - 1.0  # it learned something in one epoch
    assert events[-1]["phase"] == "done"

    run = mlflow.get_run(run_id)
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert params["learning_rate"] == "0.01" and params["method"] == "full"
    assert params["packing_strategy"] == "bfd" and params["attn_implementation"] == "sdpa"
    assert (params["dtype"], params["weights_dtype"], params["save_dtype"]) == (
        "float32", "float32", "bfloat16",
    )  # fmt: skip
    assert params["base_model_revision"] == ""  # a local folder
    assert len(params) < 40  # curated, not the hundreds of TrainingArguments
    client = mlflow.MlflowClient()
    loss_history = client.get_metric_history(run_id, "loss")
    assert [m.step for m in loss_history] == sorted(m.step for m in loss_history)
    assert len(loss_history) == len(curve)
    for key in ("eval_loss", "learning_rate", "grad_norm", "tokens_per_second", "epoch"):
        assert client.get_metric_history(run_id, key), key

    logged = mlflow.transformers.load_model(f"runs:/{run_id}/model")
    prompt = logged.tokenizer.apply_chat_template(
        QUESTION, tokenize=False, add_generation_prompt=True
    )
    generated = logged(prompt, max_new_tokens=8, do_sample=False, return_full_text=False)
    assert isinstance(generated[0]["generated_text"], str)


def test_trained_model_answers_in_format_and_stops(trained_model_dir: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    hf_model = trained_model_dir / "hf_model"
    tokenizer = AutoTokenizer.from_pretrained(hf_model)
    model = AutoModelForCausalLM.from_pretrained(hf_model)
    end = tokenizer.convert_tokens_to_ids("<|end|>")
    assert end in GenerationConfig.from_pretrained(hf_model).eos_token_id
    rendered = tokenizer.apply_chat_template(
        [*QUESTION, {"role": "assistant", "content": "Lima."}], tokenize=False
    )
    assert "<|assistant|>\nLima.<|end|>\n" in rendered

    inputs = tokenizer.apply_chat_template(
        QUESTION, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=40, do_sample=False)
    new_tokens = output[0, inputs["input_ids"].shape[1] :].tolist()
    assert new_tokens[-1] == end, tokenizer.decode(new_tokens)  # stopped, not cut at 40
    assert len(new_tokens) < 40
    answer = tokenizer.decode(new_tokens, skip_special_tokens=True)
    assert answer.startswith("The capital of")


def test_saved_mlflow_model_loads_and_generates(trained_model_dir: Path) -> None:
    import mlflow

    pipeline = mlflow.transformers.load_model(str(trained_model_dir / "mlflow_model"))
    prompt = pipeline.tokenizer.apply_chat_template(
        QUESTION, tokenize=False, add_generation_prompt=True
    )
    answer = pipeline(prompt, max_new_tokens=40, do_sample=False, return_full_text=False)
    assert answer[0]["generated_text"].startswith("The capital of")

    # The pyfunc (what Azure ML serves without a scoring script) wraps a plain question in
    # the same chat template and honours request params.
    pyfunc = mlflow.pyfunc.load_model(str(trained_model_dir / "mlflow_model"))
    assert pyfunc.metadata.signature.params is not None
    replies = pyfunc.predict(["What is the capital of Peru?"], params={"max_new_tokens": 40})
    assert replies[0].startswith("The capital of")


def test_events_file_contract(trained_model_dir: Path) -> None:
    events = read_events(trained_model_dir)
    assert events[0]["phase"] == "setup" and events[-1]["phase"] == "done"
    for event in events:
        assert set(event) <= EVENT_KEYS, event
        assert event["phase"] in PHASES
        assert isinstance(event["time"], float)
    training = [e for e in events if e["phase"] == "training" and "step" in e]
    steps = [e["step"] for e in training]
    assert steps == sorted(steps) and steps[-1] == training[-1]["max_steps"]
    assert any("tokens_per_second" in e and "eta_seconds" in e for e in training)
    assert [e["epoch"] for e in events if "eval_loss" in e] == [1.0, 2.0]  # every epoch


def scheduled_lr(peak: float, warmup: float, max_steps: int, steps_done: int) -> float:
    """The learning rate of the recipe's cosine schedule after `steps_done` optimizer steps."""
    import math

    import torch
    from transformers import get_cosine_schedule_with_warmup

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=peak)
    schedule = get_cosine_schedule_with_warmup(optimizer, math.ceil(warmup * max_steps), max_steps)
    for _ in range(steps_done):
        optimizer.step()
        schedule.step()
    return schedule.get_last_lr()[0]


def test_sigterm_checkpoints_and_resume_continues(
    tmp_path: Path, chat_dataset, tiny_base_model
) -> None:
    out = tmp_path / "model"
    command = [
        sys.executable, str(TRAINER / "fine_tune.py"),
        "--train-file", str(chat_dataset["train"]), "--eval-file", str(chat_dataset["eval"]),
        "--model-output-dir", str(out), "--base-model", str(tiny_base_model),
        *QUICK_TRAINING, "--epochs", "3",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + HANG
        while time.monotonic() < deadline and not any(
            e.get("step", 0) >= 4 for e in read_events(out)
        ):
            assert process.poll() is None, process.stderr.read().decode()[-3000:]
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=HANG)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 75, stderr.decode()[-3000:]
    events = read_events(out)
    assert events[-1]["phase"] == "interrupted"
    stopped_at = max(e["step"] for e in events if "step" in e)
    max_steps = events[-1].get("max_steps") or max(e.get("max_steps", 0) for e in events)
    assert 4 <= stopped_at < max_steps
    checkpoint = out / "checkpoints" / f"checkpoint-{stopped_at}"
    assert (checkpoint / "optimizer.pt").is_file() and (checkpoint / "scheduler.pt").is_file()
    assert not (out / "hf_model").exists()
    lr_before = [e["learning_rate"] for e in events if "learning_rate" in e]
    assert lr_before[-1] == pytest.approx(
        scheduled_lr(1e-2, 0.1, max_steps, stopped_at - 1), abs=1e-6
    )

    resumed = run_fine_tune(out, tiny_base_model, chat_dataset, "--epochs", "3", "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    after = read_events(out)[len(events) :]
    start = next(e for e in after if e.get("message") == "training started")
    assert start["step"] == stopped_at  # not from zero
    first_step = min(e["step"] for e in after if "loss" in e)
    assert first_step == stopped_at + 1
    lr_after = next(e["learning_rate"] for e in after if "learning_rate" in e)
    # The scheduler continued where it stopped instead of restarting its warm-up at 0.
    assert lr_after == pytest.approx(scheduled_lr(1e-2, 0.1, max_steps, stopped_at), abs=1e-6)
    assert lr_before[0] == 0.0
    assert after[-1]["phase"] == "done" and (out / "hf_model" / "model.safetensors").is_file()


def test_lora_adapter_layers_unmerged(tmp_path: Path, chat_dataset, tiny_base_model) -> None:
    import mlflow

    out = tmp_path / "model"
    result = run_fine_tune(
        out, tiny_base_model, chat_dataset, "--lora", "--lora-form", "layers", "--no-merge",
        "--max-steps", "4", "--eval-strategy", "no",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    config = json.loads((out / "hf_model" / "adapter_config.json").read_text())
    assert set(config["target_modules"]) == {"qkv_proj", "o_proj", "gate_up_proj", "down_proj"}
    assert not (out / "hf_model" / "model.safetensors").exists()  # the adapter only
    pipeline = mlflow.transformers.load_model(str(out / "mlflow_model"))  # base by path
    assert type(pipeline.model).__name__ == "PeftModelForCausalLM"


def test_assistant_only_loss_trains_the_stop_token(tiny_base_model: Path) -> None:
    from transformers import AutoTokenizer
    from trl.chat_template_utils import (
        get_training_chat_template,
        is_chat_template_stop_token_trained,
    )

    tokenizer = AutoTokenizer.from_pretrained(tiny_base_model)
    training_template = get_training_chat_template(tokenizer)
    assert training_template is not None  # TRL recognised Phi-3's template
    assert is_chat_template_stop_token_trained(tokenizer, chat_template=training_template)
    messages = [*QUESTION, {"role": "assistant", "content": "Lima."}]
    encoded = tokenizer.apply_chat_template(
        messages, chat_template=training_template, return_dict=True,
        return_assistant_tokens_mask=True,
    )  # fmt: skip
    mask = encoded["assistant_masks"]
    trained = [t for t, m in zip(encoded["input_ids"], mask, strict=True) if m]
    # Exactly the answer, its <|end|> and the closing <|endoftext|>: the "\n" the template
    # puts after <|end|> is part of that token (rstrip), and <|assistant|> is not trained.
    answer = tokenizer("Lima.", add_special_tokens=False)["input_ids"]
    assert trained == [*answer, 32007, 32000]
    # Training with the swapped template leaves the served template untouched.
    assert tokenizer.apply_chat_template(messages, tokenize=False) == tokenizer.apply_chat_template(
        messages, tokenize=False, chat_template=tokenizer.chat_template
    )


def test_assistant_only_loss_run(tmp_path: Path, chat_dataset, tiny_base_model) -> None:
    out = tmp_path / "model"
    result = run_fine_tune(
        out, tiny_base_model, chat_dataset, "--assistant-only-loss", "--max-steps", "3",
        "--eval-strategy", "no",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    from transformers import AutoTokenizer

    served = AutoTokenizer.from_pretrained(out / "hf_model").chat_template
    assert served == AutoTokenizer.from_pretrained(tiny_base_model).chat_template


def test_weight_zero_turns_run_and_keep_the_serving_template(
    tmp_path: Path, chat_dataset, tiny_base_model
) -> None:
    """Rows as `data prepare` writes an OpenAI dataset with `weight: 0` turns."""
    context = [
        {"role": "user", "content": "Hello?"},
        {"role": "assistant", "content": "Not this answer.", "weight": 0},
    ]
    weighted = tmp_path / "weighted.jsonl"
    with weighted.open("w") as out:
        for line in chat_dataset["train"].read_text().splitlines():
            row = json.loads(line)
            out.write(json.dumps({"messages": context + row["messages"]}) + "\n")
    model = tmp_path / "model"
    data = {"train": weighted, "eval": chat_dataset["eval"]}
    result = run_fine_tune(
        model, tiny_base_model, data, "--max-steps", "2", "--eval-strategy", "no"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "weight 0: the loss is on the other assistant turns" in result.stdout
    served = (model / "hf_model" / "chat_template.jinja").read_text()
    base = json.loads((tiny_base_model / "tokenizer_config.json").read_text())
    assert served == base["chat_template"]  # the twin keeps its template inline, as the hub's


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("{not json", "not valid JSON"),
        ('{"messages": [{"role": "user", "content": "hi"}]}', "no assistant message"),
        ('{"messages": [{"role": "wizard", "content": "hi"}]}', "role 'wizard'"),
        ('{"prompt": "hi"}', 'missing "messages"'),
    ],
)
def test_invalid_row_fails_with_its_line_number(
    tmp_path: Path, chat_dataset, line: str, problem: str
) -> None:
    rows = chat_dataset["train"].read_text().splitlines()
    bad = tmp_path / "train.jsonl"
    bad.write_text("\n".join([*rows[:6], line, *rows[6:]]) + "\n")
    out = tmp_path / "model"
    result = run_fine_tune(out, tmp_path / "no-model-needed", {**chat_dataset, "train": bad})
    assert result.returncode == 1
    [message] = result.stderr.strip().splitlines()  # one sentence, no traceback
    assert message.startswith(f"fine_tune: {bad}, line 7: ") and problem in message
    assert read_events(out)[-1]["phase"] == "failed"
    assert "line 7" in read_events(out)[-1]["message"]


def test_usage_error_exits_2(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(TRAINER / "fine_tune.py"), "--train-file", "x.jsonl"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "--eval-file" in result.stderr


def test_missing_base_model_fails_in_one_sentence(tmp_path: Path, chat_dataset) -> None:
    result = run_fine_tune(tmp_path / "m", tmp_path / "absent-model", chat_dataset)
    assert result.returncode == 1
    assert "could not load base model" in result.stderr
    assert "Traceback" not in result.stderr


def test_trainer_never_imports_core() -> None:
    from tests.helpers import top_level_imports

    found = top_level_imports(TRAINER)
    assert found
    assert [(path, name) for path, name in found if name in {"core", "tui", "trainer"}] == []


def test_the_hub_model_trains_at_its_pinned_revision(
    tmp_path: Path, chat_dataset, tiny_base_model
) -> None:
    """A new chat template on the hub's main must not change what training renders."""
    import shutil

    sys.path.insert(0, str(TRAINER))
    try:
        from tests.test_trainer_units import trainer_module

        fine_tune = trainer_module("fine_tune")
    finally:
        sys.path.remove(str(TRAINER))
    pinned = fine_tune.DEFAULT_BASE_MODEL_REVISION
    upstream = "1" * 40
    # An offline Hugging Face cache holding both commits; main points at the newer one.
    repo = tmp_path / "hub" / "models--microsoft--Phi-3-mini-4k-instruct"
    shutil.copytree(tiny_base_model, repo / "snapshots" / pinned)
    changed = repo / "snapshots" / upstream
    shutil.copytree(tiny_base_model, changed)
    config = json.loads((changed / "tokenizer_config.json").read_text())
    config["chat_template"] = config["chat_template"].replace("<|user|>\n", "<|user|>")
    (changed / "tokenizer_config.json").write_text(json.dumps(config))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(upstream)

    out = tmp_path / "model"
    env = {"HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}
    result = run_fine_tune(
        out, "microsoft/Phi-3-mini-4k-instruct", chat_dataset,
        "--max-steps", "1", "--eval-strategy", "no", env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    from transformers import AutoTokenizer

    trained = AutoTokenizer.from_pretrained(out / "hf_model")
    base = AutoTokenizer.from_pretrained(tiny_base_model)
    assert trained.chat_template == base.chat_template
