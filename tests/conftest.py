"""Shared fixtures. Every test runs offline, with its own user data dir and Prompt flow home."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import HANG

REPO = Path(__file__).resolve().parents[1]

# Each area's fixtures live in their own module (tests/fixtures_<area>.py).
pytest_plugins = ["tests.fixtures_deploy", "tests.fixtures_tui"]


@pytest.fixture(autouse=True, scope="session")
def _isolated_environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Keep tests away from the user's own data, the network and Prompt flow's telemetry."""
    home = tmp_path_factory.mktemp("phiops-home")
    pf_home = tmp_path_factory.mktemp("pf-home")
    saved = dict(os.environ)
    for variable in list(os.environ):
        if variable.startswith("PHIOPS_"):
            del os.environ[variable]
    os.environ.update(
        {
            "PHIOPS_HOME": str(home),
            "PF_HOME_DIRECTORY": str(pf_home),
            "PF_DISABLE_TRACING": "true",
            "HF_HUB_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "MLFLOW_ENABLE_ASYNC_LOGGING": "false",
        }
    )
    # trace destination none: `pf flow test` would otherwise leave a tracing service running
    (pf_home / "pf.yaml").write_text("telemetry:\n  enabled: false\ntrace:\n  destination: none\n")
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty project folder as the working directory."""
    folder = tmp_path / "project"
    folder.mkdir()
    monkeypatch.chdir(folder)
    monkeypatch.delenv("PHIOPS_CONFIG", raising=False)
    return folder


# -- trainer fixtures: a chat dataset, the Phi-3-mini twin, a trained model --------------

TRAINER = REPO / "trainer"
CAPITALS = [
    ("France", "Paris"),
    ("Japan", "Tokyo"),
    ("Italy", "Rome"),
    ("Spain", "Madrid"),
    ("Egypt", "Cairo"),
    ("Peru", "Lima"),
    ("Kenya", "Nairobi"),
    ("Canada", "Ottawa"),
    ("Norway", "Oslo"),
    ("Chile", "Santiago"),
]
QUESTIONS = [
    "What is the capital of {c}?",
    "Name the capital city of {c}.",
    "Which city is the capital of {c}?",
]


def chat_rows(count: int, seed: int = 0) -> list[dict]:
    """Templated ultrachat-shaped rows a tiny model can learn in a few steps."""
    import random

    rng = random.Random(seed)
    rows = []
    for index in range(count):
        country, capital = rng.choice(CAPITALS)
        question = rng.choice(QUESTIONS).format(c=country)
        messages = [
            {"role": "user", "content": question},
            {"role": "assistant", "content": f"The capital of {country} is {capital}."},
        ]
        if index % 3 == 0:
            messages.insert(0, {"role": "system", "content": "You answer geography questions."})
        if index % 4 == 0:
            other, other_capital = rng.choice(CAPITALS)
            messages += [
                {"role": "user", "content": f"And {other}?"},
                {"role": "assistant", "content": f"The capital of {other} is {other_capital}."},
            ]
        rows.append({"prompt": question, "prompt_id": f"{seed}-{index}", "messages": messages})
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    import json

    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def chat_dataset(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A small chat dataset: {"train": train.jsonl, "eval": test.jsonl}."""
    folder = tmp_path_factory.mktemp("chat-data")
    return {
        "train": write_jsonl(folder / "train.jsonl", chat_rows(160, seed=0)),
        "eval": write_jsonl(folder / "test.jsonl", chat_rows(24, seed=1)),
    }


@pytest.fixture(scope="session")
def tiny_base_model(tmp_path_factory: pytest.TempPathFactory, chat_dataset) -> Path:
    """The Phi-3-mini twin (`scaffold_tiny.py`, size tiny) scaffolded once per session from
    `chat_dataset` (read-only): Phi-3-mini's vocabulary, special token ids, tokenizer files,
    config and generation config, only narrow and shallow."""
    import subprocess
    import sys

    out = tmp_path_factory.mktemp("tiny-base") / "model"
    data = [str(chat_dataset["train"]), str(chat_dataset["eval"])]
    subprocess.run(
        [sys.executable, str(TRAINER / "scaffold_tiny.py"), str(out), "--from-data", *data],
        check=True,
        capture_output=True,
        timeout=HANG,
    )
    return out


# Flags for a trainer run short enough for tests that still learns the chat format.
QUICK_TRAINING = ["--max-length", "64", "--batch-size", "2", "--learning-rate", "1e-2"]
QUICK_TRAINING += ["--warmup", "0.1", "--logging-steps", "1", "--save-steps", "1000"]


def run_fine_tune(
    model_dir: Path,
    base_model: Path,
    dataset: dict[str, Path],
    *extra: str,
    env: dict[str, str] | None = None,
    timeout: float = HANG,
    learning_rate: str | None = "1e-2",
):
    """Run trainer/fine_tune.py as a job would, with QUICK_TRAINING's flags (its learning
    rate replaced; None leaves the trainer's default); MLflow only if `env` asks for it."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")} | (env or {})
    paths = {
        "--train-file": dataset["train"],
        "--eval-file": dataset["eval"],
        "--model-output-dir": model_dir,
        "--base-model": base_model,
    }
    flags = [item for flag, path in paths.items() for item in (flag, str(path))]
    quick = list(QUICK_TRAINING)
    at = quick.index("--learning-rate")
    quick[at : at + 2] = ["--learning-rate", learning_rate] if learning_rate else []
    return subprocess.run(
        [sys.executable, str(TRAINER / "fine_tune.py"), *flags, *quick, *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def trained_model_dir(tmp_path_factory: pytest.TempPathFactory, chat_dataset, tiny_base_model):
    """A fine-tuned twin (read-only): D with hf_model/, mlflow_model/, events.jsonl.

    Trained for 2 epochs, enough to answer in the chat format and stop at `<|end|>`.
    """
    out = tmp_path_factory.mktemp("trained") / "model"
    result = run_fine_tune(out, tiny_base_model, chat_dataset, "--epochs", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    return out
