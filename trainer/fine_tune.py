"""Fine-tune a Phi-3 chat model with TRL's SFTTrainer: the same script locally and on Azure ML.

    python fine_tune.py --train-file train.jsonl --eval-file test.jsonl \\
        --model-output-dir outputs/model [--base-model microsoft/Phi-3-mini-4k-instruct] \\
        [--lora] [--resume] [--events-file events.jsonl]

Defaults are the seed's recipe for Phi-3-mini (lr 5e-6, cosine, 20% warm-up, 3 epochs,
batch 4, packing, max length 2048, gradient checkpointing, evaluation each epoch, seed 0).

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


@dataclass(frozen=True)
class ChatData:
    train: list[list[dict[str, str]]]
    eval: list[list[dict[str, str]]]


class JobError(Exception):
    """A failure the user can act on; printed as one sentence, without a traceback."""


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
        "--events-file",
        type=Path,
        default=os.environ.get("PHIOPS_EVENTS_FILE") or None,
        help="progress events JSONL (default $PHIOPS_EVENTS_FILE, else D/events.jsonl)",
    )
    io.add_argument("--resume", action="store_true", help="continue from D/checkpoints' latest")

    recipe = parser.add_argument_group("recipe")
    recipe.add_argument("--learning-rate", type=float, default=5e-6)
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
        help="auto: bfd with FlashAttention (padding-free), wrapped otherwise",
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
        "--dtype", choices=["auto", "bfloat16", "float16", "float32"], default="auto"
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
    if args.eval_strategy == "steps" and not args.eval_steps:
        parser.error("--eval-strategy steps needs --eval-steps")
    for name in ("batch_size", "eval_batch_size", "max_length", "save_steps", "logging_steps"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def load_base(args, hardware):
    """The tokenizer (with a chat template and a real pad token) and the model to train."""
    import torch
    from phi3_chat import align_generation_config, ensure_chat_template, ensure_pad_token
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(args.base_model)
        model = AutoModelForCausalLM.from_pretrained(
            args.base_model,
            dtype=getattr(torch, hardware.dtype),
            attn_implementation=hardware.attention,
        )
    except (OSError, ValueError) as error:  # missing folder, unknown hub id, offline
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise JobError(f"could not load base model {args.base_model!r}: {first_line}") from None
    if ensure_chat_template(tokenizer):
        print("The base model has no chat template: using Phi-3's.", flush=True)
    if ensure_pad_token(tokenizer):
        model.resize_token_embeddings(len(tokenizer), pad_to_multiple_of=64)
        print(f"Added a pad token {tokenizer.pad_token!r} (the model had none).", flush=True)
    align_generation_config(model, tokenizer)
    return tokenizer, model


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
        # Mixed precision on GPU; on CPU a bf16 (LoRA) base simply computes in bf16.
        bf16=hardware.dtype == "bfloat16" and hardware.device == "cuda",
        fp16=hardware.dtype == "float16",
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


def curated_params(args, hardware, model, train_rows: int, eval_rows: int) -> dict:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    params = {
        "base_model": args.base_model,
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


def save_outputs(trainer, tokenizer, args, tracking) -> None:
    """Write D/hf_model and D/mlflow_model, each complete or not at all."""
    from mlflow_tracking import PackagedModel, save_mlflow_model

    model = trainer.accelerator.unwrap_model(trainer.model)
    if args.lora and not args.no_merge:
        model = model.merge_and_unload()
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
        args.dtype, args.attn_implementation, args.packing_strategy, frozen_base=args.lora
    )
    print(
        f"Hardware: {hardware.device} ({hardware.gpus} GPUs), {hardware.dtype}, "
        f"attention {hardware.attention}, packing {hardware.packing_strategy}",
        flush=True,
    )
    events.emit("loading", message=f"loading {args.base_model}")
    tokenizer, model = load_base(args, hardware)

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
        curated_params(args, hardware, trainer.model, len(data.train), len(data.eval))
    )
    if resume_from is not None:
        print(f"Resuming from {resume_from}", flush=True)
        events.emit("loading", message=f"resuming from {resume_from.name}")
    trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    if checkpoint_callback.stopped_at is not None:
        step = checkpoint_callback.stopped_at
        raise Interrupted(f"stopped by {stop.signal_name} at step {step}; checkpoint-{step} saved")
    if is_main_process():
        events.emit(
            "saving", step=trainer.state.global_step, max_steps=trainer.state.max_steps,
            message="saving the model",
        )  # fmt: skip
        save_outputs(trainer, tokenizer, args, tracking)


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
