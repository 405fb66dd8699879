"""Trainer helpers in isolation: pad and stop tokens, data validation, events, checkpoints."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

TRAINER = Path(__file__).resolve().parents[1] / "trainer"


def trainer_module(name: str):
    """Load trainer/NAME.py under a private name, so trainer/ never lands on sys.path."""
    spec = importlib.util.spec_from_file_location(f"_trainer_{name}", TRAINER / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_pad_token_is_never_the_unknown_token(tiny_base_model: Path) -> None:
    from tokenizers import Tokenizer, models
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    phi3_chat = trainer_module("phi3_chat")
    tokenizer = AutoTokenizer.from_pretrained(tiny_base_model)
    tokenizer.pad_token = None
    assert phi3_chat.ensure_pad_token(tokenizer) is False  # found one, nothing to resize
    assert tokenizer.pad_token == "<|endoftext|>"

    # The seed's `pad_token = unk_token` on a vocabulary without <|endoftext|>: a new token.
    bare = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(models.WordLevel({"hi": 0, "<unk>": 1}, unk_token="<unk>")),
        unk_token="<unk>",
        pad_token="<unk>",
    )
    assert phi3_chat.ensure_pad_token(bare) is True
    assert bare.pad_token == "<|pad|>" and bare.pad_token_id == 2


def test_generation_stops_at_end_of_turn_first(tiny_base_model: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    phi3_chat = trainer_module("phi3_chat")
    tokenizer = AutoTokenizer.from_pretrained(tiny_base_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_base_model)
    model.generation_config.eos_token_id = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    phi3_chat.align_generation_config(model, tokenizer)
    end, text = tokenizer.convert_tokens_to_ids(["<|end|>", "<|endoftext|>"])
    assert model.generation_config.eos_token_id == [end, text]
    assert model.generation_config.pad_token_id == tokenizer.pad_token_id


def test_chat_rows_keep_only_messages(tmp_path: Path) -> None:
    chat_data = trainer_module("chat_data")
    path = tmp_path / "rows.jsonl"
    row = {
        "prompt": "hi",
        "prompt_id": "1",
        "messages": [
            {"role": "user", "content": "hi", "extra": 1},
            {"role": "assistant", "content": "hello"},
        ],
    }
    path.write_text(json.dumps(row) + "\n\n")  # a blank line is not a row
    assert chat_data.read_chat_rows(path) == [
        [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    ]
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(chat_data.InvalidDataError, match="no rows"):
        chat_data.read_chat_rows(empty)


def test_events_omit_absent_values_and_reject_unknown_phases(tmp_path: Path) -> None:
    progress_events = trainer_module("progress_events")
    log = progress_events.EventLog(tmp_path / "e" / "events.jsonl")
    log.emit("training", step=3, max_steps=10, loss=float("nan"), eval_loss=None, epoch=0.5)
    [event] = [
        json.loads(line) for line in (tmp_path / "e" / "events.jsonl").read_text().splitlines()
    ]
    assert set(event) == {"time", "phase", "step", "max_steps", "epoch"}
    with pytest.raises(ValueError):
        log.emit("sleeping")
    progress_events.EventLog(tmp_path / "off.jsonl", enabled=False).emit("done")
    assert not (tmp_path / "off.jsonl").exists()  # ranks other than 0 write nothing


def test_latest_checkpoint_ignores_incomplete_ones(tmp_path: Path) -> None:
    checkpoints = trainer_module("checkpoints")
    assert checkpoints.latest_checkpoint(tmp_path / "none") is None
    for step, complete in ((5, True), (10, True), (15, False)):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        if complete:
            (folder / "trainer_state.json").write_text("{}")
    assert checkpoints.latest_checkpoint(tmp_path) == tmp_path / "checkpoint-10"


WEIGHTED = [
    {"role": "user", "content": "Capital of Peru?"},
    {"role": "assistant", "content": "Paris.", "weight": 0},  # a bad answer, kept as context
    {"role": "user", "content": "Are you sure?"},
    {"role": "assistant", "content": "Sorry: Lima.", "weight": 1},
]


def test_chat_rows_keep_weight_and_check_it(tmp_path: Path) -> None:
    chat_data = trainer_module("chat_data")
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps({"messages": WEIGHTED}) + "\n")
    rows = chat_data.read_chat_rows(path)
    assert [message.get("weight") for message in rows[0]] == [None, 0, None, 1]
    assert chat_data.has_zero_weight(rows)
    nothing = [{**m, "weight": 0} if m["role"] == "assistant" else m for m in WEIGHTED]
    on_user = [{**WEIGHTED[0], "weight": 0}, *WEIGHTED[1:]]
    for bad, problem in ((nothing, "nothing to learn from"), (on_user, "only 0 or 1")):
        path.write_text(json.dumps({"messages": bad}) + "\n")
        with pytest.raises(chat_data.InvalidDataError, match=f"line 1: .*{problem}"):
            chat_data.read_chat_rows(path)


def test_a_weight_zero_turn_gets_no_loss(tmp_path: Path, tiny_base_model: Path) -> None:
    """Through TRL's own data preparation, as fine_tune.py builds the trainer."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    phi3_chat = trainer_module("phi3_chat")
    tokenizer = AutoTokenizer.from_pretrained(tiny_base_model)
    serving = tokenizer.apply_chat_template(WEIGHTED, tokenize=False)
    template = phi3_chat.WEIGHTED_TRAINING_TEMPLATE
    assert tokenizer.apply_chat_template(WEIGHTED, chat_template=template, tokenize=False) == (
        serving
    )  # the same text: only the loss mask differs
    tokenizer.chat_template = template
    plain = [{"role": "user", "content": "Capital of Chile?"}, WEIGHTED[3]]
    trainer = SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(tiny_base_model),
        args=SFTConfig(
            output_dir=str(tmp_path),
            assistant_only_loss=True,
            max_length=256,
            report_to="none",
            bf16=False,
            use_cpu=True,
        ),
        train_dataset=Dataset.from_list([{"messages": WEIGHTED}, {"messages": plain}]),
        processing_class=tokenizer,
    )
    trained = []
    for row in trainer.train_dataset:
        pairs = zip(row["input_ids"], row["labels"], strict=True)
        ids = [token for token, label in pairs if label != -100]
        trained.append(tokenizer.decode(ids))
    # No "Paris."; <|end|> strips the newline after it (rstrip, as Phi-3-mini's does).
    assert trained == [f"Sorry: Lima.<|end|>{tokenizer.eos_token}"] * 2


