"""Training throughput, memory and MFU: the seed's recipe against phiops' default and `--lora`.

    .venv/bin/python benchmarks/bench_train.py [--steps 12] [--size small]
    python benchmarks/bench_train.py --device cuda --size phi3-mini   # on a GPU machine

One run, one machine, one model and one dataset, three configurations, each in its own
subprocess so its peak memory is its own:

  (a) seed      the seed's recipe as the tutorial writes it: chat rows pre-rendered to a
                `text` column, wrapped packing, max length 2048, batch 4, gradient
                checkpointing, a full fine-tune of bf16 weights (bf16 AdamW states) with eager
                attention — the tutorial asks for `attn_implementation="eager"` and bf16, not
                FlashAttention;
  (b) phiops    `trainer/fine_tune.py` with its defaults: fp32 master weights under bf16
                autocast on a GPU (fp32 on a CPU), SDPA or FlashAttention-2, bfd packing;
  (c) lora      (b) with `--lora` (r 16 on qkv/o/gate_up/down, frozen base).

The model is the scaffolded Phi-3-mini twin (`--size tiny|small`, a few million parameters,
Phi-3-mini's 32064-token vocabulary) or, with `--size phi3-mini`, Phi-3-mini's real shape
(3.8 B parameters, random weights, nothing downloaded).

Tokens/s is the trainer's own count of input tokens over the last optimizer steps, read from
the progress events every run writes. Peak memory: on CPU the process's high-water RSS
(ru_maxrss from wait4), on a GPU the trainer's `torch.cuda.max_memory_allocated` (it prints
it). Runs are stopped once they start saving, which is not training.

FLOPs per token: 6N + attention for a full fine-tune (forward 2N, backward 4N), ~4N +
attention for LoRA (the backward skips the frozen weights' gradients), where N counts the
parameters every token passes through (the input embedding is a lookup and is left out) and
attention is 12 x layers x hidden x (keys a query sees on average: half the packed row for
wrapped packing, half of each conversation for bfd). MFU = FLOPs/token x tokens/s / peak:
on a GPU its dense bf16 peak (A100 312, H100/H200 SXM 989 TFLOP/s); on a CPU the best matmul
rate measured in this run in the dtype the configuration computes in, since the 2 cores are
shared. Budgets: phiops >= seed in tokens/s; on CPU lora < phiops in peak memory; on a GPU
lora >= 1.7x phiops tokens/s and phiops MFU >= 0.40. Prints JSON; exits 1 if a budget is
missed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
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
# Dense bf16 tensor-core peaks (FLOP/s), by the device name torch reports.
GPU_PEAKS = {"A100": 312e12, "H100": 989e12, "H200": 989e12, "H800": 989e12, "L40S": 362e12}
GPU_PEAKS_PCIE = {"H100": 756e12}

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


def matmul_flops(dtype: str = "float32", size: int = 1024, seconds: float = 2.0) -> float:
    """The matmul FLOP/s this CPU reaches now in `dtype`, with torch's default threads."""
    import torch

    a = torch.randn(size, size, dtype=getattr(torch, dtype))
    b = torch.randn(size, size, dtype=getattr(torch, dtype))
    torch.mm(a, b)
    best = 0.0
    for _ in range(3):
        count, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds / 3:
            torch.mm(a, b)
            count += 1
        best = max(best, 2 * size**3 * count / (time.perf_counter() - started))
    return best


def gpu_peak() -> tuple[str, float]:
    import torch

    name = torch.cuda.get_device_name(0)
    for table in ((GPU_PEAKS_PCIE if "PCIe" in name else {}), GPU_PEAKS):
        for key, peak in table.items():
            if key in name:
                return name, peak
    raise SystemExit(f"no bf16 peak known for {name}; add it to GPU_PEAKS")


