"""Evaluations kept as MLflow runs in the project's store, with their rows beside them.

Each evaluation is a run of the `phiops-evaluations` experiment in the local MLflow store
(`<store>/mlflow.db`, for both backends: Azure's workspace MLflow would need
azureml-mlflow, which downgrades mlflow-skinny), tagged with the model version it
evaluated (`phiops.model`) and, for a version of the local registry, linked to its logged
model (metrics carry its `model_id`, and the run lists it as an input). Params: target,
data file and its sha256, rows, generation parameters, concurrency, engine. Metrics: every
aggregate with `_low` / `_high` (the 95% bootstrap interval). Artifacts: `rows.jsonl` (the
per-row table) and `summary.json`.

While it runs, the rows go to `<store>/evaluations/<id>/rows.jsonl`, one line as each
answer arrives, so an interrupted evaluation keeps them and `--resume RUN` continues. The
run is created, and the rows scored and recorded, by the evaluation's recorder process
(`core/eval/recorder.py`): MLflow takes ~3 s of CPU to load, which the process asking the
target must not spend.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core.atomic import write_text_atomic
from core.config import Config
from core.errors import NotFoundError, PhiopsError

EXPERIMENT = "phiops-evaluations"
EVAL_TAG = "phiops.eval"
ID_TAG = "phiops.eval.id"
STATE_TAG = "phiops.eval.state"
MODEL_TAG = "phiops.model"
TARGET_TAG = "phiops.target"
IDENTITY_TAG = "phiops.identity"
ROWS_FILE = "rows.jsonl"  # the scored rows, written when the evaluation ends
ANSWERS_FILE = "answers.jsonl"  # the answers, one line as each arrives
META_FILE = "meta.json"
SUMMARY_FILE = "summary.json"
RUNNING, INTERRUPTED, FINISHED, FAILED = "running", "interrupted", "finished", "failed"


@dataclass
class EvalMeta:
    """What an evaluation is about; saved in its folder and as the run's params."""

    target: dict[str, str]
    label: str
    model: str
    backend: str
    identity: str
    data_path: str
    data_sha256: str
    rows_total: int
    rows_read: int
    skipped: dict[str, int]
    limit: int | None
    temperature: float
    max_new_tokens: int
    top_p: float
    concurrency: int
    engine: str = "inprocess"
    model_id: str = ""  # the local registry's logged model, when there is one
    started_at: float = field(default_factory=time.time)
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    run_id: str = ""
    owner: list[float] = field(default_factory=list)  # pid and start time of the process

    def params(self) -> dict[str, str]:
        """The run's params (MLflow keeps strings of at most 6000 characters)."""
        values = {
            "target": self.label,
            "target_kind": self.target.get("kind", ""),
            "model": self.model or "mixed",
            "backend": self.backend,
            "data": self.data_path,
            "data_sha256": self.data_sha256,
            "rows": self.rows_total,
            "rows_read": self.rows_read,
            "rows_skipped": sum(self.skipped.values()),
            "limit": self.limit if self.limit is not None else "none",
            "temperature": self.temperature,
            "max_new_tokens": self.max_new_tokens,
            "top_p": self.top_p,
            "concurrency": self.concurrency,
            "engine": self.engine,
        }
        return {key: str(value)[:6000] for key, value in values.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvalMeta:
        known = {name for name in cls.__dataclass_fields__}
        return cls(**{key: value for key, value in data.items() if key in known})


@dataclass
class EvalRecord:
    """A stored evaluation: what it was, how it ended, its aggregates and rows."""

    meta: EvalMeta
    state: str
    aggregates: dict[str, dict[str, Any]] = field(default_factory=dict)
    generation_s: float | None = None
    ended_at: float | None = None
    timings: dict[str, float] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def run_id(self) -> str:
        return self.meta.run_id

    def to_dict(self, rows: bool = True) -> dict[str, Any]:
        data = {
            "run_id": self.run_id,
            "state": self.state,
            "meta": asdict(self.meta),
            "aggregates": self.aggregates,
            "generation_s": self.generation_s,
            "timings": self.timings,
            "ended_at": self.ended_at,
        }
        if rows:
            data["rows"] = self.rows
        return data


class EvalStore:
    """The project's evaluations: folders under `<store>/evaluations/`, runs in MLflow."""

    def __init__(self, where: Config | Path) -> None:
        """`where`: the project's config, or its store's folder (the recorder process)."""
        self.store_path = where if isinstance(where, Path) else where.store_path
        self.root = self.store_path / "evaluations"
        self._client: Any = None
        self._experiment: str | None = None
        self._lock = threading.RLock()

    # -- MLflow --------------------------------------------------------------------------

    @property
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                from core.local.tracking import mlflow_client

                self._client = mlflow_client(self.store_path)
            return self._client

    def _experiment_id(self) -> str:
        from core.local.tracking import ensure_experiment

        client = self.client
        with self._lock:
            if self._experiment is None:
                self._experiment = ensure_experiment(client, EXPERIMENT, self.store_path)
            return self._experiment

    def prepare(self) -> None:
        """MLflow imported, its store opened and the experiment found (~3 s of CPU on a
        small machine): the recorder process does it while the target answers."""
        self._experiment_id()

    def create_run(self, meta: EvalMeta) -> str:
        """The MLflow run for `meta` (params and tags set); its id is written to meta.json."""
        client = self.client
        tags = {
            EVAL_TAG: "1",
            ID_TAG: meta.id,
            STATE_TAG: RUNNING,
            MODEL_TAG: meta.model or "mixed",
            TARGET_TAG: meta.label,
            IDENTITY_TAG: meta.identity,
            "mlflow.runName": f"eval {meta.label}",
        }
        run = client.create_run(self._experiment_id(), run_name=f"eval {meta.label}", tags=tags)
        run_id = run.info.run_id
        from mlflow.entities import Param

        client.log_batch(run_id, params=[Param(k, v) for k, v in meta.params().items()])
        if meta.backend == "local" and not meta.model_id:
            meta.model_id = logged_model_id(client, meta.model)
        if meta.model_id:
            from mlflow.entities import LoggedModelInput

            client.log_inputs(run_id, models=[LoggedModelInput(meta.model_id)])
        meta.run_id = run_id
        self.save_meta(meta)
        return run_id

    def finish(
        self,
        meta: EvalMeta,
        aggregates: dict[str, dict[str, Any]],
        *,
        generation_s: float | None,
        timings: dict[str, float] | None = None,
        state: str = FINISHED,
    ) -> None:
        """Metrics, the rows and summary as artifacts, the run ended (or killed)."""
        from mlflow.entities import Metric, RunTag

        client = self.client
        now = int(time.time() * 1000)
        metrics = []
        for name, figures in aggregates.items():
            for suffix, key in (("", "value"), ("_low", "low"), ("_high", "high")):
                if figures.get(key) is not None:
                    metrics.append(
                        Metric(
                            name + suffix,
                            float(figures[key]),
                            now,
                            0,
                            model_id=meta.model_id or None,
                        )
                    )
        if generation_s is not None:
            metrics.append(Metric("generation_s", float(generation_s), now, 0))
        started = time.perf_counter()
        summary = {
            "state": state,
            "aggregates": aggregates,
            "generation_s": generation_s,
            "timings": dict(timings or {}),
            "ended_at": time.time(),
        }
        write_text_atomic(self.folder(meta) / SUMMARY_FILE, json.dumps(summary, indent=2))
        client.log_batch(meta.run_id, metrics=metrics, tags=[RunTag(STATE_TAG, state)])
        if state == FINISHED:
            for name in (ROWS_FILE, SUMMARY_FILE, META_FILE):
                path = self.folder(meta) / name
                if path.is_file():
                    client.log_artifact(meta.run_id, str(path))
        status = {FINISHED: "FINISHED", INTERRUPTED: "KILLED"}.get(state, "FAILED")
        client.set_terminated(meta.run_id, status=status)
        summary["timings"]["recording_s"] = round(time.perf_counter() - started, 3)
        write_text_atomic(self.folder(meta) / SUMMARY_FILE, json.dumps(summary, indent=2))

    def mark(self, meta: EvalMeta, state: str, *, force: bool = False) -> str:
        """Record an interrupted or failed evaluation (its rows stay for --resume); the
        state it ended in: one that finished (Ctrl-C came as it was recorded) stays so,
        unless `force` (its recording failed halfway)."""
        if not force and self._record(meta, rows=False).state == FINISHED:
            return FINISHED
        write_text_atomic(
            self.folder(meta) / SUMMARY_FILE,
            json.dumps({"state": state, "ended_at": time.time()}, indent=2),
        )
        if meta.run_id:
            from mlflow.entities import RunTag

            self.client.log_batch(meta.run_id, tags=[RunTag(STATE_TAG, state)])
            status = "KILLED" if state == INTERRUPTED else "FAILED"
            self.client.set_terminated(meta.run_id, status=status)
        return state

    def reopen(self, meta: EvalMeta) -> None:
        """A resumed evaluation's run is running again."""
        from mlflow.entities import RunTag

        self.client.update_run(meta.run_id, status="RUNNING")
        self.client.log_batch(meta.run_id, tags=[RunTag(STATE_TAG, RUNNING)])
        self.save_meta(meta)  # its new owner: the process resuming it
        (self.folder(meta) / SUMMARY_FILE).unlink(missing_ok=True)

    # -- the folder ------------------------------------------------------------------------

    def folder(self, meta: EvalMeta) -> Path:
        return self.root / meta.id

    def save_meta(self, meta: EvalMeta) -> None:
        folder = self.folder(meta)
        folder.mkdir(parents=True, exist_ok=True)
        write_text_atomic(folder / META_FILE, json.dumps(asdict(meta), indent=2))

    def open_rows(self, meta: EvalMeta) -> RowWriter:
        self.save_meta(meta)
        return RowWriter(self.folder(meta) / ROWS_FILE)

    # -- reading -------------------------------------------------------------------------

    def _metas(self) -> Iterable[EvalMeta]:
        if not self.root.is_dir():
            return
        for entry in self.root.iterdir():
            try:
                yield EvalMeta.from_dict(json.loads((entry / META_FILE).read_text()))
            except (OSError, ValueError, TypeError):
                continue

    def list(self) -> list[EvalRecord]:
        """Every evaluation, newest first (rows not read)."""
        found = [self._record(meta, rows=False) for meta in self._metas() if meta.run_id]
        return sorted(found, key=lambda record: -record.meta.started_at)

    def get(self, run: str, *, rows: bool = True) -> EvalRecord:
        """An evaluation by its run id or a unique prefix of it."""
        run = run.strip()
        matches = [meta for meta in self._metas() if meta.run_id and meta.run_id.startswith(run)]
        if not run or not matches:
            raise NotFoundError(f"no evaluation run {run!r}; see `phiops eval list`")
        if len(matches) > 1:
            shown = ", ".join(sorted(meta.run_id[:12] for meta in matches))
            raise PhiopsError(f"{run!r} names more than one evaluation ({shown}); give more of it")
        return self._record(matches[0], rows=rows)

    def _record(self, meta: EvalMeta, *, rows: bool) -> EvalRecord:
        folder = self.folder(meta)
        try:
            summary = json.loads((folder / SUMMARY_FILE).read_text())
        except (OSError, ValueError):
            summary = {"state": RUNNING}
        state = summary.get("state", RUNNING)
        if state == RUNNING and not _still_running(meta):
            state = INTERRUPTED  # the process that ran it is gone
        record = EvalRecord(
            meta=meta,
            state=state,
            aggregates=summary.get("aggregates") or {},
            generation_s=summary.get("generation_s"),
            timings=summary.get("timings") or {},
            ended_at=summary.get("ended_at"),
        )
        if rows:  # scored rows once finished; the answers so far before that
            record.rows = read_rows(folder / ROWS_FILE) or read_rows(folder / ANSWERS_FILE)
        return record

    def fresh(
        self, identity: str, data_sha256: str, settings: dict[str, Any], max_age_s: float
    ) -> EvalRecord | None:
        """The newest finished evaluation of the same target and model on the same data
        with the same settings, if it is younger than `max_age_s`."""
        now = time.time()
        for record in self.list():
            meta = record.meta
            if (
                record.state == FINISHED
                and meta.identity == identity
                and meta.data_sha256 == data_sha256
                and same_settings(meta, settings)
                and now - (record.ended_at or meta.started_at) <= max_age_s
            ):
                return self.get(meta.run_id)
        return None


def logged_model_id(client: Any, ref: str) -> str:
    """The MLflow 3 logged model a version of the local registry points at ("" if none):
    the version's run's model output whose files are the version's source."""
    name, _, version = ref.partition(":")
    if not name or not version or name == "base":
        return ""
    try:
        found = client.get_model_version(name, version)
        if getattr(found, "model_id", None):
            return str(found.model_id)
        if not found.run_id:
            return ""
        outputs = client.get_run(found.run_id).outputs
        for output in getattr(outputs, "model_outputs", None) or []:
            logged = client.get_logged_model(output.model_id)
            if logged.artifact_location.rstrip("/") == str(found.source).rstrip("/"):
                return str(logged.model_id)
    except Exception:  # a version of another registry, or one without a logged model
        return ""
    return ""


def same_settings(meta: EvalMeta, settings: dict[str, Any]) -> bool:
    return all(getattr(meta, name) == value for name, value in settings.items())


def _still_running(meta: EvalMeta) -> bool:
    """Whether the process that started the evaluation is still alive (pid + start time)."""
    if len(meta.owner) != 2:
        return False
    import psutil

    try:
        return abs(psutil.Process(int(meta.owner[0])).create_time() - meta.owner[1]) < 1
    except psutil.Error:
        return False


def write_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    """The scored rows, at once (an interruption leaves the earlier file or this one)."""
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    write_text_atomic(path, text)


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The rows written so far; a last line cut by an interruption is ignored."""
    rows = []
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return rows
    for line in text.splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


class RowWriter:
    """Appends one JSON line per row and flushes it, so what was answered survives."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115  closed by close()

    def write(self, row: dict[str, Any]) -> None:
        self._file.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
