"""An evaluation's recorder: a child process that keeps its MLflow run and scores its rows.

MLflow with its SQLite store, and rouge-score, take ~3.5 s of CPU to load on a small
machine. Loaded in a thread of the process asking the target, they held its GIL while
the answers came back and took CPU a local endpoint needs: on 2 cores, a quarter of the
endpoint's throughput for 50 rows (issue 18). The recorder loads them in a process of its
own as soon as an evaluation starts, on the CPU a local scoring server leaves idle (it
generates on about one core); the asking process loads neither.

Requests go in order over the child's stdin, one JSON line each; each gets one JSON line
back on a pipe of its own (what a library prints goes to the child's log instead): open
the run (create it, or set a resumed one running), finish it (score the rows, aggregate,
write them, log it all, end it), mark it interrupted or failed. Ctrl-C is the parent's to
handle: the child ignores SIGINT and is asked to mark the run. It exits when its stdin
closes, so it never outlives its evaluation.

`python -m core.eval.recorder STORE` runs the child.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any

from core.errors import PhiopsError
from core.eval.results import ROWS_FILE, EvalMeta, EvalStore, write_rows

# nltk, whose Porter stemmer ROUGE uses, imports these at package import when they are
# installed (MLflow installs them), for integrations ROUGE never calls: ~1.7 s of CPU.
NOT_FOR_ROUGE = ("scipy", "sklearn")


class Recorder:
    """The parent's side: a recorder process for one evaluation (or a few, in turn).

    A context manager; the process ends with it. Every request but `open` waits for its
    reply; `open`'s is read by the next request, so the run is created while the target
    answers."""

    def __init__(self, store_path: Path) -> None:
        from core.serving.process import PRIVATE_ENV, REPO_ROOT

        env = {name: value for name, value in os.environ.items() if name not in PRIVATE_ENV}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        self._log: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115  closed by close()
        self._process = subprocess.Popen(
            [sys.executable, "-m", "core.eval.recorder", str(store_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=env,
            text=True,
            encoding="utf-8",
        )
        self._opening: EvalMeta | None = None
        self._unread = 0  # replies not read yet (a request interrupted by Ctrl-C)

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- requests ------------------------------------------------------------------------

    def open(self, meta: EvalMeta) -> None:
        """Create `meta`'s run, or set it running again if it has one (a resumed
        evaluation). Not waited for: the next request reads the reply and sets
        `meta.run_id` (and `meta.model_id`, the logged model the run is linked to)."""
        self._send({"op": "open", "meta": asdict(meta)})
        self._opening = meta

    def finish(
        self,
        meta: EvalMeta,
        rows: list[dict[str, Any]],
        *,
        generation_s: float | None,
        timings: dict[str, float],
    ) -> None:
        """Score the rows (those the evaluation flow has not), aggregate them, write them
        and log the run with its metrics and artifacts, ended."""
        self._call(
            "finish",
            meta,
            rows=rows,
            generation_s=generation_s,
            timings=timings,
            sent_at=time.time(),
        )

    def mark(self, meta: EvalMeta, state: str) -> None:
        """The evaluation was interrupted or failed: say so in its folder and its run."""
        self._call("mark", meta, state=state)

    def close(self) -> None:
        """Close its stdin: idle, it exits at once. Still loading (the evaluation ended
        early, say the target was not ready), it exits when done, alone: killed, it could
        stop halfway through creating a new MLflow store's tables."""
        with contextlib.suppress(OSError):
            self._process.stdin.close()  # type: ignore[union-attr]
        try:
            self._process.wait(timeout=1)
        except subprocess.TimeoutExpired:  # reaped when it ends, so a TUI keeps no zombie
            threading.Thread(target=self._process.wait, daemon=True).start()
        self._process.stdout.close()  # type: ignore[union-attr]
        self._log.close()

    # -- the pipe ------------------------------------------------------------------------

    def _call(self, op: str, meta: EvalMeta, **fields: Any) -> None:
        self._opened()
        self._send({"op": op, "meta": asdict(meta), **fields})
        self._read()

    def _opened(self) -> None:
        """Read the replies not read yet: `open`'s sets the run's id; others were left by
        a request that Ctrl-C interrupted."""
        meta = self._opening
        if meta is not None:
            try:
                reply = self._read()
            except PhiopsError:
                self._opening = None
                raise
            self._opening = None
            meta.run_id, meta.model_id = reply["run_id"], reply["model_id"]
        while self._unread:
            with contextlib.suppress(PhiopsError):
                self._read()

    def _send(self, request: dict[str, Any]) -> None:
        try:
            self._process.stdin.write(json.dumps(request) + "\n")  # type: ignore[union-attr]
            self._process.stdin.flush()  # type: ignore[union-attr]
        except OSError:
            raise self._gone() from None
        self._unread += 1

    def _read(self) -> dict[str, Any]:
        line = self._process.stdout.readline()  # type: ignore[union-attr]
        if not line:
            raise self._gone()
        self._unread -= 1
        reply = json.loads(line)
        if "error" in reply:
            raise PhiopsError(f"the evaluation could not be recorded in MLflow: {reply['error']}")
        return reply

    def _gone(self) -> PhiopsError:
        code = self._process.wait()
        self._log.seek(0)
        lines = self._log.read().decode("utf-8", "replace").strip().splitlines()
        why = lines[-1] if lines else f"exit status {code}"
        return PhiopsError(f"the evaluation's recorder process stopped: {why}")


