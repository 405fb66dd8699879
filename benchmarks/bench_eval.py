"""Benchmark: `phiops eval` against the endpoint it evaluates, on one machine.

A Phi-3-architecture model of a few million parameters (`trainer/scaffold_tiny.py --size
small`, tokenizer trained on the Brindlemoor sample) is registered in a throw-away project
and deployed to a real local endpoint (gateway + scoring server) that takes `--concurrency`
requests at once. The test split is the sample's (`phiops data prepare --sample`).

Budgets (issue 18), ratios against baselines measured in the same run:
- throughput: `phiops eval --limit N` answers at ≥ 0.8× the endpoint's own throughput at
  the same concurrency. The baseline is a plain closed-loop client in this process sending
  the very requests the evaluation sends (same conversations, same greedy parameters, so
  the same answers and the same generation work), `concurrency` at a time. Baseline and
  evaluation alternate for `--rounds` rounds; throughputs are totals over the rounds.
- overhead: the `phiops eval` command's wall time (measured from outside, Python's start
  included) minus the generation time it reports is ≤ 2 s for `--limit 50`.

Each evaluation runs with the defaults a user gets (ROUGE, MLflow run, intervals); the
reference loss needs the model in the evaluation's process, and is measured apart
(`--loss` rounds), since it is work beyond generation by design.

Prints one JSON object; exits 1 when a budget is missed.
Usage: `python benchmarks/bench_eval.py [--limit 50] [--concurrency 4] [--rounds 3]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

BUDGET_THROUGHPUT = 0.8
BUDGET_OVERHEAD_S = 2.0


def scaffold(out: Path) -> None:
    sample = REPO / "core" / "data" / "sample" / "sample.jsonl"
    command = [sys.executable, str(REPO / "trainer" / "scaffold_tiny.py"), str(out)]
    command += ["--size", "small", "--from-data", str(sample)]
    subprocess.run(command, check=True, capture_output=True, timeout=300)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--limit", type=int, default=50, help="conversations evaluated")
    parser.add_argument("--concurrency", type=int, default=4, help="requests at once")
    parser.add_argument("--tokens", type=int, default=32, help="max_new_tokens")
    parser.add_argument("--rounds", type=int, default=3, help="baseline/eval pairs")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="phiops-bench-eval-"))
    try:
        return run(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def baseline(cases, url: str, key: str, params, concurrency: int) -> float:
    """Seconds for a plain client to get every answer, `concurrency` requests at a time."""
    import httpx

    async def go() -> float:
        queue: asyncio.Queue = asyncio.Queue()
        for case in cases:
            queue.put_nowait(case)
        headers = {"Authorization": f"Bearer {key}", "Accept": "application/json"}
        async with httpx.AsyncClient(trust_env=False, timeout=300) as client:

            async def work() -> None:
                while not queue.empty():
                    case = queue.get_nowait()
                    response = await client.post(
                        url, json=params.body(case.messages()), headers=headers
                    )
                    assert response.status_code == 200, response.text

            begun = time.perf_counter()
            await asyncio.gather(*(work() for _ in range(concurrency)))
            return time.perf_counter() - begun

    return asyncio.run(go())


def evaluate(work: Path, args: argparse.Namespace, *, loss: bool) -> dict:
    """`phiops eval` as a user runs it; its JSON plus the wall time seen from outside."""
    command = [str(Path(sys.executable).parent / "phiops"), "eval", "--target", "bench"]
    command += ["--limit", str(args.limit), "--concurrency", str(args.concurrency)]
    command += ["--max-new-tokens", str(args.tokens), "--json"]
    command += [] if loss else ["--no-loss"]
    begun = time.perf_counter()
    result = subprocess.run(command, cwd=work, capture_output=True, text=True, timeout=900)
    wall = time.perf_counter() - begun
    assert result.returncode == 0, result.stderr[-2000:]
    data = json.loads(result.stdout)
    return {
        "wall_s": wall,
        "generation_s": data["generation_s"],
        "run_id": data["run_id"],
        # where the rest went: Python and the CLI starting, then the evaluation's phases
        "phases": {"start_s": round(wall - data["seconds"], 3), **data["timings"]},
    }


def run(args: argparse.Namespace, work: Path) -> int:
    os.environ["PHIOPS_HOME"] = str(work / "home")  # keys go to a throw-away secret store
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED", "true")
    for variable in [v for v in os.environ if v.startswith("PHIOPS_") and v != "PHIOPS_HOME"]:
        del os.environ[variable]

    from core.backend import ModelVersion, RequestSettings
    from core.config import load_config
    from core.data.prepare import prepare
    from core.data.sources import sample_source
    from core.eval.data import load_eval_set
    from core.eval.generate import Params
    from core.local.endpoints import LocalEndpoints
    from core.local.registry import LocalRegistry

    model_dir = work / "model"
    scaffold(model_dir)
    (work / "phiops.toml").write_text('[project]\nbackend = "local"\n')
    config = load_config(work / "phiops.toml")
    prepare(sample_source(), work / "data" / "train_data.jsonl", work / "data" / "test_data.jsonl")
    cases = load_eval_set(work / "data" / "test_data.jsonl", args.limit).cases
    assert len(cases) == args.limit, f"the sample's test split has {len(cases)} conversations"

    registry = LocalRegistry(config)
    registry.client.create_registered_model("bench-model")
    registry.client.create_model_version("bench-model", model_dir.as_uri(), tags={"job_name": "-"})
    endpoints = LocalEndpoints(config, registry)
    settings = RequestSettings(max_concurrent_requests_per_instance=args.concurrency)
    info = endpoints.deploy(ModelVersion("bench-model", "1"), "bench", request_settings=settings)
    key = endpoints.keys("bench").primary
    params = Params(max_new_tokens=args.tokens)
    try:
        baseline(cases[: args.concurrency], info.scoring_uri, key, params, args.concurrency)
        evaluate(work, args, loss=False)  # warm: MLflow's store created, files cached
        own_s, evals = [], []
        for _ in range(args.rounds):
            own_s.append(baseline(cases, info.scoring_uri, key, params, args.concurrency))
            evals.append(evaluate(work, args, loss=False))
        with_loss = evaluate(work, args, loss=True)
    finally:
        endpoints.delete_endpoint("bench")

    own_rps = len(cases) * args.rounds / sum(own_s)
    eval_rps = len(cases) * args.rounds / sum(e["generation_s"] for e in evals)
    overheads = [e["wall_s"] - e["generation_s"] for e in evals]
    report = {
        "rows": len(cases),
        "concurrency": args.concurrency,
        "max_new_tokens": args.tokens,
        "rounds": args.rounds,
        "endpoint_rows_per_s": round(own_rps, 3),
        "eval_rows_per_s": round(eval_rps, 3),
        "throughput_ratio": round(eval_rps / own_rps, 3),
        "budget_throughput_ratio": BUDGET_THROUGHPUT,
        "eval_wall_s": [round(e["wall_s"], 3) for e in evals],
        "eval_generation_s": [round(e["generation_s"], 3) for e in evals],
        "overhead_s": [round(o, 3) for o in overheads],
        "overhead_median_s": round(statistics.median(overheads), 3),
        "overhead_phases": [e["phases"] for e in evals],
        "budget_overhead_s": BUDGET_OVERHEAD_S,
        "with_reference_loss": {
            "wall_s": round(with_loss["wall_s"], 3),
            "generation_s": round(with_loss["generation_s"], 3),
            "overhead_s": round(with_loss["wall_s"] - with_loss["generation_s"], 3),
            "phases": with_loss["phases"],
        },
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    report["budgets_met"] = (
        report["throughput_ratio"] >= BUDGET_THROUGHPUT
        and report["overhead_median_s"] <= BUDGET_OVERHEAD_S
    )
    print(json.dumps(report, indent=2))
    return 0 if report["budgets_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
