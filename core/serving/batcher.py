"""Dynamic batching: one worker thread turns concurrent requests into one `generate` call.

Requests queue as `Job`s. The worker takes the oldest job and every queued job with the
same generation settings (the same `ScoreRequest.key`), up to `max_batch_prompts`
prompts, and runs them as one left-padded batch; jobs with other settings wait for the
next round, oldest first.

Closed-loop clients (each sends again once answered) would otherwise split into groups
that take turns: while group A generates, group B queues; B starts the moment A ends,
before A's clients are back. So after each batch the worker expects as many requests as
it just answered plus those still queued, and before starting it waits for that many —
at most a tenth of the last generation's time (plus 10 ms, capped at `window_s`), so the
wait never costs more than a small share of the latency it buys throughput for. After
a lone request nothing is expected, so a lone request never waits.

Every job's `done` is called exactly once, from the worker thread: with the answers, or
with a `JobFailed` carrying the HTTP status to answer with. Cancelled rows (a timeout,
a client gone, shutdown) stop at the next generated token. Jobs arrive tokenized: the
worker only generates, so a long or hostile prompt costs its own request's thread, never
the time of the requests batched around it.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from core.serving.engine import Answer, Engine

log = logging.getLogger("phiops.serving")


class JobFailed(Exception):
    """Why a job got no answer, and the HTTP status that says so."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(eq=False)
class Job:
    rows: list[list[int]]  # each prompt's token ids
    key: tuple
    generation: dict[str, Any]
    done: Callable[[list[Answer] | None, JobFailed | None], None]
    emit: Callable[[str], None] | None = None  # streams the (single) prompt's answer
    cancelled: bool = False
    queued_at: float = field(default_factory=time.monotonic)


@dataclass
class Stats:
    """Counters for `GET /stats`: what the model did, and what was turned away before it."""

    requests: int = 0
    prompts: int = 0
    batches: int = 0
    generated_tokens: int = 0
    largest_batch: int = 0
    batch_sizes: dict[int, int] = field(default_factory=dict)  # prompts in a batch -> batches
    unauthorized: int = 0
    rejected_busy: int = 0
    timed_out: int = 0
    bad_requests: int = 0
    failed: int = 0


class Batcher:
    def __init__(
        self,
        engine: Engine,
        stats: Stats | None = None,
        *,
        max_batch_prompts: int = 32,
        window_s: float = 0.1,
    ) -> None:
        self.engine = engine
        self.stats = stats or Stats()
        self.max_batch_prompts = max_batch_prompts
        self.window_s = window_s
        self._queue: deque[Job] = deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._expected = 1  # requests expected in the next batch
        self._last_generate_s = 0.0
        self._running: list[Job] = []
        self._thread = threading.Thread(target=self._run, name="generate", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit(self, job: Job) -> None:
        with self._cond:
            if self._stopping:
                raise JobFailed("the server is shutting down", 503)
            self._queue.append(job)
            self._cond.notify()

    def stop(self, timeout: float = 10.0) -> None:
        """Refuse new jobs, fail the queued ones, stop the running batch at its next token."""
        with self._cond:
            self._stopping = True
            waiting = list(self._queue)
            self._queue.clear()
            for job in self._running:
                job.cancelled = True
            self._cond.notify_all()
        for job in waiting:
            job.done(None, JobFailed("the server is shutting down", 503))
        if self._thread.is_alive():
            self._thread.join(timeout)

    # -- the worker ----------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                self._wait_for_company()
                batch = self._take()
                self._running = batch
            try:
                self._serve(batch)
            finally:
                with self._cond:
                    self._running = []

    def _compatible(self, key: tuple) -> int:
        return sum(1 for job in self._queue if job.key == key and not job.cancelled)

    def _wait_for_company(self) -> None:
        """Wait (holding no lock while waiting) for as many requests as the last batch had."""
        if self._expected <= 1:
            return
        first = next((job for job in self._queue if not job.cancelled), None)
        if first is None:
            return
        window = min(self.window_s, 0.01 + self._last_generate_s / 10)
        deadline = time.monotonic() + window
        while not self._stopping and self._compatible(first.key) < self._expected:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._cond.wait(remaining)

    def _take(self) -> list[Job]:
        """The oldest live job and the queued jobs that can share its `generate` call."""
        batch: list[Job] = []
        prompts = 0
        kept: deque[Job] = deque()
        for job in self._queue:
            if job.cancelled:
                job.done(None, JobFailed("cancelled before it started", 499))
                continue
            fits = not batch or (
                job.key == batch[0].key and prompts + len(job.rows) <= self.max_batch_prompts
            )
            if fits:
                batch.append(job)
                prompts += len(job.rows)
            else:
                kept.append(job)
        self._queue = kept
        return batch

    def _serve(self, batch: list[Job]) -> None:
        if not batch:
            return
        generation = batch[0].generation
        jobs = batch
        rows = [row for job in jobs for row in job.rows]
        owners = [job for job in jobs for _ in job.rows]
        emitters = [job.emit for job in jobs for _ in job.rows]
        started = time.monotonic()
        try:
            answers = self.engine.generate(
                rows,
                generation,
                cancelled=lambda: [job.cancelled for job in owners],
                emitters=emitters if any(emitters) else (),
            )
        except Exception as error:
            log.error("generation failed: %s", "".join(traceback.format_exception(error)))
            self.stats.failed += len(jobs)
            failure = JobFailed(f"generation failed ({type(error).__name__}: {error})", 500)
            for job in jobs:
                job.done(None, failure)
            return
        self._last_generate_s = time.monotonic() - started
        with self._cond:
            self._expected = len(jobs) + sum(1 for job in self._queue if not job.cancelled)
        self.stats.batches += 1
        self.stats.prompts += len(rows)
        self.stats.largest_batch = max(self.stats.largest_batch, len(rows))
        self.stats.batch_sizes[len(rows)] = self.stats.batch_sizes.get(len(rows), 0) + 1
        self.stats.generated_tokens += sum(answer.tokens for answer in answers)
        log.debug(
            "batch of %d prompts (%d requests) in %.3f s",
            len(rows),
            len(jobs),
            time.monotonic() - started,
        )
        position = 0
        for job in jobs:
            mine = answers[position : position + len(job.rows)]
            position += len(job.rows)
            if job.cancelled:
                job.done(None, JobFailed("cancelled", 499))
            else:
                job.done(mine, None)
