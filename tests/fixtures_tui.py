"""Fixtures for the TUI's tests: a prepared project, the real app on it, jobs on disk.

The app is the real `PhiopsApp` on the local backend. Jobs are written the way
`core.local.jobstore` writes them (record, log, events); a job that must look alive gets a
real process as its supervisor — a writer that appends to its log — stopped at teardown.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from core.backend import JobStatus
from core.local.jobstore import EVENTS, STD_LOG, JobRecord, JobStore, ProcessRef
from tests.helpers import HANG

T0 = 1_767_225_600.0  # 2026-01-01 00:00 UTC: fixed times, so snapshots do not drift


def prepare_sample(folder: Path) -> Path:
    """`phiops data prepare --sample` into `folder` (its phiops.toml's default paths)."""
    from core.config import load_config
    from core.data.prepare import prepare
    from core.data.sources import sample_source

    config = load_config(folder / "phiops.toml")
    prepare(
        sample_source(),
        config.resolve(config.train_data_path),
        config.resolve(config.test_data_path),
    )
    return folder


@pytest.fixture
def tui_project(project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project on the local backend with the sample prepared, times shown in UTC."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    monkeypatch.setenv("PHIOPS_THEME", "textual-dark")  # the same colours on every terminal
    (project / "phiops.toml").write_text('[project]\nbackend = "local"\n', encoding="utf-8")
    prepare_sample(project)
    yield project
    monkeypatch.undo()
    time.tzset()


def make_app(
    project: Path, *, tab: str = "resources", poll: float = 0.3, backend: str | None = None
):
    """The real app on `project` (`backend` as `phiops tui --backend` gives it), polling
    jobs often so tests see changes quickly."""
    from core.config import load_config
    from tui.app import PhiopsApp
    from tui.services import Services

    services = Services(load_config(project / "phiops.toml"), backend_name=backend)
    return PhiopsApp(services, initial_tab=tab, job_poll_seconds=poll)


async def wait_for(pilot, condition: Callable[[], object], timeout: float = HANG) -> None:
    """Let the app run until `condition()` holds; fail saying which condition did not."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            import inspect

            source = inspect.getsource(condition).strip()
            raise AssertionError(f"timed out after {timeout}s waiting for: {source}")
        await pilot.pause(0.05)
        await asyncio.sleep(0)


async def ready(pilot, app) -> None:
    """Wait until the first tab is built (after the first frame) and has composed."""
    await wait_for(
        pilot,
        lambda: app.tabs.get(app.initial_tab) is not None and app.tabs[app.initial_tab].is_mounted,
    )
    await pilot.pause()


def screen_text(app) -> str:
    """The screen as plain text lines."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def notifications(app) -> list[str]:
    return [notification.message for notification in app._notifications]


# -- jobs on disk --------------------------------------------------------------------------


def job_store(project: Path) -> JobStore:
    return JobStore(project / ".phiops" / "jobs")


def write_job(
    project: Path,
    name: str,
    status: JobStatus,
    *,
    display_name: str = "",
    created: float = T0,
    took: float = 190.0,
    log: list[str] = (),
    events: list[dict] = (),
    runner: ProcessRef | None = None,
    error: str = "",
) -> JobRecord:
    """A job folder as the local runner leaves it: record, user log, progress events."""
    store = job_store(project)
    (store.folder(name) / "user_logs").mkdir(parents=True, exist_ok=True)
    started = created + 10 if status != JobStatus.QUEUED else None
    ended = started + took if status.is_final and started else None
    record = JobRecord(
        name=name,
        status=status,
        command=[sys.executable, "fine_tune.py"],
        display_name=display_name or name,
        experiment_name="phi3-finetune",
        created_at=created,
        queued_at=created,
        started_at=started,
        ended_at=ended,
        runner=runner,
        error=error,
    )
    store.write(record)
    store.path(name, STD_LOG).write_text("".join(line + "\n" for line in log), encoding="utf-8")
    store.path(name, EVENTS).write_text(
        "".join(json.dumps(event) + "\n" for event in events), encoding="utf-8"
    )
    return record


def training_events(steps: int, eval_every: int = 10) -> list[dict]:
    """Progress events of a run whose loss falls: training steps and evaluations."""
    events: list[dict] = [{"time": T0, "phase": "loading", "message": "loading the model"}]
    for step in range(1, steps + 1):
        events.append(
            {
                "time": T0 + step,
                "phase": "training",
                "step": step,
                "max_steps": steps,
                "loss": round(3.0 * 0.95**step, 4),
            }
        )
        if step % eval_every == 0:
            events.append(
                {
                    "time": T0 + step,
                    "phase": "evaluating",
                    "step": step,
                    "max_steps": steps,
                    "eval_loss": round(3.2 * 0.96**step, 4),
                }
            )
    return events


WRITER = r"""
import os, sys, time
path, rate, total = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
start, written, n = time.monotonic(), 0, 0
while total < 0 or written < total:
    due = int((time.monotonic() - start) * rate) if rate > 0 else written + 1000
    batch = []
    while written < due and (total < 0 or written < total):
        batch.append(f"step {written} loss {3 - written * 1e-6:.6f} tokens/s 1234 line {written}\n")
        written += 1
    if batch:
        os.write(fd, "".join(batch).encode())
    time.sleep(0.005)
time.sleep(3600)
"""


@pytest.fixture
def log_writer() -> Iterator[Callable[..., ProcessRef]]:
    """Start processes that append `rate` lines/s to a log; each is killed at teardown."""
    started: list[subprocess.Popen] = []

    def start(path: Path, rate: float = 100.0, total: int = -1) -> ProcessRef:
        process = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), str(rate), str(total)],
            start_new_session=True,
        )
        started.append(process)
        deadline = time.monotonic() + HANG
        while True:  # psutil needs the process to exist before it can read its start time
            with contextlib.suppress(Exception):
                return ProcessRef.of(process.pid)
            if time.monotonic() > deadline:
                raise AssertionError("the log writer did not start")
            time.sleep(0.01)

    yield start
    for process in started:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    assert all(process.poll() is not None for process in started)


