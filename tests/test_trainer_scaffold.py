"""The scaffolded twin: Phi-3-mini-4k-instruct's published files but for width and depth."""

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
# Phi-3-mini-4k-instruct's tokenizer_config.json added_tokens_decoder: id -> (content, rstrip,
# special). 32001..32010 strip the whitespace after them (the template's "\n").
PHI3_ADDED_TOKENS = {
    0: ("<unk>", False, True),
    1: ("<s>", False, True),
    2: ("</s>", True, False),
    32000: ("<|endoftext|>", False, True),
    32001: ("<|assistant|>", True, True),
    32002: ("<|placeholder1|>", True, True),
    32003: ("<|placeholder2|>", True, True),
    32004: ("<|placeholder3|>", True, True),
    32005: ("<|placeholder4|>", True, True),
    32006: ("<|system|>", True, True),
    32007: ("<|end|>", True, True),
    32008: ("<|placeholder5|>", True, True),
    32009: ("<|placeholder6|>", True, True),
    32010: ("<|user|>", True, True),
}


def test_twin_config_is_phi3_minis(tiny_base_model: Path) -> None:
    from transformers import AutoConfig, GenerationConfig

    config = AutoConfig.from_pretrained(tiny_base_model)
    assert config.model_type == "phi3" and config.architectures == ["Phi3ForCausalLM"]
    real = {
        "vocab_size": 32064,
        "bos_token_id": 1,
        "eos_token_id": 32000,
        "pad_token_id": 32000,
        "sliding_window": 2047,
        "max_position_embeddings": 4096,
        "original_max_position_embeddings": 4096,
        "rms_norm_eps": 1e-5,
        "tie_word_embeddings": False,
        "hidden_act": "silu",
    }
    assert {key: getattr(config, key) for key in real} == real
    assert config.rope_parameters["rope_theta"] == 10000.0
    assert str(config.dtype).removeprefix("torch.") == "bfloat16"  # the hub's weights are bf16
    generation = GenerationConfig.from_pretrained(tiny_base_model)
    assert generation.eos_token_id == [32000, 32001, 32007]
    assert (generation.bos_token_id, generation.pad_token_id) == (1, 32000)


def test_twin_tokenizer_is_phi3_minis(tiny_base_model: Path) -> None:
    import trl
    from transformers import AutoTokenizer

    files = json.loads((tiny_base_model / "tokenizer_config.json").read_text())
    assert files["tokenizer_class"] == "LlamaTokenizer"
    assert (files["add_bos_token"], files["add_eos_token"], files["legacy"]) == (
        False,
        False,
        False,
    )
    assert files["model_max_length"] == 4096 and files["clean_up_tokenization_spaces"] is False
    tokenizer = AutoTokenizer.from_pretrained(tiny_base_model)
    assert (len(tokenizer), tokenizer.vocab_size) == (32011, 32000)
    assert (tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token, tokenizer.unk_token) == (
        "<s>", "<|endoftext|>", "<|endoftext|>", "<unk>",
    )  # fmt: skip
    decoder = tokenizer.added_tokens_decoder
    assert {i: (t.content, t.rstrip, t.special) for i, t in decoder.items()} == PHI3_ADDED_TOKENS
    # Llama's SentencePiece layout: byte-fallback pieces at 3..258, "▁" marks a word start.
    assert tokenizer.convert_ids_to_tokens([3, 258]) == ["<0x00>", "<0xFF>"]
    assert tokenizer.tokenize("Peru is")[-1] == "\u2581is"
    unseen = "Ünïcödé ✓ 42"
    ids = tokenizer(unseen, add_special_tokens=False)["input_ids"]
    assert tokenizer.convert_tokens_to_ids("<0xC3>") in ids  # bytes, not <unk>
    assert tokenizer.decode(ids) == unseen

    # TRL recognises Phi-3's template only when it is byte-identical to the one it stores.
    phi3 = Path(trl.__file__).parent / "chat_templates" / "phi3.jinja"
    assert tokenizer.chat_template == phi3.read_text()
    text = tokenizer.apply_chat_template(MESSAGES, tokenize=False)
    assert text.startswith("<|system|>\nBe brief.<|end|>\n<|user|>\n")
    assert text.endswith("<|assistant|>\nThe capital of Peru is Lima.<|end|>\n<|endoftext|>")
    # rstrip: the "\n" after each marker is swallowed, and no <s> is rendered.
    ids = tokenizer.apply_chat_template(MESSAGES, return_dict=True)["input_ids"]
    assert [i for i in ids if i >= 32000] == [32006, 32007, 32010, 32007, 32001, 32007, 32000]
    assert tokenizer.convert_tokens_to_ids("<0x0A>") not in ids and ids[0] == 32006
    # As the hub's tokenizer.json does, plain encoding puts <s> first (transformers 5 follows
    # tokenizer.json's post-processor, not add_bos_token): the trainer switches that off.
    assert tokenizer("Hi")["input_ids"][0] == 1


def test_scaffolded_model_generates(tiny_base_model: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_base_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_base_model)
    assert model.get_input_embeddings().weight.shape[0] == 32064
    parameters = sum(p.numel() for p in model.parameters())
    assert 1_000_000 < parameters < 10_000_000
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
    assert summary["architecture"] == "Phi3ForCausalLM" and summary["vocab_size"] == 32064
    assert summary["hidden_size"] == 128 and summary["layers"] == 4
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
