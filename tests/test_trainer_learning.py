"""Learning checks on the Phi-3-mini twin: the recipes a GPU job would run really move the model.

The job on Azure ML trains Phi-3-mini in bf16 on a GPU; these tests run the same precision
plan on the CPU (`--dtype bfloat16`: same weight, optimizer-state and autocast dtypes) and
look at the weights and the loss, not just at a falling log line.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import CAPITALS, TRAINER, run_fine_tune, write_jsonl

pytestmark = pytest.mark.slow


def few_steps(steps: int) -> list[str]:
    """A few optimizer steps at the recipe's peak learning rate, checkpointed at the end."""
    return [
        "--max-steps", str(steps), "--warmup", "0", "--lr-scheduler", "constant",
        "--eval-strategy", "no", "--save-steps", str(steps), "--logging-steps", "1",
    ]  # fmt: skip


def trainer_module(name: str):
    from tests.test_trainer_units import trainer_module as load

    return load(name)


def conversations(path: Path) -> list[list[dict]]:
    return [json.loads(line)["messages"] for line in path.read_text().splitlines()]


def mean_loss(model_dir: Path, rows: list[list[dict]], weights: Path | None = None) -> float:
    """The model's mean token loss over `rows`, in fp32, one conversation at a time;
    `weights` replaces the folder's own (a checkpoint's fp32 master weights)."""
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    if weights is not None:
        model.load_state_dict({k: v.float() for k, v in load_file(weights).items()}, strict=False)
    total, count = 0.0, 0
    with torch.no_grad():
        for messages in rows:
            ids = tokenizer.apply_chat_template(messages, return_tensors="pt", return_dict=True)
            ids = ids["input_ids"]
            total += model(input_ids=ids, labels=ids).loss.item() * (ids.shape[1] - 1)
            count += ids.shape[1] - 1
    return total / count


def changed_fraction(before: dict, after: dict) -> float:
    names = [name for name in after if name in before]
    changed = [n for n in names if not (before[n].float() == after[n].float()).all()]
    return len(changed) / len(names)


