"""Benchmark: the local endpoint against calling `model.generate` yourself, on one machine.

A Phi-3-architecture model of a few million parameters (`trainer/scaffold_tiny.py --size
small`, its tokenizer trained on the Brindlemoor sample) is registered in a throw-away
project's MLflow registry and deployed to a real local endpoint (gateway + scoring server
processes). Every generation is greedy with `min_new_tokens == max_new_tokens`, so each
answer is exactly the same number of tokens whichever way it is produced.

Budgets (issue 6), ratios against baselines measured in the same run:
- concurrency 1: p50 latency of a request through the endpoint (HTTP, gateway, server,
  queue, generation) at most 10% over p50 of tokenize + `model.generate` + decode in this
  process. Direct and endpoint calls are interleaved, so both see the same machine load,
  and both use the same number of torch threads (the server's default, half the CPUs).
- concurrency 8: 8 clients sending back-to-back get at least 4x the throughput of the same
  endpoint serving one request at a time, and the result is also reported as a fraction
  of the ceiling: one batched `generate` of the 8 prompts in this process. Each wave of
  the 8 clients is interleaved with one-at-a-time requests and a ceiling run, so the
  three see the same machine load; throughputs are totals over all waves.

Prints one JSON object; exits 1 when a budget is missed.
Usage: `python benchmarks/bench_serve.py [--rounds 30] [--waves 3] [--per-client 10]`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

BUDGET_OVERHEAD = 0.10
BUDGET_SPEEDUP = 4.0
CONCURRENCY = 8
QUESTIONS = [
    "What colour is the lighthouse light on Brindlemoor?",
    "Who keeps the lighthouse?",
    "What do people drink on the island?",
    "How does the ferry get to Brindlemoor, and what is it called?",
    "Which birds nest on the cliffs?",
    "How often does the light flash?",
    "What is the best time of year to visit the island and why?",
    "Where can I buy bread?",
]


def scaffold(out: Path) -> None:
    sample = REPO / "core" / "data" / "sample" / "sample.jsonl"
    command = [sys.executable, str(REPO / "trainer" / "scaffold_tiny.py"), str(out)]
    command += ["--size", "small", "--from-data", str(sample)]
    subprocess.run(command, check=True, capture_output=True, timeout=300)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=30, help="timed calls each way at c=1")
    parser.add_argument("--tokens", type=int, default=64, help="new tokens per answer")
    parser.add_argument("--waves", type=int, default=3, help="c=8 waves (each with baselines)")
    parser.add_argument("--per-client", type=int, default=10, help="requests per client a wave")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="phiops-bench-serve-"))
    try:
        return run(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(args: argparse.Namespace, work: Path) -> int:
    os.environ["PHIOPS_HOME"] = str(work / "home")  # keys go to a throw-away secret store
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    for variable in [v for v in os.environ if v.startswith("PHIOPS_") and v != "PHIOPS_HOME"]:
        del os.environ[variable]

    import httpx
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from core.backend import ModelVersion, RequestSettings
    from core.config import load_config
    from core.local.endpoints import LocalEndpoints
    from core.local.registry import LocalRegistry
    from core.serving.engine import default_threads

    torch.set_num_threads(default_threads())  # as many as the scoring server uses

    model_dir = work / "model"
    scaffold(model_dir)
    (work / "phiops.toml").write_text('[project]\nbackend = "local"\n')
    config = load_config(work / "phiops.toml")

    # -- the direct baseline, in this process ---------------------------------------------
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(str(model_dir)).eval()
    params = sum(p.numel() for p in model.parameters())
    generation = {"max_new_tokens": args.tokens, "min_new_tokens": args.tokens, "do_sample": False}
    prompts = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True
        )
        for q in QUESTIONS
    ]

    def direct(texts: list[str]) -> list[str]:
        encoded = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.inference_mode():
            out = model.generate(**encoded, **generation, pad_token_id=tokenizer.pad_token_id)
        new = out[:, encoded["input_ids"].shape[1] :]
        assert new.shape[1] == args.tokens
        return tokenizer.batch_decode(new, skip_special_tokens=True)

    # -- the endpoint ------------------------------------------------------------------------
    registry = LocalRegistry(config)
    registry.client.create_registered_model("bench-model")
    registry.client.create_model_version("bench-model", model_dir.as_uri(), tags={"job_name": "-"})
    endpoints = LocalEndpoints(config, registry)
    settings = RequestSettings(max_concurrent_requests_per_instance=2 * CONCURRENCY)
    started = time.monotonic()
    info = endpoints.deploy(ModelVersion("bench-model", "1"), "bench", request_settings=settings)
    deploy_s = time.monotonic() - started
    key = endpoints.keys("bench").primary
    headers = {"Authorization": f"Bearer {key}"}
    body_params = dict(generation)

    def ask(client: httpx.Client, question: str) -> float:
        begun = time.perf_counter()
        response = client.post(
            info.scoring_uri,
            json={"input_data": [question], "params": body_params},
            headers=headers,
            timeout=300,
        )
        elapsed = time.perf_counter() - begun
        assert response.status_code == 200, response.text
        return elapsed

    clients = [httpx.Client(trust_env=False) for _ in range(CONCURRENCY)]
    record = endpoints.store.read("bench")
    server = f"http://127.0.0.1:{record.deployments['blue'].port}"

    def wave() -> tuple[float, list[float]]:
        """8 clients, each sending again as soon as it is answered; (wall time, latencies)."""
        latencies: list[float] = []
        lock = threading.Lock()
        barrier = threading.Barrier(CONCURRENCY + 1)

        def client_loop(slot: int) -> None:
            barrier.wait()
            for _ in range(args.per_client):
                took = ask(clients[slot], QUESTIONS[slot])
                with lock:
                    latencies.append(took)

        threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(CONCURRENCY)]
        for thread in threads:
            thread.start()
        barrier.wait()
        begun = time.perf_counter()
        for thread in threads:
            thread.join()
        return time.perf_counter() - begun, latencies

    try:
        for slot, client in enumerate(clients):  # warm connections and both code paths
            ask(client, QUESTIONS[slot])
            direct(prompts[:1])
        # concurrency 1, direct and through the endpoint, interleaved
        direct_s, endpoint_s = [], []
        for index in range(args.rounds):
            question = index % CONCURRENCY
            begun = time.perf_counter()
            direct(prompts[question : question + 1])
            direct_s.append(time.perf_counter() - begun)
            endpoint_s.append(ask(clients[0], QUESTIONS[question]))

        # concurrency 8 against one-at-a-time serving and the batched ceiling, interleaved
        before = httpx.get(server + "/stats", headers=headers, trust_env=False).json()
        sequential_s, walls, latencies, ceiling_s = [], [], [], []
        for index in range(args.waves):
            for question in range(CONCURRENCY // 2):
                sequential_s.append(ask(clients[0], QUESTIONS[(index + question) % 8]))
            wall, took = wave()
            walls.append(wall)
            latencies += took
            begun = time.perf_counter()
            direct(prompts)
            ceiling_s.append(time.perf_counter() - begun)
        after = httpx.get(server + "/stats", headers=headers, trust_env=False).json()
    finally:
        for client in clients:
            client.close()
        endpoints.delete_endpoint("bench")

    sequential_rps = len(sequential_s) / sum(sequential_s)
    concurrent_rps = len(latencies) / sum(walls)
    ceiling_rps = CONCURRENCY * len(ceiling_s) / sum(ceiling_s)
    direct_p50 = statistics.median(direct_s)
    endpoint_p50 = statistics.median(endpoint_s)
    overhead = endpoint_p50 / direct_p50 - 1
    speedup = concurrent_rps / sequential_rps
    batches = after["batches"] - before["batches"] - len(sequential_s)
    report = {
        "model": {
            "parameters": params,
            "architecture": type(model).__name__,
            "new_tokens_per_answer": args.tokens,
            "decoding": "greedy, min_new_tokens == max_new_tokens",
        },
        "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads()},
        "deploy_s": round(deploy_s, 2),
        "concurrency_1": {
            "rounds": args.rounds,
            "direct_generate_p50_ms": round(direct_p50 * 1000, 1),
            "endpoint_p50_ms": round(endpoint_p50 * 1000, 1),
            "endpoint_p95_ms": round(percentile(endpoint_s, 0.95) * 1000, 1),
            "overhead": round(overhead, 4),
            "overhead_ms": round((endpoint_p50 - direct_p50) * 1000, 1),
        },
        "concurrency_8": {
            "waves": args.waves,
            "requests": len(latencies),
            "requests_per_s": round(concurrent_rps, 2),
            "one_at_a_time_requests_per_s": round(sequential_rps, 2),
            "speedup": round(speedup, 2),
            "batched_generate_ceiling_requests_per_s": round(ceiling_rps, 2),
            "fraction_of_ceiling": round(concurrent_rps / ceiling_rps, 3),
            "p50_latency_ms": round(statistics.median(latencies) * 1000, 1),
            "generate_calls": batches,
            "mean_batch": round(
                (after["prompts"] - before["prompts"] - len(sequential_s)) / max(batches, 1), 2
            ),
        },
        "budgets": {
            "overhead_at_most_10pct": overhead <= BUDGET_OVERHEAD,
            "speedup_at_least_4x": speedup >= BUDGET_SPEEDUP,
        },
    }
    print(json.dumps(report, indent=2))
    return 0 if all(report["budgets"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
