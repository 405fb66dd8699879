"""Benchmark: a 50 MB body with a valid key against a real local endpoint, and a small request
sent meanwhile.

A Phi-3-architecture model of a few million parameters (`trainer/scaffold_tiny.py --size
small`, tokenizer trained on the Brindlemoor sample) is registered in a throw-away project
and deployed to a real local endpoint (gateway + scoring server processes). Budgets (issue
16), ratios against a baseline measured in the same run:

- the scoring server's RSS grows by at most 64 MB while 50 MB hostile bodies arrive (peak
  sampled every 20 ms, against its RSS just before);
- a small request's p50 latency while the hostile bodies are sent stays within 2x its p50
  on the idle endpoint (the same request, the same endpoint, measured just before).

The hostile bodies go to the gateway and straight to the server, each with a declared
Content-Length and chunked (no length), one after another, while a client sends small
requests in a loop. Prints one JSON object; exits 1 when a budget is missed.
Usage: `python benchmarks/bench_hostile.py [--rounds 20] [--hostile 3]`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.bench_serve import scaffold  # noqa: E402

BUDGET_RSS_MB = 64
BUDGET_LATENCY_RATIO = 2.0
HOSTILE_BYTES = 50 * 1024 * 1024
SMALL = {"input_data": ["Who keeps the lighthouse?"], "params": {"max_new_tokens": 8}}


class PeakRss:
    """Samples a process's RSS every 20 ms from a thread; `peak` is the highest seen."""

    def __init__(self, pid: int) -> None:
        import psutil

        self.process = psutil.Process(pid)
        self.peak = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.02)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def hostile_send(url: str, headers: dict, chunked: bool) -> dict:
    """One 50 MB body (zeros inside a JSON string); what came back and how long it took."""
    import httpx

    body = b'{"input_data": ["' + b"0" * (HOSTILE_BYTES - 20) + b'"]}'

    def pieces():
        view = memoryview(body)
        for start in range(0, len(body), 1 << 20):
            yield bytes(view[start : start + (1 << 20)])

    began = time.perf_counter()
    try:
        response = httpx.post(
            url,
            content=pieces() if chunked else body,
            headers={**headers, "Content-Type": "application/json"},
            timeout=120,
            trust_env=False,
        )
        outcome = f"HTTP {response.status_code}"
    except httpx.HTTPError as error:  # the server answered 413 and closed mid-upload
        outcome = f"connection closed ({type(error).__name__})"
    return {"outcome": outcome, "seconds": round(time.perf_counter() - began, 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=20, help="small requests when idle")
    parser.add_argument("--hostile", type=int, default=3, help="rounds of the four bodies")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="phiops-bench-hostile-"))
    try:
        return run(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(args: argparse.Namespace, work: Path) -> int:
    os.environ["PHIOPS_HOME"] = str(work / "home")
    for variable in [v for v in os.environ if v.startswith("PHIOPS_") and v != "PHIOPS_HOME"]:
        del os.environ[variable]
    import httpx

    from core.backend import ModelVersion
    from core.config import load_config
    from core.local.endpoints import LocalEndpoints
    from core.local.registry import LocalRegistry

    model_dir = work / "model"
    scaffold(model_dir)
    (work / "phiops.toml").write_text('[project]\nbackend = "local"\n')
    config = load_config(work / "phiops.toml")
    registry = LocalRegistry(config)
    registry.client.create_registered_model("bench-model")
    registry.client.create_model_version("bench-model", model_dir.as_uri(), tags={"job_name": "-"})
    endpoints = LocalEndpoints(config, registry)
    info = endpoints.deploy(ModelVersion("bench-model", "1"), "hostile")
    headers = {"Authorization": f"Bearer {endpoints.keys('hostile').primary}"}
    record = endpoints.store.read("hostile")
    server_pid = record.deployments["blue"].process.pid
    server_url = f"http://127.0.0.1:{record.deployments['blue'].port}/score"
    client = httpx.Client(trust_env=False, timeout=120)

    def small() -> float:
        began = time.perf_counter()
        response = client.post(info.scoring_uri, json=SMALL, headers=headers)
        assert response.status_code == 200, response.text
        return time.perf_counter() - began

    try:
        for _ in range(3):
            small()  # warm
        idle = [small() for _ in range(args.rounds)]
        import psutil

        rss_before = psutil.Process(server_pid).memory_info().rss
        hostile: list[dict] = []
        done = threading.Event()

        def attack() -> None:
            for _ in range(args.hostile):
                for url in (info.scoring_uri, server_url):
                    for chunked in (False, True):
                        result = hostile_send(url, headers, chunked)
                        result.update(target="gateway" if url == info.scoring_uri else "server")
                        result.update(body="chunked" if chunked else "content-length")
                        hostile.append(result)
            done.set()

        under_attack: list[float] = []
        with PeakRss(server_pid) as peak:
            attacker = threading.Thread(target=attack)
            attacker.start()
            while not done.is_set():
                under_attack.append(small())
            attacker.join()
        rss_after = psutil.Process(server_pid).memory_info().rss
    finally:
        client.close()
        endpoints.delete_endpoint("hostile")

    idle_p50 = statistics.median(idle)
    attack_p50 = statistics.median(under_attack)
    growth_mb = (peak.peak - rss_before) / 2**20
    report = {
        "machine": {"cpus": os.cpu_count(), "load_1m": round(os.getloadavg()[0], 2)},
        "hostile_body_mb": HOSTILE_BYTES / 2**20,
        "hostile_requests": hostile,
        "server_rss_mb": {
            "before": round(rss_before / 2**20, 1),
            "peak_during": round(peak.peak / 2**20, 1),
            "after": round(rss_after / 2**20, 1),
            "growth": round(growth_mb, 1),
        },
        "small_request": {
            "idle_p50_ms": round(idle_p50 * 1000, 1),
            "under_attack_p50_ms": round(attack_p50 * 1000, 1),
            "under_attack_max_ms": round(max(under_attack) * 1000, 1),
            "under_attack_requests": len(under_attack),
            "ratio_p50": round(attack_p50 / idle_p50, 2),
        },
        "budgets": {
            "rss_growth_at_most_64mb": growth_mb <= BUDGET_RSS_MB,
            "latency_within_2x_idle_p50": attack_p50 / idle_p50 <= BUDGET_LATENCY_RATIO,
        },
    }
    print(json.dumps(report, indent=2))
    return 0 if all(report["budgets"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
