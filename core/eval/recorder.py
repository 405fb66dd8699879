"""An evaluation's recorder: a child process that keeps its MLflow run and scores its rows.

MLflow with its SQLite store, and rouge-score, take ~3.5 s of CPU to load on a small
machine. Loaded in a thread of the process asking the target, they held its GIL while
the answers came back and took CPU a local endpoint needs: on 2 cores, a quarter of the
endpoint's throughput for 50 rows (issue 18). The recorder loads them in a process of its
own as soon as an evaluation starts, on the CPU a local scoring server leaves idle (it
generates on about one core); the asking process loads neither.

Requests go in order over the child's stdin, one short JSON line each with an id; each
gets one reply line with that id on a pipe of its own (what a library prints goes to the
child's log instead). `open` creates the run, or sets a resumed one running; it is not
waited for, and the asking process polls for its reply as answers arrive, so a refusal
stops the evaluation early. `finish` scores the rows the asking process completed (they
go through a file, so a request is always one small write), aggregates, writes them and
logs and ends the run. `mark` records an interruption or a failure, unless the evaluation
finished meanwhile. `close` ends the child. A reply that an interrupted wait left unread
is skipped by its id.

The child runs in a process group of its own, so a terminal's Ctrl-C reaches only the
asking process, which then asks for the run to be marked. It exits on `close` or when its
stdin closes, so it never outlives its evaluation; with `os._exit`, since every request's
work is committed before its reply (MLflow's asynchronous logging is turned off for it)
and the interpreter's shutdown with MLflow loaded took ~1 s.

`python -m core.eval.recorder STORE` runs the child.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any

from core.errors import PhiopsError
from core.eval.results import (
    FAILED,
    ROWS_FILE,
    EvalMeta,
    EvalStore,
    read_rows,
    write_rows,
)

# The rows the asking process completed (token counts, reference losses), to be scored.
COMPLETED_FILE = "completed.jsonl"

# nltk, whose Porter stemmer ROUGE uses, imports these at package import when they are
# installed (MLflow installs them), for integrations ROUGE never calls: ~1.7 s of CPU.
NOT_FOR_ROUGE = ("scipy", "sklearn")


class Recorder:
    """The asking process's side: a recorder process for one evaluation (or a few, in
    turn). A context manager; the process ends with it."""

    def __init__(self, store_path: Path) -> None:
        from core.serving.process import child_env

        env = child_env()
        env["PYTHONUNBUFFERED"] = "1"  # its log is read when it dies
        env["MLFLOW_ENABLE_ASYNC_LOGGING"] = "false"  # a reply means it is written
        self._log: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115  closed by close()
        self._process = subprocess.Popen(
            # -P: nothing is imported from the working directory (a project's json.py)
            [sys.executable, "-P", "-m", "core.eval.recorder", str(store_path.resolve())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=env,
            text=True,
            encoding="utf-8",
            process_group=0,  # Ctrl-C is the asking process's to handle
        )
        self._ids = 0
        self._pending: set[int] = set()  # requests whose reply is not read yet
        self._replies: dict[int, dict[str, Any]] = {}  # read, for the request waiting on it
        self._opening: dict[int, EvalMeta] = {}  # open's id -> the meta its reply completes
        self._refused: PhiopsError | None = None  # open's failure, raised once

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- requests ------------------------------------------------------------------------

    def open(self, meta: EvalMeta) -> None:
        """Create `meta`'s run, or set it running again if it has one (a resumed
        evaluation). Not waited for: a reply sets `meta.run_id` (and `meta.model_id`,
        the logged model the run is linked to) when `poll` or a later request reads it."""
        self._opening[self._send("open", meta)] = meta

    def poll(self) -> None:
        """Read the replies that have reached the pipe, without waiting; raise if `open`
        failed (a reply read ahead into the buffer waits for the next request)."""
        while self._pending and select.select([self._process.stdout], [], [], 0)[0]:
            self._read_one()
        self._raise_refusal()

    def finish(
        self,
        meta: EvalMeta,
        folder: Path,
        rows: list[dict[str, Any]],
        *,
        generation_s: float | None,
        timings: dict[str, float],
    ) -> None:
        """Score the rows (those the evaluation flow has not), aggregate them, write them
        and log the run with its metrics and artifacts, ended."""
        write_rows(folder / COMPLETED_FILE, rows)
        self._call("finish", meta, generation_s=generation_s, timings=timings, sent_at=time.time())

    def mark(self, meta: EvalMeta, state: str) -> str:
        """The evaluation was interrupted or failed: say so in its folder and its run.
        Returns the state it ended in (finished, if it was recorded meanwhile)."""
        return str(self._call("mark", meta, state=state)["state"])

    def close(self) -> None:
        """Ask the child to end and close its stdin. One that never got a request may
        still be loading: it ends alone when done (killed, it could stop halfway through
        creating a new MLflow store's tables), reaped by a thread so a TUI keeps no
        zombie."""
        with contextlib.suppress(OSError, ValueError):
            self._process.stdin.write(json.dumps({"op": "close"}) + "\n")  # type: ignore[union-attr]
            self._process.stdin.close()  # type: ignore[union-attr]
        try:
            self._process.wait(timeout=1 if self._ids else 0)
        except subprocess.TimeoutExpired:
            threading.Thread(target=self._process.wait, daemon=True).start()
        self._process.stdout.close()  # type: ignore[union-attr]
        self._log.close()

    # -- the pipes -----------------------------------------------------------------------

    def _call(self, op: str, meta: EvalMeta, **fields: Any) -> dict[str, Any]:
        """Send a request and wait for its reply. The child knows the runs it opened, so
        the request need not wait for `open`'s reply; its failure is raised here once."""
        wanted = self._send(op, meta, **fields)
        while wanted in self._pending:
            self._read_one()
        reply = self._replies.pop(wanted)
        self._raise_refusal()
        if "error" in reply:
            raise _refusal(reply["error"])
        meta.run_id, meta.model_id = reply["run_id"], reply["model_id"]
        return reply

    def _send(self, op: str, meta: EvalMeta, **fields: Any) -> int:
        self._ids += 1
        self._pending.add(self._ids)  # before writing: its reply may come either way
        request = {"id": self._ids, "op": op, "meta": asdict(meta), **fields}
        try:
            self._process.stdin.write(json.dumps(request) + "\n")  # type: ignore[union-attr]
            self._process.stdin.flush()  # type: ignore[union-attr]
        except OSError:
            raise self._gone() from None
        return self._ids

    def _read_one(self) -> None:
        """One reply: `open`'s completes its meta (or keeps its failure); another is kept
        for its request (one whose wait Ctrl-C interrupted stays unclaimed)."""
        line = self._process.stdout.readline()  # type: ignore[union-attr]
        if not line:
            raise self._gone()
        reply = json.loads(line)
        number = reply["id"]
        self._pending.discard(number)
        meta = self._opening.pop(number, None)
        if meta is None:
            self._replies[number] = reply
        elif "error" in reply:
            self._refused = _refusal(reply["error"])
        else:
            meta.run_id, meta.model_id = reply["run_id"], reply["model_id"]

    def _raise_refusal(self) -> None:
        refused, self._refused = self._refused, None
        if refused is not None:
            raise refused

    def _gone(self) -> PhiopsError:
        code = self._process.wait()
        self._log.seek(0)
        lines = self._log.read().decode("utf-8", "replace").strip().splitlines()
        if code < 0 or not any(line.startswith("Traceback") for line in lines):
            why = f"signal {-code}" if code < 0 else f"exit status {code}"
        else:
            why = lines[-1]
        return PhiopsError(f"the evaluation's recorder process stopped ({why})")


def _refusal(error: str) -> PhiopsError:
    return PhiopsError(f"the evaluation could not be recorded in MLflow: {error}")


# -- the child ---------------------------------------------------------------------------


class Child:
    """The recorder process: the store, the runs it opened, the requests served in turn."""

    def __init__(self, store: EvalStore) -> None:
        self.store = store
        self.runs: dict[str, tuple[str, str]] = {}  # evaluation id -> (run id, model id)

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        meta = EvalMeta.from_dict(request["meta"])
        op = request["op"]
        if op == "open":
            if meta.run_id:
                self.store.reopen(meta)
            else:
                self.store.create_run(meta)
            self.runs[meta.id] = (meta.run_id, meta.model_id)
            return self._ids(meta)
        if meta.id in self.runs:  # the asking process may not have read open's reply yet
            meta.run_id, meta.model_id = self.runs[meta.id]
        if op == "finish":
            if not meta.run_id:
                raise PhiopsError("its MLflow run could not be created")
            self.finish(meta, request)
            return self._ids(meta)
        if op == "mark":
            return {**self._ids(meta), "state": self.store.mark(meta, request["state"])}
        raise ValueError(f"unknown request {op!r}")

    def finish(self, meta: EvalMeta, request: dict[str, Any]) -> None:
        from core.eval import scoring

        waited = max(0.0, time.time() - float(request["sent_at"]))
        started = time.perf_counter()
        folder = self.store.folder(meta)
        rows = read_rows(folder / COMPLETED_FILE)
        for row in rows:
            if not row.get("error") and "scored_by" not in row:  # scored_by: by the flow
                row.update(scoring.score(row, meta.max_new_tokens))
        aggregates = scoring.aggregate(rows)
        timings = {
            **request["timings"],
            "waiting_for_recorder_s": round(waited, 3),
            "scoring_s": round(time.perf_counter() - started, 3),
        }
        write_rows(folder / ROWS_FILE, rows)
        try:
            generation_s = request["generation_s"]
            self.store.finish(meta, aggregates, generation_s=generation_s, timings=timings)
        except Exception:  # not "finished" on disk while its run is not
            with contextlib.suppress(Exception):
                self.store.mark(meta, FAILED, force=True)
            raise
        (folder / COMPLETED_FILE).unlink(missing_ok=True)

    @staticmethod
    def _ids(meta: EvalMeta) -> dict[str, Any]:
        return {"run_id": meta.run_id, "model_id": meta.model_id}


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    replies: IO[str] | None = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # what libraries print: to the log
    load_rouge()
    store = EvalStore(Path(args[0]))
    with contextlib.suppress(Exception):  # said by the request that needs MLflow
        store.prepare()
    child = Child(store)
    for line in sys.stdin:
        request = json.loads(line)
        if request["op"] == "close":
            break
        try:
            reply = {"id": request["id"], **child.handle(request)}
        except Exception as error:  # the asking process says it in one sentence
            reply = {"id": request["id"], "error": _one_line(error)}
        if replies is not None:
            try:
                replies.write(json.dumps(reply) + "\n")
                replies.flush()
            except BrokenPipeError:  # the asking process is gone: serve what it sent
                replies = None
    # Every request's work was committed before its reply: nothing is left to flush, and
    # the interpreter's shutdown with MLflow loaded (its threads, its objects) took ~1 s.
    os._exit(0)


def _one_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


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