# -- the child ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent asks for the run to be marked
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # what libraries print: to the log
    load_rouge()
    store = EvalStore(Path(args[0]))
    with contextlib.suppress(Exception):  # reported by the request that needs MLflow
        store.prepare()
    for line in sys.stdin:
        request = json.loads(line)
        try:
            reply = handle(store, request)
        except Exception as error:  # the parent says it in one sentence
            reply = {"error": (str(error).strip().splitlines() or [type(error).__name__])[0]}
        replies.write(json.dumps(reply) + "\n")
        replies.flush()
    # Every request's work was committed before its reply: nothing is left to flush, and
    # the interpreter's shutdown with MLflow loaded (its threads, its objects) took ~1 s.
    os._exit(0)


def handle(store: EvalStore, request: dict[str, Any]) -> dict[str, Any]:
    meta = EvalMeta.from_dict(request["meta"])
    op = request["op"]
    if op == "open":
        if meta.run_id:
            store.reopen(meta)
        else:
            store.create_run(meta)
        return {"run_id": meta.run_id, "model_id": meta.model_id}
    if op == "finish":
        finish(store, meta, request)
        return {}
    if op == "mark":
        store.mark(meta, request["state"])
        return {}
    raise ValueError(f"unknown request {op!r}")


def finish(store: EvalStore, meta: EvalMeta, request: dict[str, Any]) -> None:
    from core.eval import scoring

    waited = max(0.0, time.time() - float(request["sent_at"]))
    started = time.perf_counter()
    rows = request["rows"]
    for row in rows:
        if not row.get("error") and "scored_by" not in row:  # scored_by: the flow's scores
            row.update(scoring.score(row, meta.max_new_tokens))
    aggregates = scoring.aggregate(rows)
    timings = {
        **request["timings"],
        "waiting_for_recorder_s": round(waited, 3),
        "scoring_s": round(time.perf_counter() - started, 3),
    }
    write_rows(store.folder(meta) / ROWS_FILE, rows)
    store.finish(meta, aggregates, generation_s=request["generation_s"], timings=timings)


def load_rouge() -> None:
    """ROUGE's scorer, loaded without SciPy and scikit-learn (see NOT_FOR_ROUGE).

    A module set to None in `sys.modules` cannot be imported, and nltk guards those
    imports. This process does nothing else meanwhile (one thread), and what it imports
    later finds them again. Should a future nltk need them, it loads as usual."""
    from core.eval import scoring

    hidden = [name for name in NOT_FOR_ROUGE if name not in sys.modules]
    sys.modules.update(dict.fromkeys(hidden))
    try:
        scoring.load_rouge()
    except ImportError:
        for name in [m for m in sys.modules if m.split(".")[0] in ("nltk", "rouge_score")]:
            del sys.modules[name]
    finally:
        for name in hidden:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]
    scoring.load_rouge()


if __name__ == "__main__":
    main()