@pytest.mark.parametrize(
    ("compute", "lora", "pure", "expected"),
    [
        # A bf16 GPU (or a CPU told --dtype bfloat16): fp32 master weights under autocast.
        ("bfloat16", False, False, ("bfloat16", "float32", True)),
        ("bfloat16", False, True, ("bfloat16", "bfloat16", False)),  # --pure-bf16
        # A V100: fp32 master weights, so the gradient scaler never meets fp16 gradients.
        ("float16", False, False, ("float16", "float32", True)),
        ("float16", False, True, ("float16", "float32", True)),  # pure bf16 needs bf16
        # LoRA: the frozen base in the compute dtype; PEFT keeps the adapters in fp32.
        ("bfloat16", True, False, ("bfloat16", "bfloat16", True)),
        ("float16", True, False, ("float16", "float16", True)),
        ("float32", False, False, ("float32", "float32", False)),
    ],
)
def test_precision_plan(compute: str, lora: bool, pure: bool, expected: tuple) -> None:
    plan = trainer_module("hardware").precision_plan(compute, lora, pure)
    assert (plan.compute, plan.weights, plan.autocast) == expected
    assert plan.pure == (pure and compute == "bfloat16")


def test_plain_encoding_matches_the_chat_template_after_the_fix(tiny_base_model: Path) -> None:
    from transformers import AutoTokenizer

    phi3_chat = trainer_module("phi3_chat")
    tokenizer = AutoTokenizer.from_pretrained(tiny_base_model)
    messages = [{"role": "user", "content": "Hi"}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    templated = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_dict=True
    )["input_ids"]
    assert tokenizer(text)["input_ids"] == [tokenizer.bos_token_id, *templated]  # the hub's files
    assert phi3_chat.encode_as_chat_template(tokenizer) is True
    assert tokenizer(text)["input_ids"] == templated
    assert phi3_chat.encode_as_chat_template(tokenizer) is False  # already so


def test_the_default_base_model_is_pinned_to_a_revision(tmp_path: Path) -> None:
    from core.config import Config

    sys.path.insert(0, str(TRAINER))  # fine_tune imports its siblings flatly
    try:
        fine_tune = trainer_module("fine_tune")
    finally:
        sys.path.remove(str(TRAINER))
    common = ["--train-file", "t", "--eval-file", "e", "--model-output-dir", "o"]
    args = fine_tune.parse_args(common)
    assert args.base_model_revision == fine_tune.DEFAULT_BASE_MODEL_REVISION
    assert fine_tune.parse_args([*common, "--base-model", "org/other"]).base_model_revision is None
    local = fine_tune.parse_args([*common, "--base-model", str(tmp_path)])
    assert fine_tune.hub_revision(local) is None

    config = Config(path=tmp_path / "phiops.toml")
    assert config.base_model_revision == fine_tune.DEFAULT_BASE_MODEL_REVISION
    assert config.revision_args(config.base_model) == [
        "--base-model-revision", fine_tune.DEFAULT_BASE_MODEL_REVISION,
    ]  # fmt: skip
    assert config.revision_args("org/other") == []  # the default pin is Phi-3-mini's
    assert config.revision_args(str(tmp_path)) == []  # a folder has nothing to pin
    config.sources["base_model_revision"] = "file"
    config.base_model_revision = "v2"
    assert config.revision_args("org/other") == ["--base-model-revision", "v2"]
