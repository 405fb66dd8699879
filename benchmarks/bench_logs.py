"""Benchmark: follow a job's log while a second process appends 1,000,000 lines in bursts.

The writer's bursts (1,000-30,000 lines at once) are paced to 300,000 lines/s on average,
above the budget, so the stream's rate is measured against a writer faster than required.

Budget (issue 5): every line delivered exactly once, >= 200,000 lines/s, a written line
yielded within 250 ms (p95). The stream is the real `LocalJobs.stream_logs` on a job whose
record says Running while the writer lives and Completed once it is done. Each line
carries its sequence number and the time its burst was written; the writer cuts its
output at arbitrary byte positions, so the follower sees partial lines. Half-way the
stream is dropped and resumed from the last offset, as a restarted UI would.

Baseline (same run, same file): Python's own `for line in file` over the finished file —
the fastest a reader can hand out lines — so `ratio_to_plain_read` says what following
costs. Prints one JSON object. Usage: `python benchmarks/bench_logs.py [--lines N]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BUDGET_LINES_PER_S = 200_000
BUDGET_P95_MS = 250.0


def write_lines(path: Path, total: int, rate: float, seed: int) -> None:
    """The writer process: bursts of random size, cut into chunks at arbitrary bytes, paced
    to `rate` lines/s on average (a pause after a burst that got ahead)."""
    rng = random.Random(seed)
    padding = "x" * 40
    written = 0
    started = time.monotonic()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        while written < total:
            size = min(total - written, rng.randint(1_000, 30_000))
            stamp = f"{time.time():.6f}"
            burst = "".join(
                f"{seq} {stamp} {padding}\n" for seq in range(written, written + size)
            ).encode()
            position = 0
            while position < len(burst):
                step = rng.randint(1_000, 256 * 1024)
                os.write(fd, burst[position : position + step])
                position += step
            written += size
            ahead = written / rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
    finally:
        os.close(fd)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def consume(jobs, name: str, total: int) -> dict:
    latencies: list[float] = []
    expected, duplicates, gaps, resumed_at = 0, 0, 0, None
    first_seen = last_seen = 0.0
    offset = 0
    for part in (0, 1):
        async for line in jobs.stream_logs(name, since=offset):
            now = time.time()
            seq_text, stamp, _ = line.text.split(" ", 2)
            seq = int(seq_text)
            if seq < expected:
                duplicates += 1
            elif seq > expected:
                gaps += seq - expected
            expected = max(expected, seq + 1)
            latencies.append(now - float(stamp))
            offset = line.offset
            first_seen = first_seen or now
            last_seen = now
            if part == 0 and expected >= total // 2:
                resumed_at = offset
                break  # drop the stream; the next one resumes from `offset`
    return {
        "delivered": len(latencies),
        "duplicates": duplicates,
        "missing": gaps + (total - expected),
        "resumed_at_offset": resumed_at,
        "latencies": latencies,
        "first_seen": first_seen,
        "last_seen": last_seen,
    }


async def catch_up(jobs, name: str) -> tuple[int, float]:
    """Stream the finished log from the start: the follower's own speed."""
    started = time.perf_counter()
    count = 0
    async for _ in jobs.stream_logs(name):
        count += 1
    return count, time.perf_counter() - started


def plain_read(path: Path) -> tuple[int, float]:
    started = time.perf_counter()
    count = 0
    with open(path, encoding="utf-8") as handle:
        for _ in handle:
            count += 1
    return count, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--rate", type=float, default=300_000, help="writer's lines/s")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--writer", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.writer:
        write_lines(args.writer, args.lines, args.rate, args.seed)
        return

    from core.backend import JobStatus
    from core.config import Config
    from core.local.jobs import LocalJobs
    from core.local.jobstore import STD_LOG, JobRecord, ProcessRef

    with tempfile.TemporaryDirectory() as tmp:
        jobs = LocalJobs(Config(path=Path(tmp) / "phiops.toml"))
        name = "bench_logs_job"
        log = jobs.store.path(name, STD_LOG)
        log.parent.mkdir(parents=True)
        log.touch()
        write_started = time.time()
        writer_args = ["--writer", str(log), "--lines", str(args.lines), "--rate", str(args.rate)]
        writer = subprocess.Popen(
            [sys.executable, __file__, *writer_args, "--seed", str(args.seed)]
        )
        record = JobRecord(name, JobStatus.RUNNING, command=[], runner=ProcessRef.of(os.getpid()))
        jobs.store.write(record)

        async def run() -> dict:
            async def finish_when_written() -> None:
                await asyncio.to_thread(writer.wait)
                with jobs.store.locked():
                    record.status, record.ended_at = JobStatus.COMPLETED, time.time()
                    jobs.store.write(record)

            finisher = asyncio.create_task(finish_when_written())
            result = await consume(jobs, name, args.lines)
            await finisher
            return result

        live = asyncio.run(run())
        write_seconds = record.ended_at - write_started
        caught, caught_seconds = asyncio.run(catch_up(jobs, name))
        plain, plain_seconds = plain_read(log)

    latencies = live.pop("latencies")
    live_rate = live["delivered"] / (live.pop("last_seen") - write_started)
    live.pop("first_seen")
    catch_up_rate = caught / caught_seconds
    plain_rate = plain / plain_seconds
    p95_ms = percentile(latencies, 0.95) * 1000
    result = {
        "benchmark": "logs",
        "lines": args.lines,
        **live,
        "writer_lines_per_s": round(args.lines / write_seconds),
        "stream_lines_per_s": round(live_rate),
        "latency_ms": {
            "p50": round(percentile(latencies, 0.50) * 1000, 1),
            "p95": round(p95_ms, 1),
            "p99": round(percentile(latencies, 0.99) * 1000, 1),
            "max": round(max(latencies) * 1000, 1),
        },
        "catch_up_lines_per_s": round(catch_up_rate),
        "baseline_plain_read_lines_per_s": round(plain_rate),
        "ratio_to_plain_read": round(catch_up_rate / plain_rate, 3),
        "budget": {"lines_per_s": BUDGET_LINES_PER_S, "p95_ms": BUDGET_P95_MS},
        "within_budget": (
            live["delivered"] == args.lines
            and live["duplicates"] == 0
            and live["missing"] == 0
            and live_rate >= BUDGET_LINES_PER_S
            and p95_ms <= BUDGET_P95_MS
        ),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
