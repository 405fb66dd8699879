"""Fine-tune a Phi-3 chat model with TRL's SFTTrainer: the same script locally and on Azure ML.

    python fine_tune.py --train-file train.jsonl --eval-file test.jsonl \\
        --model-output-dir outputs/model [--base-model microsoft/Phi-3-mini-4k-instruct] \\
        [--lora] [--resume] [--events-file events.jsonl]

Defaults are the seed's recipe for Phi-3-mini (lr 5e-6, cosine, 20% warm-up, 3 epochs,
batch 4, packing, max length 2048, gradient checkpointing, evaluation each epoch, seed 0),
except where it could not learn: fp32 master weights under bf16 autocast instead of bf16
weights, lr 2e-4 for `--lora`, and packing that keeps conversations whole and apart (bfd).

Exit codes: 0 done; 1 failed (one sentence on stderr; a bad data row is named by line);
2 usage error; 75 stopped by SIGINT/SIGTERM after saving a checkpoint (run again with
--resume). Output under --model-output-dir D: D/checkpoints/checkpoint-N/ (resume state),
D/hf_model/ (plain Hugging Face folder), D/mlflow_model/ (MLflow `transformers` flavour).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import traceback
from dataclasses import dataclass
from pathlib import Path

# Flat sibling imports (Python puts this script's folder first on sys.path): on Azure ML
# this folder is the job's whole code snapshot.
import azure_job
from chat_data import InvalidDataError, has_zero_weight, read_chat_rows

PHI3_LORA_TARGETS = ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]
DEFAULT_BASE_MODEL = "microsoft/Phi-3-mini-4k-instruct"
# The hub commit of DEFAULT_BASE_MODEL the pipeline is built for (its chat template is
# phi3_chat.PHI3_CHAT_TEMPLATE): a change upstream must not change training silently.
DEFAULT_BASE_MODEL_REVISION = "f39ac1d28e925b323eae81227eaba4464caced4e"
# Peak learning rates by method: the seed's 5e-6 for every weight; LoRA adapters start at
# zero and need ~40x more (2e-4 for r 16 / alpha 32, as PEFT's and TRL's examples use).
LEARNING_RATES = {"full": 5e-6, "lora": 2e-4}
DTYPES = ["bfloat16", "float16", "float32"]


@dataclass(frozen=True)
class ChatData:
    train: list[list[dict[str, str]]]
    eval: list[list[dict[str, str]]]


class JobError(Exception):
    """A failure the user can act on; printed as one sentence, without a traceback."""


def _learning_rate(text: str) -> float | str:
    if text == "auto":
        return text
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be above 0")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Fine-tune a Phi-3 chat model (SFT with TRL).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    io = parser.add_argument_group("data and output")
    io.add_argument("--train-file", type=Path, required=True, help="training chat JSONL")
    io.add_argument("--eval-file", type=Path, required=True, help="evaluation chat JSONL")
    io.add_argument("--model-output-dir", type=Path, required=True, help="where D/... goes")
    io.add_argument("--base-model", default=DEFAULT_BASE_MODEL, help="hub id or local folder")
    io.add_argument(
        "--base-model-revision",
        default=None,
        help=f"hub revision (branch, tag or commit) of a hub base model; default for "
        f"{DEFAULT_BASE_MODEL}: {DEFAULT_BASE_MODEL_REVISION}, else the hub's main",
    )
    io.add_argument(
        "--events-file",
        type=Path,
        default=os.environ.get("PHIOPS_EVENTS_FILE") or None,
        help="progress events JSONL (default $PHIOPS_EVENTS_FILE, else D/events.jsonl)",
    )
    io.add_argument("--resume", action="store_true", help="continue from D/checkpoints' latest")

    recipe = parser.add_argument_group("recipe")
    recipe.add_argument(
        "--learning-rate",
        type=_learning_rate,
        default="auto",
        help=f"peak learning rate; auto: {LEARNING_RATES['full']:g} for a full fine-tune, "
        f"{LEARNING_RATES['lora']:g} with --lora",
    )
    recipe.add_argument("--lr-scheduler", default="cosine")
    recipe.add_argument("--warmup", type=float, default=0.2, help="fraction (<1) or steps")
    recipe.add_argument("--epochs", type=float, default=3.0)
    recipe.add_argument("--max-steps", type=int, default=-1, help="stop after N steps (-1: off)")
    recipe.add_argument("--batch-size", type=int, default=4, help="per device")
    recipe.add_argument("--eval-batch-size", type=int, default=None, help="default: batch size")
    recipe.add_argument("--gradient-accumulation-steps", type=int, default=1)
    recipe.add_argument("--max-length", type=int, default=2048)
    recipe.add_argument("--packing", action=argparse.BooleanOptionalAction, default=True)
    recipe.add_argument(
        "--packing-strategy",
        choices=["auto", "bfd", "bfd_split", "wrapped"],
        default="auto",
        help="auto: bfd. bfd/bfd_split pack whole conversations (bfd_split splits one longer "
        "than --max-length) with position ids that restart at each, so attention stays "
        "inside a conversation on every attention kernel; wrapped cuts the token stream at "
        "--max-length and lets attention cross conversations",
    )
    recipe.add_argument(
        "--gradient-checkpointing", action=argparse.BooleanOptionalAction, default=True
    )
    recipe.add_argument(
        "--assistant-only-loss", action="store_true", help="train on assistant tokens only"
    )
    recipe.add_argument("--weight-decay", type=float, default=0.0)
    recipe.add_argument("--max-grad-norm", type=float, default=1.0)
    recipe.add_argument("--seed", type=int, default=0)

    lora = parser.add_argument_group("LoRA")
    lora.add_argument("--lora", action="store_true", help="train a LoRA adapter (peft)")
    lora.add_argument("--lora-r", type=int, default=16)
    lora.add_argument("--lora-alpha", type=int, default=32)
    lora.add_argument("--lora-dropout", type=float, default=0.0)
    lora.add_argument("--lora-target-modules", nargs="+", default=PHI3_LORA_TARGETS)
    lora.add_argument(
        "--lora-form",
        choices=["auto", "layers", "weights"],
        default="auto",
        help="layers: PEFT adapter layers beside each projection; weights: the low-rank update "
        "added to each projection's weight (PEFT target_parameters), which keeps no "
        "activation-sized temporaries; auto: weights on CPU, layers on GPU",
    )
    lora.add_argument(
        "--no-merge", action="store_true", help="save the adapter instead of a merged model"
    )

    schedule = parser.add_argument_group("evaluation, logging and checkpoints")
    schedule.add_argument("--eval-strategy", choices=["epoch", "steps", "no"], default="epoch")
    schedule.add_argument("--eval-steps", type=int, default=None)
    schedule.add_argument("--logging-steps", type=int, default=10)
    schedule.add_argument("--save-steps", type=int, default=200)
    schedule.add_argument("--save-total-limit", type=int, default=2, help="checkpoints kept")

    machine = parser.add_argument_group("machine")
    machine.add_argument(
        "--dtype",
        choices=["auto", *DTYPES],
        default="auto",
        help="compute dtype; auto: bf16 on GPUs that have it, fp16 on older ones, fp32 on "
        "CPU (bf16 for a LoRA base on CPUs with native bf16). A full fine-tune keeps fp32 "
        "master weights under bf16/fp16 autocast",
    )
    machine.add_argument(
        "--pure-bf16",
        action="store_true",
        help="full fine-tune with bf16 weights and optimizer states (half the memory of fp32 "
        "master weights, but updates below half a bf16 step are lost: at lr 5e-6 most are)",
    )
    machine.add_argument(
        "--save-dtype",
        choices=["auto", *DTYPES],
        default="auto",
        help="dtype of the saved model; auto: the base model's (Phi-3-mini: bfloat16)",
    )
    machine.add_argument(
        "--attn-implementation",
        choices=["auto", "flash_attention_2", "sdpa", "eager"],
        default="auto",
    )
    machine.add_argument(
        "--no-distributed", action="store_true", help="use one GPU even when there are more"
    )
    machine.add_argument(
        "--require-gpu",
        action="store_true",
        help="stop at once when torch cannot use a CUDA GPU (always so inside Azure ML)",
    )
    machine.add_argument(
        "--allow-cpu",
        action="store_true",
        help="train on the CPU even inside Azure ML (a CPU cluster; phiops adds it for one)",
    )
    args = parser.parse_args(argv)
    if args.eval_batch_size is None:
        args.eval_batch_size = args.batch_size
    if args.learning_rate == "auto":
        args.learning_rate = LEARNING_RATES["lora" if args.lora else "full"]
    if args.pure_bf16 and (args.lora or args.dtype not in ("auto", "bfloat16")):
        parser.error("--pure-bf16 is for a full fine-tune computing in bfloat16")
    if args.base_model_revision is None and args.base_model == DEFAULT_BASE_MODEL:
        args.base_model_revision = DEFAULT_BASE_MODEL_REVISION
    if args.eval_strategy == "steps" and not args.eval_steps:
        parser.error("--eval-strategy steps needs --eval-steps")
    for name in ("batch_size", "eval_batch_size", "max_length", "save_steps", "logging_steps"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def hub_revision(args) -> str | None:
    """The revision to load: none for a local folder (there is nothing to pin)."""
    return None if Path(args.base_model).is_dir() else args.base_model_revision


def load_base(args, hardware):
    """The tokenizer (chat template, real pad token, plain encoding as the template's) and
    the model to train, in the precision plan's weight dtype; and the base's stored dtype."""
    import torch
    from phi3_chat import (
        PHI3_CHAT_TEMPLATE,
        align_generation_config,
        encode_as_chat_template,
        ensure_chat_template,
        ensure_pad_token,
    )
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    revision = hub_revision(args)
    try:
        stored = AutoConfig.from_pretrained(args.base_model, revision=revision).dtype
        tokenizer = AutoTokenizer.from_pretrained(args.base_model, revision=revision)
        model = AutoModelForCausalLM.from_pretrained(
            args.base_model,
            revision=revision,
            dtype=getattr(torch, hardware.precision.weights),
            attn_implementation=hardware.attention,
        )
    except (OSError, ValueError) as error:  # missing folder, unknown hub id, offline
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise JobError(f"could not load base model {args.base_model!r}: {first_line}") from None
    if ensure_chat_template(tokenizer):
        print("The base model has no chat template: using Phi-3's.", flush=True)
    elif args.base_model == DEFAULT_BASE_MODEL and tokenizer.chat_template != PHI3_CHAT_TEMPLATE:
        print(
            f"Warning: {args.base_model} at revision {revision} has another chat template "
            "than the one phiops was built for; training and serving use the model's own.",
            flush=True,
        )
    if encode_as_chat_template(tokenizer):
        print("Plain encoding no longer adds <s>: the chat template renders none.", flush=True)
    if ensure_pad_token(tokenizer):
        model.resize_token_embeddings(len(tokenizer), pad_to_multiple_of=64)
        print(f"Added a pad token {tokenizer.pad_token!r} (the model had none).", flush=True)
    align_generation_config(model, tokenizer)
    return tokenizer, model, _dtype_name(stored) or hardware.precision.weights


def _dtype_name(dtype) -> str | None:
    """The dtype's name ("bfloat16" for torch.bfloat16); None when the config has none."""
    if dtype is None:
        return None
    return str(dtype).removeprefix("torch.")


def weighted_template(tokenizer) -> str:
    """The training template that masks `weight: 0` turns; it knows Phi-3's format only."""
    from phi3_chat import PHI3_CHAT_TEMPLATE, WEIGHTED_TRAINING_TEMPLATE

    if tokenizer.chat_template != PHI3_CHAT_TEMPLATE:
        raise JobError(
            "the data has assistant turns with weight 0, which phiops can mask only with "
            "Phi-3's chat template, and this base model has another"
        )
    return WEIGHTED_TRAINING_TEMPLATE


def build_config(args, hardware, output_dir: Path):
    from trl import SFTConfig

    return SFTConfig(
        output_dir=str(output_dir),
        num_train_epochs=args.epochs,
        max_steps=args.max_steps,
        per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=args.eval_batch_size,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        learning_rate=args.learning_rate,
        lr_scheduler_type=args.lr_scheduler,
        warmup_steps=args.warmup,  # transformers 5: a float below 1 is a fraction of the steps
        weight_decay=args.weight_decay,
        max_grad_norm=args.max_grad_norm,
        max_length=args.max_length,
        packing=args.packing,
        packing_strategy=hardware.packing_strategy,
        assistant_only_loss=args.assistant_only_loss,
        activation_checkpointing=args.gradient_checkpointing,  # transformers 5's name
        activation_checkpointing_kwargs={"use_reentrant": False},
        eval_strategy=args.eval_strategy,
        eval_steps=args.eval_steps,
        save_strategy="steps",  # and each epoch, by CheckpointCallback
        save_steps=args.save_steps,
        save_total_limit=args.save_total_limit,
        logging_steps=args.logging_steps,
        logging_first_step=True,
        seed=args.seed,
        # Autocast over fp32 master weights (or a frozen half-precision LoRA base), the
        # same on CPU as on GPU; fp16 also scales the loss.
        bf16=hardware.precision.autocast and hardware.dtype == "bfloat16",
        fp16=hardware.precision.autocast and hardware.dtype == "float16",
        use_cpu=hardware.device == "cpu",
        tf32=True if hardware.device == "cuda" and hardware.dtype == "bfloat16" else None,
        report_to="none",  # MLflow is logged by mlflow_tracking, curated
        include_num_input_tokens_seen="non_padding",
        disable_tqdm=not sys.stderr.isatty(),
        dataloader_pin_memory=hardware.device == "cuda",
    )


def lora_form(args, hardware) -> str:
    """Where the low-rank update lives. Adapter layers add two activation-sized temporaries
    per projection each forward, which on CPU (fragmenting glibc's heap) raises peak RSS
    above a full fine-tune's; adding the update to the weight instead costs a weight-sized
    temporary and a dense weight gradient: leaner on CPU, slower on a GPU (FLOP-bound)."""
    if args.lora_form != "auto":
        return args.lora_form
    return "layers" if hardware.device == "cuda" else "weights"


def lora_config(args, hardware):
    from peft import LoraConfig

    targets = {"target_modules": args.lora_target_modules}
    if lora_form(args, hardware) == "weights":
        weights = [f"{name}.weight" for name in args.lora_target_modules]
        targets = {"target_modules": [], "target_parameters": weights}
    return LoraConfig(
        r=args.lora_r,
        lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout,
        task_type="CAUSAL_LM",
        **targets,
    )


def curated_params(args, hardware, model, train_rows: int, eval_rows: int, save_dtype: str) -> dict:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    params = {
        "base_model": args.base_model,
        "base_model_revision": hub_revision(args) or "",
        "method": "lora" if args.lora else "full",
        "learning_rate": args.learning_rate,
        "lr_scheduler": args.lr_scheduler,
        "warmup": args.warmup,
        "epochs": args.epochs,
        "max_steps": args.max_steps,
        "batch_size": args.batch_size,
        "gradient_accumulation_steps": args.gradient_accumulation_steps,
        "max_length": args.max_length,
        "packing": args.packing,
        "packing_strategy": hardware.packing_strategy if args.packing else "none",
        "gradient_checkpointing": args.gradient_checkpointing,
        "assistant_only_loss": args.assistant_only_loss,
        "seed": args.seed,
        "dtype": hardware.dtype,
        "weights_dtype": hardware.precision.weights,
        "mixed_precision": hardware.precision.autocast,
        "save_dtype": save_dtype,
        "attn_implementation": hardware.attention,
        "device": hardware.device,
        "world_size": int(os.environ.get("WORLD_SIZE", "1")),
        "train_rows": train_rows,
        "eval_rows": eval_rows,
        "parameters": total,
        "trainable_parameters": trainable,
    }
    if args.lora:
        params |= {
            "lora_r": args.lora_r,
            "lora_alpha": args.lora_alpha,
            "lora_dropout": args.lora_dropout,
            "lora_target_modules": ",".join(args.lora_target_modules),
            "lora_form": lora_form(args, hardware),
            "lora_merged": not args.no_merge,
        }
    return params


def model_card(args, trainer) -> str:
    """A short README for the saved model: what it was trained from, how, and on what."""
    method = "LoRA" if args.lora else "full fine-tuning"
    if args.lora:
        method += " (adapter only)" if args.no_merge else " (merged)"
    front = "library_name: transformers\npipeline_tag: text-generation\ntags: [phiops, sft, trl]\n"
    if not Path(args.base_model).is_dir():
        front += f"base_model: {args.base_model}\n"  # a hub id the hub can link to
    return (
        f"---\n{front}---\n\n# Fine-tuned {args.base_model}\n\n"
        f"Supervised fine-tuning with TRL ({method}) on `{args.train_file.name}`: "
        f"{trainer.state.global_step} steps, {args.epochs:g} epochs, learning rate "
        f"{args.learning_rate:g}, max length {args.max_length}.\n"
    )


def merge_lora_in_fp32(peft_model, args, tokenizer):
    """The adapter merged into an fp32 copy of the base, read again from its files.

    Merging into the base as trained (bf16 on a GPU) adds each low-rank update to bf16
    weights, rounding small updates away; here W + scale * B @ A is computed in fp32 and
    rounded once, when the caller casts the result to the save dtype. The copy is built on
    the CPU, so the GPU needs no room for it.
    """
    import torch
    from peft import get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict
    from phi3_chat import align_generation_config
    from transformers import AutoModelForCausalLM

    adapter = {
        k: v.detach().float().cpu() for k, v in get_peft_model_state_dict(peft_model).items()
    }
    base = AutoModelForCausalLM.from_pretrained(
        args.base_model, revision=hub_revision(args), dtype=torch.float32
    )
    trained_embeddings = peft_model.get_input_embeddings()
    if base.get_input_embeddings().weight.shape != trained_embeddings.weight.shape:
        base.resize_token_embeddings(len(tokenizer), pad_to_multiple_of=64)  # an added pad token
        for mine, trained in (
            (base.get_input_embeddings(), trained_embeddings),
            (base.get_output_embeddings(), peft_model.get_output_embeddings()),
        ):
            mine.weight.data.copy_(trained.weight.detach().float().cpu())
    fp32 = get_peft_model(base, peft_model.peft_config["default"])
    set_peft_model_state_dict(fp32, adapter)
    merged = fp32.merge_and_unload()
    align_generation_config(merged, tokenizer)
    return merged


def save_outputs(trainer, tokenizer, args, tracking, save_dtype: str) -> None:
    """Write D/hf_model and D/mlflow_model, each complete or not at all; a full or merged
    model is cast once to `save_dtype` (the base's own dtype unless asked otherwise)."""
    import torch
    from mlflow_tracking import PackagedModel, save_mlflow_model

    model = trainer.accelerator.unwrap_model(trainer.model)
    if args.lora and not args.no_merge:
        model = merge_lora_in_fp32(model, args, tokenizer)
    if not (args.lora and args.no_merge):  # an adapter alone stays in fp32
        model = model.to(getattr(torch, save_dtype))
    model.config.use_cache = True  # turned off for gradient checkpointing; serving wants it
    hf_dir = args.model_output_dir / "hf_model"
    with _replace_dir(hf_dir) as staging:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)  # the serving template: unchanged by training
        model.generation_config.save_pretrained(staging)
        (staging / "README.md").write_text(model_card(args, trainer), encoding="utf-8")
    package = PackagedModel(
        model=model,
        tokenizer=tokenizer,
        base_model=args.base_model,
        card=model_card(args, trainer),
        # An unmerged adapter's MLflow model refers to a local base by path, a hub base by id.
        base_model_path=args.base_model
        if args.no_merge and Path(args.base_model).is_dir()
        else None,
    )
    with _replace_dir(args.model_output_dir / "mlflow_model") as staging:
        shutil.rmtree(staging)  # mlflow wants to create the folder itself
        save_mlflow_model(package, staging)
    azure_job.log_model(tracking, package)