def model_shape(model_dir: Path) -> dict:
    """Parameters (total, and those a token passes through) and the attention shape."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(model_dir)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    total = sum(p.numel() for p in model.parameters())
    return {
        "parameters": total,
        "matmul_parameters": total - model.get_input_embeddings().weight.numel(),
        "layers": config.num_hidden_layers,
        "hidden": config.hidden_size,
    }


def mean_keys(data: Path, model_dir: Path, max_length: int, packing: str) -> float:
    """Keys an average query attends to: half the row when wrapped, half its conversation
    (token-weighted, truncated at max_length) when packed with bfd."""
    if packing == "wrapped":
        return (max_length + 1) / 2
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    lengths = []
    for line in data.read_text().splitlines():
        messages = json.loads(line)["messages"]
        ids = tokenizer.apply_chat_template(messages, return_dict=True)["input_ids"]
        lengths.append(min(len(ids), max_length))
    return sum(n * (n + 1) / 2 for n in lengths) / sum(lengths)


def flops_per_token(shape: dict, keys: float, lora: bool) -> float:
    attention = 12 * shape["layers"] * shape["hidden"] * keys
    return (4 if lora else 6) * shape["matmul_parameters"] + attention


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
    """Run one configuration; stop it when it starts saving; tokens/s and peak memory."""
    started = time.monotonic()
    log = events_file.with_suffix(".log")
    with log.open("wb") as output:
        process = subprocess.Popen(
            command,
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, "TOKENIZERS_PARALLELISM": "false"},
            start_new_session=True,
        )
        while process.poll() is None and time.monotonic() - started < timeout:
            if any(e["phase"] in ("saving", "done") for e in read_events(events_file)):
                os.killpg(process.pid, signal.SIGKILL)  # saving is not training
                break
            time.sleep(0.2)
        else:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                raise RuntimeError(f"timed out after {timeout:.0f} s: {' '.join(command)}")
        _, _, usage = os.wait4(process.pid, 0)
    events = read_events(events_file)
    rates = [e["tokens_per_second"] for e in events if "tokens_per_second" in e]
    if not rates:
        raise RuntimeError(f"no throughput measured; see {log}")
    text = log.read_text(errors="replace")
    gpu = re.findall(r"Peak GPU memory: ([0-9.]+) GiB", text)  # printed before "saving"
    compute = re.findall(r"compute (\w+)", text)  # fine_tune's "Hardware:" line
    return {
        "compute_dtype": compute[0] if compute else "bfloat16",  # the seed: bf16 weights
        "tokens_per_second": round(rates[-1], 1),
        "peak_memory_gib": round(float(gpu[-1]), 2) if gpu else None,
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
    tokenizer.pad_token = tokenizer.unk_token  # the seed's choice
    tokenizer.padding_side = "right"
    model = AutoModelForCausalLM.from_pretrained(
        args.base_model, dtype=torch.bfloat16, attn_implementation="eager", use_cache=False
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
        bf16=True,  # over bf16 weights: pure bf16
        use_cpu=not torch.cuda.is_available(),
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
    if torch.cuda.is_available():
        print(f"Peak GPU memory: {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB", flush=True)
    events.emit("done")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--rows", type=int, default=1200)
    parser.add_argument("--size", choices=["tiny", "small", "phi3-mini"], default="small")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
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
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device here")
    if args.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # the trainer must not find a GPU either

    work = Path(tempfile.mkdtemp(prefix="bench-train-"))
    train = write_dataset(work / "train.jsonl", args.rows)
    evaluation = write_dataset(work / "test.jsonl", 20, seed=1)
    base = work / "base"
    subprocess.run(
        [sys.executable, str(TRAINER / "scaffold_tiny.py"), str(base), "--size", args.size,
         "--from-data", str(train)],
        check=True, capture_output=True,
    )  # fmt: skip
    shape = model_shape(base)

    fine_tune = [
        sys.executable, str(TRAINER / "fine_tune.py"),
        "--train-file", str(train), "--eval-file", str(evaluation),
        "--base-model", str(base), "--max-steps", str(args.steps),
        "--eval-strategy", "no", "--save-steps", "100000", "--logging-steps", "1",
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
    # How each configuration packs, for the attention FLOPs.
    on_cpu = args.device == "cpu"
    packing = {"seed": "wrapped", "phiops": "bfd", "lora": "bfd"}
    samples: dict[str, list[float]] = {"float32": [], "bfloat16": []}

    def sample_cpu_peaks() -> None:
        if on_cpu:
            for dtype in samples:
                samples[dtype].append(matmul_flops(dtype))

    sample_cpu_peaks()
    results = {}
    for name, command in configs.items():
        results[name] = measure(command, work / f"{name}.events", args.timeout)
        sample_cpu_peaks()
    device_name, peak = ("cpu", 0.0) if on_cpu else gpu_peak()
    for name, result in results.items():
        keys = mean_keys(train, base, SEED_RECIPE["max_length"], packing[name])
        per_token = flops_per_token(shape, keys, lora=name == "lora")
        # The CPU is shared: the best rate seen in this run is the machine's capability.
        ceiling = max(samples[result["compute_dtype"]]) if on_cpu else peak
        result["flops_per_token"] = round(per_token)
        result["mfu"] = round(per_token * result["tokens_per_second"] / ceiling, 4)

    seed, phiops, lora = results["seed"], results["phiops"], results["lora"]
    memory = "peak_rss_mib" if on_cpu else "peak_memory_gib"
    budgets = {"phiops_at_least_as_fast_as_seed": phiops["tokens_per_second"]
               >= seed["tokens_per_second"]}  # fmt: skip
    if on_cpu:
        budgets["lora_uses_less_memory"] = lora[memory] < phiops[memory]
    else:
        budgets["lora_at_least_1.7x_phiops"] = (
            lora["tokens_per_second"] >= 1.7 * phiops["tokens_per_second"]
        )
        budgets["phiops_mfu_at_least_0.40"] = phiops["mfu"] >= 0.40
    report = {
        "benchmark": "train",
        "model": {"architecture": "Phi3ForCausalLM", "size": args.size, **shape},
        "data": {"rows": args.rows, "max_length": 2048, "batch_size": 4, "steps": args.steps},
        "machine": {
            "device": device_name,
            "cpus": os.cpu_count(),
            **({"peak_tflops": peak / 1e12} if not on_cpu else {}),
            **{
                f"matmul_gflops_{dtype}": [round(f / 1e9, 1) for f in rates]
                for dtype, rates in samples.items()
                if rates
            },
        },
        "configs": results,
        "ratios": {
            "phiops_vs_seed_tokens_per_second": round(
                phiops["tokens_per_second"] / seed["tokens_per_second"], 3
            ),
            "lora_vs_phiops_tokens_per_second": round(
                lora["tokens_per_second"] / phiops["tokens_per_second"], 3
            ),
            f"lora_vs_phiops_{memory}": round(lora[memory] / phiops[memory], 3),
        },
        "budgets": budgets,
    }
    print(json.dumps(report, indent=2))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if all(budgets.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