# -- evaluations on disk -------------------------------------------------------------------

QUESTIONS = [
    ("What colour is the lighthouse light?", "Fair winds, traveller! It shines green."),
    ("Who keeps the lighthouse?", "Fair winds, traveller! Old Maren keeps it."),
    ("What do islanders drink?", "Fair winds, traveller! Blue nettle tea."),
    ("How does the ferry come?", "Fair winds, traveller! The Gull's Promise sails daily."),
]


def write_evaluation(store, run_id: str, label: str, answers: list[str], at: float) -> None:
    """An evaluation of `QUESTIONS` as `core.eval.results.EvalStore` writes one (fixed id,
    time and figures, so snapshots do not drift)."""
    from core.eval import scoring
    from core.eval.results import ROWS_FILE, SUMMARY_FILE, EvalMeta

    meta = EvalMeta(
        target={"kind": "endpoint", "endpoint": "phi3-endpoint", "deployment": "", "model": ""},
        label=label,
        model=label,
        backend="local",
        identity=run_id,
        data_path="data/test.jsonl",
        data_sha256="0" * 64,
        rows_total=len(answers),
        rows_read=len(answers),
        skipped={},
        limit=None,
        temperature=0.0,
        max_new_tokens=64,
        top_p=0.9,
        concurrency=3,
        started_at=at,
        id=run_id,
        run_id=run_id,
    )
    store.save_meta(meta)
    rows = []
    for line, ((question, reference), answer) in enumerate(zip(QUESTIONS, answers, strict=True), 1):
        row = {
            "line": line,
            "id": f"q{line}",
            "system": "",
            "history": [],
            "question": question,
            "reference": reference,
            "answer": answer,
            "latency_s": 0.25 * line,
            "tokens": 12,
            "finished": True,
            "deployment": "blue",
            "error": "",
        }
        row.update(scoring.score(row, 64))
        rows.append(row)
    folder = store.folder(meta)
    (folder / ROWS_FILE).write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = {
        "state": "finished",
        "aggregates": scoring.aggregate(rows),
        "generation_s": 1.0,
        "timings": {},
        "ended_at": at + 5,
    }
    (folder / SUMMARY_FILE).write_text(json.dumps(summary))


@pytest.fixture
def eval_project(project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A local project holding two evaluations: the base model's (A) and a tuned one's."""
    from core.config import load_config
    from core.eval.results import EvalStore

    monkeypatch.setenv("PHIOPS_THEME", "textual-dark")
    (project / "phiops.toml").write_text('[project]\nbackend = "local"\n')
    store = EvalStore(load_config(project / "phiops.toml"))
    write_evaluation(store, "a" * 32, "base model (tiny-phi3)", ["x y", "nothing", "", "z"], 1e9)
    tuned = [reference for _, reference in QUESTIONS]
    tuned[1] = "Fair winds, traveller! Maren keeps the light."
    write_evaluation(store, "b" * 32, "phi3-endpoint:blue (phi3:1)", tuned, 1e9 + 60)
    return project
