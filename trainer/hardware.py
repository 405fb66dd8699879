"""Choices that depend on the machine: precision, attention kernel, packing, process launch.

One script serves a 2-core laptop and a multi-GPU Azure ML node, so nothing here is a
flag the user must get right; every choice can still be overridden from the command line.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Precision:
    """Which tensors live in which dtype during training.

    `compute` is what the matmuls run in; `weights` is what the model is loaded in: the
    trainable master weights (and so AdamW's states) of a full fine-tune, or the frozen base
    of a LoRA run, whose adapters PEFT keeps in fp32. `autocast` turns on the trainer's mixed
    precision (bf16/fp16 autocast; for fp16 also the gradient scaler).
    """

    compute: str  # "bfloat16" | "float16" | "float32"
    weights: str
    autocast: bool

    @property
    def pure(self) -> bool:
        """Trainable weights in half precision: updates below half a ulp round to nothing."""
        return self.weights != "float32" and not self.autocast


@dataclass(frozen=True)
class Hardware:
    device: str  # "cuda" or "cpu"
    gpus: int
    precision: Precision
    attention: str  # "flash_attention_2" | "sdpa" | "eager"
    packing_strategy: str  # "bfd" | "bfd_split" (position-id packing) | "wrapped"

    @property
    def dtype(self) -> str:
        return self.precision.compute


def precision_plan(compute: str, lora: bool, pure_bf16: bool = False) -> Precision:
    """The dtypes of a run that computes in `compute`; the same on a GPU and on a CPU.

    A full fine-tune keeps fp32 master weights under bf16/fp16 autocast: at a learning rate
    of 5e-6 an AdamW update is below half a bf16 ulp for any |w| above ~1e-3, so bf16
    weights (and bf16 optimizer states) would not move. It costs 16 bytes a parameter
    (Phi-3-mini: ~57 GiB, an 80 GB A100/H100 with gradient checkpointing) and, on fp16-only
    GPUs, is what lets the gradient scaler work (it refuses fp16 gradients). `pure_bf16`
    keeps the weights in bf16 instead (half the memory; the caller warns). LoRA loads the
    frozen base in `compute` and trains fp32 adapters under autocast.
    """
    if compute == "float32":
        return Precision("float32", "float32", autocast=False)
    if lora:
        return Precision(compute, compute, autocast=True)
    if pure_bf16 and compute == "bfloat16":
        return Precision(compute, compute, autocast=False)
    return Precision(compute, "float32", autocast=True)


def detect(
    dtype: str = "auto",
    attention: str = "auto",
    packing_strategy: str = "auto",
    frozen_base: bool = False,
    pure_bf16: bool = False,
) -> Hardware:
    """Precision, attention kernel and packing for this machine.

    Compute dtype: bf16 where the GPU supports it (fp16 on older GPUs). On CPU fp32 for a
    full fine-tune, but bf16 for a frozen LoRA base when the CPU computes bf16 natively
    (AVX512-BF16/AMX). An explicit `dtype` runs the same plan on any device, so a CPU run
    with `--dtype bfloat16` uses the dtypes a bf16 GPU would (see `precision_plan`).
    Attention: FlashAttention-2 where it is installed on a GPU, else PyTorch's SDPA.
    Packing: BFD (padding-free, position ids restart at each conversation) on every
    attention kernel: FlashAttention reads the boundaries from the position ids, and
    transformers builds the same block-diagonal mask from them for SDPA and eager.
    """
    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if dtype == "auto":
        if gpus:
            dtype = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
        else:
            dtype = "bfloat16" if frozen_base and cpu_has_native_bf16() else "float32"
    if attention == "auto":
        attention = "flash_attention_2" if gpus and _has_flash_attention() else "sdpa"
    if packing_strategy in ("auto", None):
        packing_strategy = "bfd"
    return Hardware(
        "cuda" if gpus else "cpu",
        gpus,
        precision_plan(dtype, frozen_base, pure_bf16),
        attention,
        packing_strategy,
    )


def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX (Linux /proc/cpuinfo); elsewhere assume not, bf16 would be emulated."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            flags = next((line for line in handle if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def _has_flash_attention() -> bool:
    from transformers.utils import is_flash_attn_2_available

    return is_flash_attn_2_available()


def is_distributed_child() -> bool:
    """True inside a process torchrun, accelerate or Azure ML's PyTorch distribution started."""
    return "LOCAL_RANK" in os.environ or int(os.environ.get("WORLD_SIZE", "1")) > 1


def relaunch_on_all_gpus(gpus: int, argv: list[str]) -> int:
    """Run this script once per GPU under torchrun and return its exit code.

    Used when a single process finds several GPUs (a local multi-GPU box, or an Azure ML
    job without a `distribution` block). Azure ML's PyTorch distribution starts one
    process per GPU itself and sets WORLD_SIZE, so this is skipped there. torchrun and the
    workers share our process group, so a cancel's SIGTERM reaches every worker, and they
    agree on the step to checkpoint; torchrun passes the signal on too (ignored as a
    duplicate) and kills workers still alive 30 s later, so very large full fine-tunes
    whose checkpoint takes longer should use Azure ML's distribution instead.
    """
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={gpus}",
        os.path.abspath(sys.argv[0]),
        *argv,
    ]
    print(f"Found {gpus} GPUs: relaunching under torchrun", flush=True)
    child = subprocess.Popen(command)
    signalled = []

    def forward(signum: int, frame) -> None:
        signalled.append(signum)
        child.send_signal(signum)  # when only we were signalled; a duplicate is ignored

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, forward)
    code = child.wait()
    if signalled and code != 0:
        from checkpoints import INTERRUPTED_EXIT

        return INTERRUPTED_EXIT
    return code
