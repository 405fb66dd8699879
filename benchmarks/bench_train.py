"""Training throughput and memory: the seed's recipe against phiops' default and `--lora`.

    .venv/bin/python benchmarks/bench_train.py [--steps 12] [--size small]

One run, one machine, one model (a scaffolded Phi-3 of a few million parameters) and one
dataset, three configurations, each in its own subprocess so its peak RSS is its own:

  (a) seed      the seed's recipe as the seed's code runs it: chat rows pre-rendered to a
                `text` column, packing, max length 2048, batch 4, gradient checkpointing,
                full fine-tune, and the attention kernel it asks for — FlashAttention-2 —
                which a machine without flash-attn (this one) replaces by eager attention;
  (b) phiops    `trainer/fine_tune.py` with its defaults (the same recipe, with attention,
                precision and packing strategy chosen by the hardware);
  (c) lora      (b) with `--lora`.

Tokens/s is the trainer's own count of input tokens over the last 10 optimizer steps
(the first steps warm up), read from the progress events every run writes. Peak RSS is
the process's high-water mark at the end of training (ru_maxrss from wait4; fine_tune runs
are stopped once they start saving, which is not training). MFU = 6 · parameters ·
tokens/s ÷ the matmul FLOP/s this machine reaches in this same run (fp32 torch.mm, the
best of samples taken before and after each configuration, since the CPU is shared).
Budgets: phiops ≥ seed in tokens/s; lora < phiops in peak RSS. Prints JSON; exits 1 if a
budget is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TRAINER = REPO / "trainer"
SEED_RECIPE = {
    "learning_rate": 5e-6,
    "lr_scheduler_type": "cosine",
    "warmup_steps": 0.2,
    "num_train_epochs": 3,
    "per_device_train_batch_size": 4,
    "max_length": 2048,
    "packing": True,
    "gradient_checkpointing": True,
    "seed": 0,
}

FACTS = [
    ("France", "Paris", "the Seine", "the Eiffel Tower"),
    ("Japan", "Tokyo", "the Sumida", "the Senso-ji temple"),
    ("Italy", "Rome", "the Tiber", "the Colosseum"),
    ("Egypt", "Cairo", "the Nile", "the pyramids of Giza"),
    ("Peru", "Lima", "the Rimac", "the Plaza Mayor"),
    ("Kenya", "Nairobi", "the Nairobi River", "the national park"),
    ("Canada", "Ottawa", "the Ottawa River", "Parliament Hill"),
    ("Norway", "Oslo", "the Akerselva", "the opera house"),
]


def write_dataset(path: Path, rows: int, seed: int = 0) -> Path:
    """Chat rows of a few hundred tokens each, enough to fill 2048-token packed blocks."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as handle:
        for index in range(rows):
            messages = [{"role": "system", "content": "You are a helpful travel assistant."}]
            for _ in range(rng.randint(1, 3)):
                country, capital, river, sight = rng.choice(FACTS)
                messages.append({"role": "user", "content": f"Tell me about {capital}."})
                answer = (
                    f"{capital} is the capital of {country}. It lies on {river}, and most "
                    f"visitors start with {sight}. Plan at least {rng.randint(2, 5)} days: "
                    f"the old town, the museums and a walk along {river} are worth it."
                )
                messages.append({"role": "assistant", "content": answer})
            handle.write(json.dumps({"prompt_id": str(index), "messages": messages}) + "\n")
    return path


def matmul_flops(size: int = 1024, seconds: float = 2.0) -> float:
    """The fp32 matmul FLOP/s this machine reaches now, with torch's default threads."""
    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    best = 0.0
    for _ in range(3):
        count, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds / 3:
            torch.mm(a, b)
            count += 1
        best = max(best, 2 * size**3 * count / (time.perf_counter() - started))
    return best


