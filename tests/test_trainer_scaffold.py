"""The tiny base model: a real Phi-3 architecture with Phi-3's tokens and chat template."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import run_phiops

MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "What is the capital of Peru?"},
    {"role": "assistant", "content": "The capital of Peru is Lima."},
]


def test_scaffolded_model_is_phi3_with_phi3_chat_format(tiny_base_model: Path) -> None:
    import trl
    from transformers import AutoConfig, AutoTokenizer, GenerationConfig

    config = AutoConfig.from_pretrained(tiny_base_model)
    assert config.model_type == "phi3"
    assert config.architectures == ["Phi3ForCausalLM"]

    tokenizer = AutoTokenizer.from_pretrained(tiny_base_model)
    for token in ("<|endoftext|>", "<|user|>", "<|assistant|>", "<|system|>", "<|end|>"):
        assert len(tokenizer(token, add_special_tokens=False)["input_ids"]) == 1, token
    # TRL recognises Phi-3's template only when it is byte-identical to the one it stores.
    phi3 = Path(trl.__file__).parent / "chat_templates" / "phi3.jinja"
    assert tokenizer.chat_template == phi3.read_text()
    text = tokenizer.apply_chat_template(MESSAGES, tokenize=False)
    assert text.startswith("<|system|>\nBe brief.<|end|>\n<|user|>\n")
    assert "<|assistant|>\nThe capital of Peru is Lima.<|end|>\n" in text
    prompt = tokenizer.apply_chat_template(MESSAGES[:2], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|end|>\n<|assistant|>\n")

    # Generation stops at the end of the assistant's turn; padding is a real, separate token.
    end = tokenizer.convert_tokens_to_ids("<|end|>")
    assert tokenizer.eos_token == "<|end|>"
    assert end in GenerationConfig.from_pretrained(tiny_base_model).eos_token_id
    assert tokenizer.pad_token == "<|endoftext|>"
    assert tokenizer.pad_token_id not in (None, tokenizer.unk_token_id, end)
    # Byte-level: text never seen in training still round-trips.
    unseen = "Ünïcödé ✓ 42"
    assert tokenizer.decode(tokenizer(unseen)["input_ids"]) == unseen


def test_scaffolded_model_generates(tiny_base_model: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_base_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_base_model)
    parameters = sum(p.numel() for p in model.parameters())
    assert 100_000 < parameters < 10_000_000
    inputs = tokenizer.apply_chat_template(
        MESSAGES[:2], add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=5, do_sample=False)
    assert output.shape[1] > inputs["input_ids"].shape[1]


def test_cli_scaffold_tiny_small(tmp_path: Path, chat_dataset) -> None:
    out = tmp_path / "small"
    result = run_phiops(
        "model", "scaffold-tiny", str(out), "--from-data", str(chat_dataset["train"]),
        "--size", "small", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["architecture"] == "Phi3ForCausalLM"
    assert summary["hidden_size"] == 256 and summary["layers"] == 4
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"messages": [{"role": "assistant", "content": "hi"}]}\nnot json\n', "line 2"),
        ('{"messages": [{"role": "robot", "content": "hi"}]}\n', "line 1"),
    ],
)
def test_cli_scaffold_tiny_rejects_bad_data(tmp_path: Path, content: str, expected: str) -> None:
    data = tmp_path / "bad.jsonl"
    data.write_text(content)
    result = run_phiops("model", "scaffold-tiny", str(tmp_path / "out"), "--from-data", str(data))
    assert result.returncode == 1
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_cli_scaffold_tiny_missing_file(tmp_path: Path) -> None:
    result = run_phiops("model", "scaffold-tiny", str(tmp_path / "o"), "--from-data", "nope.jsonl")
    assert result.returncode != 0
    assert "nope.jsonl" in result.stderr and "Traceback" not in result.stderr
