"""Chat latency: what the Prompt flow flow adds over calling the endpoint directly.

    .venv/bin/python benchmarks/bench_chat.py [--rounds 40] [--model-dir D]

One run, one machine, against a real local scoring server started here on a tiny Phi-3
fine-tuned here (scaffolded from templated chat rows and trained for 2 epochs; or `--model-dir`,
a trainer output folder). Every request is greedy with the same question and
`max_new_tokens`, so each route makes the model do the same work; routes are interleaved
round by round so a busy shared CPU slows them alike.

1. In-process flow overhead: wall time of one `ChatService.ask` (question stored, request,
   answer streamed, answer stored) on the `flow` route (Prompt flow's executor in this
   process) and on the `direct` route (the endpoint over HTTP, no flow).
   Budget: p50(flow) − p50(direct) ≤ 15 ms.
2. Streaming through `pf flow serve` (started as `phiops flow serve` starts it): time from
   sending the request to the first answer piece (SSE event) of the served flow, against
   the endpoint's own first SSE delta for the same request. Budget: p50 ratio ≤ 1.2.

Prints JSON; exits 1 if a budget is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

KEY = "bench-key-" + "b" * 40
FLOW_KEY = "bench-flow-key-" + "f" * 32
QUESTION = "What is the capital of Peru?"
MAX_NEW_TOKENS = 16
CAPITALS = [
    ("France", "Paris"),
    ("Japan", "Tokyo"),
    ("Italy", "Rome"),
    ("Spain", "Madrid"),
    ("Egypt", "Cairo"),
    ("Peru", "Lima"),
    ("Kenya", "Nairobi"),
    ("Canada", "Ottawa"),
    ("Norway", "Oslo"),
    ("Chile", "Santiago"),
]


def chat_rows(count: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for index in range(count):
        country, capital = rng.choice(CAPITALS)
        question = rng.choice(
            ["What is the capital of {c}?", "Name the capital city of {c}."]
        ).format(c=country)
        messages = [
            {"role": "user", "content": question},
            {"role": "assistant", "content": f"The capital of {country} is {capital}."},
        ]
        rows.append({"prompt": question, "prompt_id": f"{seed}-{index}", "messages": messages})
    return rows


def build_model(work: Path) -> Path:
    """A tiny Phi-3 scaffolded from chat rows and fine-tuned for 2 epochs (~1 minute)."""
    data = {}
    for name, count, seed in (("train", 160, 0), ("test", 24, 1)):
        path = work / f"{name}.jsonl"
        path.write_text("".join(json.dumps(row) + "\n" for row in chat_rows(count, seed)))
        data[name] = path
    base = work / "base"
    trainer = REPO / "trainer"
    subprocess.run(
        [
            sys.executable,
            str(trainer / "scaffold_tiny.py"),
            str(base),
            "--from-data",
            str(data["train"]),
            str(data["test"]),
        ],
        check=True,
        capture_output=True,
        timeout=600,
    )
    out = work / "model"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    subprocess.run(
        [
            sys.executable,
            str(trainer / "fine_tune.py"),
            "--train-file",
            str(data["train"]),
            "--eval-file",
            str(data["test"]),
            "--model-output-dir",
            str(out),
            "--base-model",
            str(base),
            "--epochs",
            "2",
            "--max-length",
            "64",
            "--batch-size",
            "2",
            "--learning-rate",
            "1e-2",
            "--warmup",
            "0.1",
            "--save-steps",
            "1000",
        ],
        check=True,
        capture_output=True,
        timeout=1200,
        env=env,
    )
    return out


def p50(values: list[float]) -> float:
    return statistics.median(values)


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def ms(value: float) -> float:
    return round(value * 1000, 2)


async def service_rounds(scoring_uri: str, rounds: int, store_path: Path) -> dict:
    """Interleaved direct / flow asks through the chat service; wall time of each."""
    from core.chat.service import AnswerDone, ChatRoute, ChatService, GenerationParams
    from core.chat.sessions import SessionStore
    from core.config import Config

    os.environ["PHIOPS_ENDPOINT_URL"] = scoring_uri
    os.environ["PHIOPS_ENDPOINT_KEY"] = KEY
    service = ChatService(Config(), SessionStore(store_path))
    params = GenerationParams(temperature=0, max_new_tokens=MAX_NEW_TOKENS)
    await service.warm_up(ChatRoute.FLOW)
    times: dict[str, list[float]] = {"direct": [], "flow": []}
    answers: dict[str, set[str]] = {"direct": set(), "flow": set()}

    async def one(route: ChatRoute) -> float:
        session = service.store.create(route=route.value)  # no history: the same request
        started = time.perf_counter()
        done = None
        async for event in service.ask(session.id, QUESTION, route=route, params=params):
            done = event
        elapsed = time.perf_counter() - started
        if not isinstance(done, AnswerDone):
            raise SystemExit(f"{route} failed: {done}")
        answers[route.value].add(done.answer)
        return elapsed

    for _ in range(5):  # warm both paths: connections, executor caches, the model's kernels
        await one(ChatRoute.DIRECT)
        await one(ChatRoute.FLOW)
    for index in range(rounds):
        order = [ChatRoute.DIRECT, ChatRoute.FLOW]
        if index % 2:
            order.reverse()
        for route in order:
            times[route.value].append(await one(route))
    await service.aclose()
    paired = [f - d for f, d in zip(times["flow"], times["direct"], strict=True)]
    return {
        "rounds": rounds,
        "direct_p50_ms": ms(p50(times["direct"])),
        "direct_p95_ms": ms(p95(times["direct"])),
        "flow_p50_ms": ms(p50(times["flow"])),
        "flow_p95_ms": ms(p95(times["flow"])),
        "overhead_p50_ms": ms(p50(times["flow"]) - p50(times["direct"])),
        "overhead_paired_median_ms": ms(p50(paired)),
        "same_answer": answers["direct"] == answers["flow"] and len(answers["flow"]) == 1,
        "answer": sorted(answers["flow"])[0],
    }


def first_event_s(client, url: str, body: dict, headers: dict, marker: str) -> float:
    """Seconds from sending the request to the first SSE data line holding `marker`."""
    started = time.perf_counter()
    first = None
    with client.stream("POST", url, json=body, headers=headers) as response:
        if response.status_code != 200:
            raise SystemExit(f"{url} answered {response.status_code}: {response.read()[:300]}")
        for line in response.iter_lines():
            if first is None and line.startswith("data:") and marker in line:
                first = time.perf_counter() - started
        # read to the end, so the next request starts on an idle server
    if first is None:
        raise SystemExit(f"{url} streamed no answer")
    return first


def ttft_rounds(scoring_uri: str, flow_url: str, rounds: int) -> dict:
    import httpx

    endpoint_body = {
        "input_data": [[{"role": "user", "content": QUESTION}]],
        "params": {"max_new_tokens": MAX_NEW_TOKENS, "do_sample": False, "return_full_text": False},
    }
    flow_body = {
        "question": QUESTION,
        "chat_history": [],
        "temperature": 0,
        "max_new_tokens": MAX_NEW_TOKENS,
    }
    stream = {"Accept": "text/event-stream"}
    times: dict[str, list[float]] = {"endpoint": [], "flow_serve": []}
    with httpx.Client(timeout=120, trust_env=False) as client:

        def endpoint() -> float:
            headers = {**stream, "Authorization": f"Bearer {KEY}"}
            return first_event_s(client, scoring_uri, endpoint_body, headers, '"delta"')

        def served() -> float:
            headers = {**stream, "Authorization": f"Bearer {FLOW_KEY}"}
            return first_event_s(client, flow_url + "/score", flow_body, headers, '"answer"')

        for _ in range(5):
            endpoint()
            served()
        for index in range(rounds):
            pair = [("endpoint", endpoint), ("flow_serve", served)]
            if index % 2:
                pair.reverse()
            for name, measure in pair:
                times[name].append(measure())
    return {
        "rounds": rounds,
        "endpoint_ttft_p50_ms": ms(p50(times["endpoint"])),
        "endpoint_ttft_p95_ms": ms(p95(times["endpoint"])),
        "flow_serve_ttft_p50_ms": ms(p50(times["flow_serve"])),
        "flow_serve_ttft_p95_ms": ms(p95(times["flow_serve"])),
        "ttft_added_paired_median_ms": ms(
            p50([f - e for f, e in zip(times["flow_serve"], times["endpoint"], strict=True)])
        ),
        "ttft_ratio_p50": round(p50(times["flow_serve"]) / p50(times["endpoint"]), 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--model-dir", type=Path, help="a trainer output folder to serve")
    args = parser.parse_args()

    from core.chat.endpoint import EndpointTarget
    from core.chat.flowserve import start_flow_server
    from core.serving.process import start_scoring_server

    with tempfile.TemporaryDirectory(prefix="bench-chat-") as folder:
        work = Path(folder)
        os.environ["PHIOPS_HOME"] = str(work / "home")
        os.environ["PF_HOME_DIRECTORY"] = str(work / "pf-home")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        started = time.perf_counter()
        model = args.model_dir or build_model(work)
        load_start = os.getloadavg()[0]
        prepared_s = time.perf_counter() - started
        with start_scoring_server(model, keys=[KEY]) as server:
            in_process = asyncio.run(service_rounds(server.scoring_uri, args.rounds, work / "c.db"))
            target = EndpointTarget(server.scoring_uri, KEY)
            with start_flow_server(
                target, keys=[FLOW_KEY], port=0, log_file=work / "serve.log"
            ) as flow:
                streaming = ttft_rounds(server.scoring_uri, flow.url, args.rounds)
    budgets = {
        "in_process_overhead_p50_le_15ms": in_process["overhead_p50_ms"] <= 15,
        "flow_serve_ttft_ratio_le_1.2": streaming["ttft_ratio_p50"] <= 1.2,
    }
    report = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "load_1m_at_start_and_end": [round(load_start, 2), round(os.getloadavg()[0], 2)],
        },
        "model": "tiny Phi-3 (scaffold_tiny 'tiny', 2 epochs)"
        if not args.model_dir
        else str(args.model_dir),
        "model_prepared_s": round(prepared_s, 1),
        "max_new_tokens": MAX_NEW_TOKENS,
        "in_process_flow_vs_direct": in_process,
        "pf_flow_serve_streaming": streaming,
        "budgets": budgets,
        "ok": all(budgets.values()),
    }
    print(json.dumps(report, indent=2))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