def parameter_count(model_dir: Path) -> int:
    """The model's parameters, counted on the meta device (no weights loaded)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model_dir))
    return sum(p.numel() for p in model.parameters())


def read_events(path: Path) -> list[dict]:
    if not path.exists():
        return []
    events = []
    for line in path.read_text().splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue
    return events


def measure(command: list[str], events_file: Path, timeout: float) -> dict:
    """Run one configuration; stop it when it starts saving; tokens/s and peak RSS."""
    started = time.monotonic()
    process = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "TOKENIZERS_PARALLELISM": "false"},
        start_new_session=True,
    )
    stderr_path = events_file.with_suffix(".stderr")
    try:
        while process.poll() is None and time.monotonic() - started < timeout:
            if any(e["phase"] in ("saving", "done") for e in read_events(events_file)):
                os.killpg(process.pid, signal.SIGKILL)  # training is over; saving isn't measured
                break
            time.sleep(0.2)
        else:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                raise RuntimeError(f"timed out after {timeout:.0f} s: {' '.join(command)}")
        _, _, usage = os.wait4(process.pid, 0)
    finally:
        stderr_path.write_bytes(process.stderr.read() if process.stderr else b"")
    events = read_events(events_file)
    rates = [e["tokens_per_second"] for e in events if "tokens_per_second" in e]
    if not rates:
        raise RuntimeError(f"no throughput measured; see {stderr_path}")
    return {
        "tokens_per_second": round(rates[-1], 1),
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
        "steps": max(e.get("step", 0) for e in events),
        "wall_seconds": round(time.monotonic() - started, 1),
    }


def seed_recipe(args: argparse.Namespace) -> None:
    """The seed's training code on today's TRL, changed only where the API moved."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    sys.path.insert(0, str(TRAINER))
    from callbacks import ProgressEventsCallback  # the same measurement as fine_tune.py
    from progress_events import EventLog, ThroughputMeter

    tokenizer = AutoTokenizer.from_pretrained(args.base_model)
    tokenizer.pad_token = tokenizer.unk_token  # the seed's choice (None here: TRL uses eos)
    tokenizer.padding_side = "right"
    model = AutoModelForCausalLM.from_pretrained(
        args.base_model, dtype=torch.float32, attn_implementation="eager", use_cache=False
    )
    rows = [json.loads(line) for line in Path(args.train_file).read_text().splitlines()]
    texts = [tokenizer.apply_chat_template(row["messages"], tokenize=False) for row in rows]
    config = SFTConfig(
        output_dir=args.output_dir,
        dataset_text_field="text",
        packing_strategy="wrapped",  # what the seed's ConstantLengthDataset packing did
        activation_checkpointing_kwargs={"use_reentrant": False},
        max_steps=args.steps,
        logging_steps=20,
        save_strategy="no",
        eval_strategy="no",
        bf16=False,
        report_to="none",
        include_num_input_tokens_seen="non_padding",
        disable_tqdm=True,
        **{k: v for k, v in SEED_RECIPE.items() if k != "gradient_checkpointing"},
        activation_checkpointing=SEED_RECIPE["gradient_checkpointing"],
    )
    events = EventLog(args.events_file)
    trainer = SFTTrainer(
        model=model,
        args=config,
        train_dataset=Dataset.from_list([{"text": text} for text in texts]),
        processing_class=tokenizer,
        callbacks=[ProgressEventsCallback(events, ThroughputMeter())],
    )
    trainer.train()
    events.emit("done")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--rows", type=int, default=1200)
    parser.add_argument("--size", choices=["tiny", "small"], default="small")
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--seed-recipe", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--base-model", help=argparse.SUPPRESS)
    parser.add_argument("--train-file", help=argparse.SUPPRESS)
    parser.add_argument("--output-dir", help=argparse.SUPPRESS)
    parser.add_argument("--events-file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.seed_recipe:
        seed_recipe(args)
        return 0

    work = Path(tempfile.mkdtemp(prefix="bench-train-"))
    train = write_dataset(work / "train.jsonl", args.rows)
    evaluation = write_dataset(work / "test.jsonl", 20, seed=1)
    base = work / "base"
    subprocess.run(
        [sys.executable, str(TRAINER / "scaffold_tiny.py"), str(base), "--size", args.size,
         "--from-data", str(train)],
        check=True, capture_output=True,
    )  # fmt: skip
    params = parameter_count(base)
    flops_samples = [matmul_flops()]

    fine_tune = [
        sys.executable, str(TRAINER / "fine_tune.py"),
        "--train-file", str(train), "--eval-file", str(evaluation),
        "--base-model", str(base), "--max-steps", str(args.steps),
        "--eval-strategy", "no", "--save-steps", "100000",
    ]  # fmt: skip
    configs = {
        "seed": [
            sys.executable, __file__, "--seed-recipe", "--steps", str(args.steps),
            "--base-model", str(base), "--train-file", str(train),
            "--output-dir", str(work / "seed"), "--events-file", str(work / "seed.events"),
        ],
        "phiops": [*fine_tune, "--model-output-dir", str(work / "phiops"),
                   "--events-file", str(work / "phiops.events")],
        "lora": [*fine_tune, "--lora", "--model-output-dir", str(work / "lora"),
                 "--events-file", str(work / "lora.events")],
    }  # fmt: skip
    results = {}
    for name, command in configs.items():
        results[name] = measure(command, work / f"{name}.events", args.timeout)
        flops_samples.append(matmul_flops())
    # The CPU is shared: the best matmul rate seen in this run is the machine's capability.
    flops = max(flops_samples)
    for result in results.values():
        result["mfu"] = round(6 * params * result["tokens_per_second"] / flops, 4)

    seed, phiops, lora = results["seed"], results["phiops"], results["lora"]
    report = {
        "benchmark": "train",
        "model": {"architecture": "Phi3ForCausalLM", "size": args.size, "parameters": params},
        "data": {"rows": args.rows, "max_length": 2048, "batch_size": 4, "steps": args.steps},
        "machine": {
            "cpus": os.cpu_count(),
            "matmul_gflops": round(flops / 1e9, 1),
            "matmul_gflops_samples": [round(f / 1e9, 1) for f in flops_samples],
        },
        "configs": results,
        "ratios": {
            "phiops_vs_seed_tokens_per_second": round(
                phiops["tokens_per_second"] / seed["tokens_per_second"], 3
            ),
            "lora_vs_phiops_peak_rss": round(lora["peak_rss_mib"] / phiops["peak_rss_mib"], 3),
        },
        "budgets": {
            "phiops_at_least_as_fast_as_seed": phiops["tokens_per_second"]
            >= seed["tokens_per_second"],
            "lora_uses_less_memory": lora["peak_rss_mib"] < phiops["peak_rss_mib"],
        },
        "notes": "seed = the seed's recipe with eager attention (its FlashAttention-2 is not "
        "installed here); phiops picks SDPA, fp32 and wrapped packing on this CPU; lora is "
        "phiops + --lora as chosen for this CPU: rank-16 updates added to the weights of a "
        "frozen bf16 base (native AVX512-BF16), adapters in fp32. MFU uses "
        "6*params per token for all three and the best fp32 matmul rate sampled before and "
        "after each config (the 2 cores are shared); lora computes in bf16, so its MFU "
        "against the fp32 rate overstates its utilisation.",
    }
    print(json.dumps(report, indent=2))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if all(report["budgets"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