class _replace_dir:
    """Build a folder beside `target` and swap it in only when complete."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __enter__(self) -> Path:
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self.staging = Path(
            tempfile.mkdtemp(prefix=f".{self.target.name}.", dir=self.target.parent)
        )
        return self.staging

    def __exit__(self, kind, error, tb) -> None:
        if kind is not None:
            shutil.rmtree(self.staging, ignore_errors=True)
            return
        old = self.target.with_name(f".{self.target.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        if self.target.exists():
            self.target.rename(old)
        self.staging.rename(self.target)
        shutil.rmtree(old, ignore_errors=True)


def train(args, data: ChatData, events, stop, tracking) -> None:
    """Everything between validated data and a saved model."""
    import hardware as machine
    from callbacks import CheckpointCallback, MetricsCallback, ProgressEventsCallback
    from checkpoints import Interrupted
    from datasets import Dataset
    from progress_events import ThroughputMeter
    from transformers.utils import logging as hf_logging
    from trl import SFTTrainer

    if not sys.stderr.isatty():
        hf_logging.disable_progress_bar()
    hardware = machine.detect(
        args.dtype,
        args.attn_implementation,
        args.packing_strategy,
        frozen_base=args.lora,
        pure_bf16=args.pure_bf16,
    )
    precision = hardware.precision
    print(
        f"Hardware: {hardware.device} ({hardware.gpus} GPUs), compute {precision.compute}, "
        f"{'trainable' if not args.lora else 'base'} weights {precision.weights}"
        f"{', autocast' if precision.autocast else ''}, attention {hardware.attention}, "
        f"packing {hardware.packing_strategy if args.packing else 'off'}",
        flush=True,
    )
    if args.pure_bf16 and not precision.pure:
        raise JobError(
            f"--pure-bf16 needs a bf16 GPU; this machine computes in {precision.compute}"
        )
    if precision.pure:
        print(
            "Warning: --pure-bf16 keeps the weights and AdamW states in bf16; updates smaller "
            "than half a bf16 step (most at lr 5e-6) are rounded away.",
            flush=True,
        )
    events.emit("loading", message=f"loading {args.base_model}")
    tokenizer, model, base_dtype = load_base(args, hardware)
    save_dtype = base_dtype if args.save_dtype == "auto" else args.save_dtype

    checkpoints = azure_job.checkpoint_dir(args.model_output_dir)
    resume_from = (
        azure_job.resume_point(args.model_output_dir, checkpoints) if args.resume else None
    )
    if args.resume and resume_from is None:
        print(f"No checkpoint in {checkpoints}: starting from step 0.", flush=True)
    meter = ThroughputMeter()
    checkpoint_callback = CheckpointCallback(stop)
    serving_template = tokenizer.chat_template
    if has_zero_weight(data.train) or has_zero_weight(data.eval):
        tokenizer.chat_template = weighted_template(tokenizer)  # while the data is tokenized
        args.assistant_only_loss = True
        print("Assistant turns with weight 0: the loss is on the other assistant turns.")
    try:
        trainer = SFTTrainer(
            model=model,
            args=build_config(args, hardware, checkpoints),
            train_dataset=Dataset.from_list([{"messages": m} for m in data.train]),
            eval_dataset=Dataset.from_list([{"messages": m} for m in data.eval]),
            processing_class=tokenizer,
            peft_config=lora_config(args, hardware) if args.lora else None,
            callbacks=[
                ProgressEventsCallback(events, meter),
                MetricsCallback(tracking, meter),
                checkpoint_callback,
                *azure_job.mirror_callbacks(checkpoints, args.model_output_dir),
            ],
        )
    finally:
        tokenizer.chat_template = serving_template  # what is saved and served
    tracking.start()
    tracking.log_params(
        curated_params(args, hardware, trainer.model, len(data.train), len(data.eval), save_dtype)
    )
    if resume_from is not None:
        print(f"Resuming from {resume_from}", flush=True)
        events.emit("loading", message=f"resuming from {resume_from.name}")
    trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    if checkpoint_callback.stopped_at is not None:
        step = checkpoint_callback.stopped_at
        raise Interrupted(f"stopped by {stop.signal_name} at step {step}; checkpoint-{step} saved")
    if hardware.device == "cuda":
        import torch

        print(f"Peak GPU memory: {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB", flush=True)
    if is_main_process():
        events.emit(
            "saving", step=trainer.state.global_step, max_steps=trainer.state.max_steps,
            message="saving the model",
        )  # fmt: skip
        save_outputs(trainer, tokenizer, args, tracking, save_dtype)


def gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)  # exits 2 on a usage error
    args.model_output_dir = args.model_output_dir.resolve()
    if not sys.stderr.isatty():  # job logs are files: no progress bars redrawn with \r
        os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    # Light imports only until the data is known good: a bad row is reported in a second.
    import hardware as machine
    from checkpoints import INTERRUPTED_EXIT, GracefulStop, Interrupted
    from mlflow_tracking import Tracking, tracking_requested
    from progress_events import EventLog

    stop = GracefulStop()
    stop.install()
    events = EventLog(
        args.events_file or args.model_output_dir / "events.jsonl", enabled=is_main_process()
    )
    tracking = Tracking(enabled=tracking_requested() and is_main_process())
    try:
        events.emit("setup", message="validating data")
        data = ChatData(read_chat_rows(args.train_file), read_chat_rows(args.eval_file))
        print(
            f"Data: {len(data.train)} training rows, {len(data.eval)} evaluation rows", flush=True
        )
        problem = azure_job.gpu_problem(args.require_gpu, args.allow_cpu)
        if problem:
            raise JobError(problem)
        if not args.no_distributed and not machine.is_distributed_child() and gpu_count() > 1:
            return machine.relaunch_on_all_gpus(gpu_count(), sys.argv[1:] if argv is None else argv)
        train(args, data, events, stop, tracking)
    except Interrupted as error:
        stop.ignore()  # a second signal must not cut the report short
        message = f"{error}; run again with --resume to continue from the last checkpoint"
        print(f"fine_tune: {message}", file=sys.stderr, flush=True)
        events.emit("interrupted", message=message)
        tracking.end("KILLED")
        return INTERRUPTED_EXIT
    except (InvalidDataError, JobError) as error:
        print(f"fine_tune: {error}", file=sys.stderr, flush=True)
        events.emit("failed", message=str(error))
        tracking.end("FAILED")
        return 1
    except Exception as error:
        traceback.print_exc()
        message = f"{type(error).__name__}: {error}".splitlines()[0]
        print(f"fine_tune: training failed: {message}", file=sys.stderr, flush=True)
        events.emit("failed", message=message)
        tracking.end("FAILED")
        return 1
    events.emit("done", message=f"model saved to {args.model_output_dir}")
    azure_job.after_training("close the MLflow run", tracking.end, "FINISHED")
    print(f"Done: model saved to {args.model_output_dir}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
