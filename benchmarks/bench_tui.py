"""Benchmark: the TUI's first frame, and key presses while a job streams 10,000 lines/s.

1. First frame. `phiops tui` is started in a pseudo-terminal of 80×24, as a user starts it,
   and timed from the spawn to the moment its first complete frame (header, tab bar and
   footer) has been written to the terminal; best and median of five runs, beside
   `python -c "import textual.app"` (spawn to exit, same runs interleaved) as the ratio.
   Budget: ≤ 0.5 s. A sixth run gets SIGUSR1 just after its first frame and reports which
   of torch, transformers, datasets, mlflow, azure.ai.ml, promptflow (and trl) it had
   imported by then: none, by the budget.
2. Key presses while streaming. A job record says Running; its "supervisor" is a process
   appending 10,000 lines/s to the job's log. The real app (the Jobs tab, following that
   log) runs in a pseudo-terminal whose output this process keeps reading; 200 key presses
   are typed, 40-60 ms apart. Each press's latency is from the moment Textual's input
   thread turned the bytes into a key event (`Key.time`) to the moment the app ran the
   key's binding; the app is the real `PhiopsApp` plus one extra binding for the probe
   key. The lines the Jobs tab received per second are reported too. Budget: p95 ≤ 100 ms.

Prints one JSON object. Usage: `python benchmarks/bench_tui.py [--runs 5] [--presses 200]`.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import pty
import random
import select
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
PHIOPS = str(Path(PYTHON).parent / "phiops")
HEAVY = ("torch", "transformers", "datasets", "mlflow", "azure.ai.ml", "promptflow", "trl")
BUDGET_FIRST_FRAME_S = 0.5
BUDGET_P95_MS = 100.0
# What the terminal shows, in the order it appears: the first frame (the header's first
# words and the tab bar), the footer's keys, then the Resources tab's check.
MARKS = {"first_frame": b"phiops \xe2\x94\x82", "footer": b"palette", "tab_content": b"Backend "}

MODULES_CHILD = """
import json, os, signal, sys
def dump(*_):
    heavy = [m for m in HEAVY if m in sys.modules]
    with open(os.environ["BENCH_OUT"], "w") as handle:
        json.dump(heavy, handle)
    os._exit(0)
signal.signal(signal.SIGUSR1, dump)
from tui.launcher import main
main(["tui"])
""".replace("HEAVY", repr(HEAVY))

PROBE_CHILD = """
import json, os, sys
from textual._time import get_time
from textual.binding import Binding
from core.config import load_config
from tui.app import PhiopsApp
from tui.services import Services

class Probe(PhiopsApp):
    BINDINGS = [*PhiopsApp.BINDINGS, Binding("ctrl+b", "probe", show=False)]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.latencies, self.key_time, self.received = [], None, []

    async def on_event(self, event):
        if getattr(event, "key", None) == "ctrl+b":
            self.key_time = event.time
        await super().on_event(event)

    def action_probe(self):
        self.latencies.append(get_time() - self.key_time)
        feed = getattr(self.tabs.get("jobs"), "feed", None)
        self.received.append((get_time(), feed.total if feed else 0))

app = Probe(Services(load_config()), initial_tab="jobs")
app.run()
with open(os.environ["BENCH_OUT"], "w") as handle:
    json.dump({"latencies": app.latencies, "received": app.received}, handle)
"""

WRITER = """
import os, sys, time
path, rate = sys.argv[1], float(sys.argv[2])
fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
start, written = time.monotonic(), 0
pad = "x" * 40
while True:
    due = int((time.monotonic() - start) * rate)
    if due > written:
        os.write(fd, "".join(f"{n} step {n // 100} loss {3 - n * 1e-7:.7f} {pad}\\n"
                             for n in range(written, due)).encode())
        written = due
    time.sleep(0.005)