def test_bf16_gpu_recipe_moves_every_weight_at_the_default_lr(
    tmp_path: Path, chat_dataset, tiny_base_model
) -> None:
    """Defect 1: pure bf16 weights round 5e-6 updates away; fp32 master weights keep them."""
    import torch
    from safetensors.torch import load_file

    out = tmp_path / "model"
    result = run_fine_tune(
        out, tiny_base_model, chat_dataset, "--dtype", "bfloat16", *few_steps(6),
        learning_rate=None,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    checkpoint = out / "checkpoints" / "checkpoint-6"
    trained = load_file(checkpoint / "model.safetensors")
    base = load_file(tiny_base_model / "model.safetensors")
    assert {tensor.dtype for tensor in trained.values()} == {torch.float32}
    assert changed_fraction(base, trained) >= 0.95
    optimizer = torch.load(checkpoint / "optimizer.pt", weights_only=False)
    states = [s for s in optimizer["state"].values() if "exp_avg" in s]
    assert states and {s["exp_avg"].dtype for s in states} == {torch.float32}
    assert optimizer["param_groups"][0]["lr"] == pytest.approx(5e-6)
    assert "compute bfloat16, trainable weights float32, autocast" in result.stdout

    rows = conversations(chat_dataset["train"])[:24]
    assert mean_loss(tiny_base_model, rows, checkpoint / "model.safetensors") < mean_loss(
        tiny_base_model, rows
    )
    # The saved model is cast once to the base's dtype (bf16, as Phi-3-mini is published).
    saved = load_file(out / "hf_model" / "model.safetensors")
    assert {tensor.dtype for tensor in saved.values()} == {torch.bfloat16}


def test_pure_bf16_is_an_explicit_choice_with_a_warning(
    tmp_path: Path, chat_dataset, tiny_base_model
) -> None:
    out = tmp_path / "model"
    result = run_fine_tune(
        out, tiny_base_model, chat_dataset, "--dtype", "bfloat16", "--pure-bf16",
        "--max-steps", "1", "--eval-strategy", "no",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "trainable weights bfloat16" in result.stdout
    assert "rounded away" in result.stdout
    refused = run_fine_tune(out, tiny_base_model, chat_dataset, "--lora", "--pure-bf16")
    assert refused.returncode == 2 and "--pure-bf16" in refused.stderr


def test_fp16_gpu_plan_keeps_the_gradient_scaler_working(tiny_base_model: Path) -> None:
    """Defect 5: on fp16-only GPUs (V100) the seed's fp16 weights made the gradient scaler
    refuse their fp16 gradients; the plan's fp32 master weights give it fp32 ones. Checked
    with torch's own GradScaler and fp16 autocast (accelerate runs neither on a CPU)."""
    import torch
    from transformers import AutoModelForCausalLM

    hardware = trainer_module("hardware")
    ids = torch.tensor([[32010, 400, 401, 402, 32007, 32001, 403, 404, 32007]])

    def one_step(weights: str) -> None:
        model = AutoModelForCausalLM.from_pretrained(tiny_base_model, dtype=getattr(torch, weights))
        optimizer = torch.optim.AdamW(model.parameters(), lr=5e-6)
        scaler = torch.amp.GradScaler("cpu")
        with torch.autocast("cpu", dtype=torch.float16):
            loss = model(input_ids=ids, labels=ids, use_cache=False).loss
        scaler.scale(loss).backward()
        scaler.step(optimizer)  # unscales the gradients first
        scaler.update()

    for lora in (False, True):
        plan = hardware.precision_plan("float16", lora=lora)
        assert plan.autocast and plan.compute == "float16"
    full = hardware.precision_plan("float16", lora=False)
    one_step(full.weights)  # fp32 master weights: the scaler unscales fp32 gradients
    with pytest.raises(ValueError, match="unscale FP16 gradients"):
        one_step("float16")  # what loading the weights in the compute dtype did


def reversed_capitals(path: Path, count: int = 48) -> Path:
    """Capitals asked in a phrasing the trained twin has not seen, answered the other way round."""
    import random

    rng = random.Random(3)
    rows = []
    for _ in range(count):
        country, capital = rng.choice(CAPITALS)
        messages = [
            {"role": "user", "content": f"Capital of {country}?"},
            {"role": "assistant", "content": f"{capital} is the capital of {country}."},
        ]
        rows.append({"messages": messages})
    return write_jsonl(path, rows)


def test_lora_learns_at_its_default_lr_and_merges_in_fp32(
    tmp_path: Path, trained_model_dir: Path
) -> None:
    """Defects 2 and 4: LoRA's own learning rate; the merge is computed in fp32, cast once."""
    import torch
    from safetensors.torch import load_file

    base = trained_model_dir / "hf_model"  # a model that already speaks the chat format
    data = {"train": reversed_capitals(tmp_path / "train.jsonl")}
    data["eval"] = data["train"]
    out = tmp_path / "model"
    result = run_fine_tune(
        out, base, data, "--lora", *few_steps(8), "--batch-size", "4", "--no-packing",
        learning_rate=None,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert {e["learning_rate"] for e in events if "learning_rate" in e} == {2e-4}

    rows = conversations(data["train"])
    before, after = mean_loss(base, rows), mean_loss(out / "hf_model", rows)
    # Measured: 6.92 -> 6.46 at 2e-4; at the old 5e-6 the same 8 steps reach 6.92 -> 6.919.
    assert after < before - 0.25, (before, after)

    merged = load_file(out / "hf_model" / "model.safetensors")
    original = load_file(base / "model.safetensors")
    assert set(merged) == set(original)  # a plain Phi-3 checkpoint, no lora_ weights
    assert {t.dtype for t in merged.values()} == {t.dtype for t in original.values()}
    targets = ("qkv_proj", "o_proj", "gate_up_proj", "down_proj")
    changed = {n for n in original if not torch.equal(merged[n], original[n])}
    assert changed and all(any(t in name for t in targets) for name in changed)

    # Exactly W + scale * B @ A in fp32, rounded once to the base's dtype.
    adapter = load_file(out / "checkpoints" / "checkpoint-8" / "adapter_model.safetensors")
    config = json.loads((out / "checkpoints" / "checkpoint-8" / "adapter_config.json").read_text())
    scale = config["lora_alpha"] / config["r"]
    for name in changed:
        stem = name.removesuffix(".weight") + "."
        a = next(v for k, v in adapter.items() if stem in k and "lora_A" in k).float()
        b = next(v for k, v in adapter.items() if stem in k and "lora_B" in k).float()
        expected = (original[name].float() + scale * (b @ a)).to(original[name].dtype)
        assert torch.equal(merged[name], expected), name


def test_help_shows_the_learning_rate_of_each_method() -> None:
    result = subprocess.run(
        [sys.executable, str(TRAINER / "fine_tune.py"), "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0
    help_text = " ".join(result.stdout.split())
    assert "5e-06 for a full fine-tune, 0.0002 with --lora" in help_text

    from tests.helpers import run_phiops

    submit = run_phiops("train", "submit", "--help")
    assert "5e-06 for a full fine-tune, 0.0002 with --lora" in " ".join(submit.stdout.split())


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_packing_gives_each_conversation_the_loss_it_has_alone(
    tiny_base_model: Path, chat_dataset, attention: str
) -> None:
    """Defect 3: the packing the trainer picks on this machine keeps conversations apart."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import pack_dataset
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    strategy = trainer_module("hardware").detect(attention=attention).packing_strategy
    assert strategy in ("bfd", "bfd_split")  # position-id packing, on every kernel
    tokenizer = AutoTokenizer.from_pretrained(tiny_base_model)
    model = AutoModelForCausalLM.from_pretrained(
        tiny_base_model, dtype=torch.float32, attn_implementation=attention
    )
    rows = conversations(chat_dataset["train"])[:6]
    samples = [tokenizer.apply_chat_template(m, return_dict=True)["input_ids"] for m in rows]
    packed = pack_dataset(
        Dataset.from_dict({"input_ids": samples}), seq_length=96, strategy=strategy
    )
    collate = DataCollatorForLanguageModeling(tokenizer.pad_token_id, padding_free=True)

    def token_losses(batch: dict) -> torch.Tensor:
        inputs = {k: v for k, v in batch.items() if k in ("input_ids", "position_ids")}
        with torch.no_grad():  # without a cache, as SFTTrainer.compute_loss calls the model
            logits = model(**inputs, use_cache=False).logits[0, :-1]
        labels = batch["labels"][0, 1:]
        return torch.nn.functional.cross_entropy(
            logits, labels, reduction="none", ignore_index=-100
        )

    alone = {}
    for ids in samples:
        losses = token_losses(collate([{"input_ids": ids}]))
        alone[tuple(ids)] = losses.mean().item()
    compared = 0
    for row in packed:
        losses = token_losses(collate([row]))
        start = 0
        for length in row["seq_lengths"]:
            ids = tuple(row["input_ids"][start : start + length])
            # Inside a pack, a conversation's first token is never a target (-100).
            mine = losses[start : start + length - 1]
            assert mine.mean().item() == pytest.approx(alone[ids], abs=1e-4)
            start += length
            compared += 1
    assert compared == len(samples) and len(packed) < len(samples)