"""


class Terminal:
    """A child process in a pseudo-terminal of 80×24 whose output is read continuously."""

    def __init__(self, argv: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.started = time.perf_counter()
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.chdir(cwd)
            os.execve(argv[0], argv, env)
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        self.output = bytearray()
        self.seen: dict[str, float] = {}  # mark -> seconds from the spawn
        self.cpu_at_frame: float | None = None
        self._stop = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while not self._stop:
            ready, _, _ = select.select([self.fd], [], [], 0.05)
            if not ready:
                continue
            try:
                data = os.read(self.fd, 1 << 16)
            except OSError:
                return
            if not data:
                return
            self.output += data
            for mark, needle in MARKS.items():
                if mark not in self.seen and needle in self.output:
                    self.seen[mark] = time.perf_counter() - self.started
                    if mark == "first_frame":
                        self.cpu_at_frame = cpu_seconds(self.pid)

    def wait_for(self, mark: str = "first_frame", timeout: float = 30.0) -> float:
        """Seconds from the spawn until `mark` was on the terminal."""
        deadline = time.monotonic() + timeout
        while mark not in self.seen:
            if time.monotonic() > deadline:
                raise RuntimeError(f"no {mark} after {timeout}s: {bytes(self.output[-500:])!r}")
            time.sleep(0.002)
        return self.seen[mark]

    def type(self, data: bytes) -> None:
        os.write(self.fd, data)

    def close(self, timeout: float = 20.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                break
            time.sleep(0.05)
        else:
            os.kill(self.pid, signal.SIGKILL)
            _, status = os.waitpid(self.pid, 0)
        self._stop = True
        self._reader.join(timeout=2)
        os.close(self.fd)
        return os.waitstatus_to_exitcode(status)


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far (Linux), less sensitive to a busy machine
    than wall time."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def environment(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PHIOPS_")}
    env.update({"TERM": "xterm-256color", "COLUMNS": "80", "LINES": "24"}, **extra)
    env["PYTHONPATH"] = str(ROOT)
    return env


def make_project(folder: Path) -> None:
    (folder / "phiops.toml").write_text('[project]\nbackend = "local"\n', encoding="utf-8")


def import_textual_s() -> float:
    started = time.perf_counter()
    subprocess.run([PYTHON, "-c", "import textual.app"], check=True, cwd=ROOT)
    return time.perf_counter() - started


def first_frame(project: Path, home: Path) -> dict[str, float]:
    """Seconds from the spawn to each mark, and the CPU seconds used by the first frame."""
    term = Terminal([PHIOPS, "tui"], project, environment(PHIOPS_HOME=str(home)))
    try:
        times = {mark: term.wait_for(mark) for mark in MARKS}
        return {**times, "cpu": term.cpu_at_frame or 0.0}
    finally:
        term.type(b"\x11")  # ctrl+q
        term.close()


def heavy_at_first_frame(project: Path, home: Path) -> list[str]:
    out = project / "modules.json"
    env = environment(PHIOPS_HOME=str(home), BENCH_OUT=str(out))
    term = Terminal([PYTHON, "-c", MODULES_CHILD], project, env)
    term.wait_for("first_frame")
    os.kill(term.pid, signal.SIGUSR1)
    term.close()
    return json.loads(out.read_text())


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def keypress_latency(project: Path, home: Path, presses: int, rate: float) -> dict:
    from core.backend import JobStatus
    from core.local.jobstore import STD_LOG, JobRecord, JobStore, ProcessRef

    store = JobStore(project / ".phiops" / "jobs")
    name = "streaming_heron_0bench0"
    log = store.path(name, STD_LOG)
    log.parent.mkdir(parents=True)
    log.touch()
    writer = subprocess.Popen([PYTHON, "-c", WRITER, str(log), str(rate)], start_new_session=True)
    try:
        time.sleep(0.2)
        now = time.time()
        store.write(
            JobRecord(
                name=name,
                status=JobStatus.RUNNING,
                command=["fine_tune.py"],
                display_name="10k lines/s",
                created_at=now,
                started_at=now,
                runner=ProcessRef.of(writer.pid),
            )
        )
        out = project / "probe.json"
        env = environment(PHIOPS_HOME=str(home), BENCH_OUT=str(out))
        term = Terminal([PYTHON, "-c", PROBE_CHILD], project, env)
        term.wait_for("first_frame")
        time.sleep(3.0)  # the tab is built and the log is flowing
        rng = random.Random(8)
        for _ in range(presses):
            term.type(b"\x02")  # ctrl+b: the probe key
            time.sleep(rng.uniform(0.04, 0.06))
        time.sleep(1.0)
        term.type(b"\x11")  # ctrl+q
        code = term.close(timeout=30)
        written = sum(1 for _ in log.open("rb"))
    finally:
        os.killpg(writer.pid, signal.SIGKILL)
        writer.wait()
    result = json.loads(out.read_text())
    latencies = [value * 1000 for value in result["latencies"]]
    (t0, n0), (t1, n1) = result["received"][0], result["received"][-1]
    return {
        "exit_code": code,
        "writer_lines_per_s": rate,
        "lines_written": written,
        "tab_lines_per_s": round((n1 - n0) / (t1 - t0)),
        "presses": presses,
        "handled": len(latencies),
        "p50_ms": round(percentile(latencies, 0.5), 1),
        "p95_ms": round(percentile(latencies, 0.95), 1),
        "max_ms": round(max(latencies), 1),
        "budget_p95_ms": BUDGET_P95_MS,
        "ok": len(latencies) == presses and percentile(latencies, 0.95) <= BUDGET_P95_MS,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--presses", type=int, default=200)
    parser.add_argument("--rate", type=float, default=10_000, help="log lines/s")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        project, home = Path(tmp) / "project", Path(tmp) / "home"
        project.mkdir()
        home.mkdir()
        make_project(project)
        import_textual_s()  # warm the file cache for both
        first_frame(project, home)
        runs, baseline = [], []
        for _ in range(args.runs):
            baseline.append(import_textual_s())
            runs.append(first_frame(project, home))
        heavy = heavy_at_first_frame(project, home)
        keys = keypress_latency(project, home, args.presses, args.rate)

    def median(key: str) -> float:
        return round(statistics.median(run[key] for run in runs), 3)

    frame, base = median("first_frame"), statistics.median(baseline)
    report = {
        "machine": {"cpus": os.cpu_count(), "load_1min": round(os.getloadavg()[0], 2)},
        "first_frame": {
            "phiops_tui_s": {
                "best": round(min(run["first_frame"] for run in runs), 3),
                "median": frame,
            },
            "import_textual_app_s": {"best": round(min(baseline), 3), "median": round(base, 3)},
            "ratio_median": round(frame / base, 2),
            "cpu_s_median": median("cpu"),
            "footer_keys_s_median": median("footer"),
            "resources_tab_checked_s_median": median("tab_content"),
            "heavy_modules_at_first_frame": heavy,
            "budget_s": BUDGET_FIRST_FRAME_S,
            "ok": frame <= BUDGET_FIRST_FRAME_S and not heavy,
        },
        "keypress_while_streaming": keys,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
