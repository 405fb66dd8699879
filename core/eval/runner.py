"""One evaluation from start to stored result: `phiops eval`, the gate and the demo use it.

test file → cases → target resolved (ready, its key, its concurrency) → answers, each
written to the evaluation's folder as it arrives → the reference's loss where the model's
files are here → scores (`flow/eval/eval_metrics.py`) → aggregates with bootstrap
intervals → the MLflow run finished. Ctrl-C keeps the answers and marks the run
interrupted; `resume(run)` asks only the rest. The MLflow run and the scoring are the
recorder process's (`core/eval/recorder.py`), which starts with the evaluation and loads
their libraries while the target answers; this process asks the target and loads neither.

Two engines give the same scores: `inprocess` (phiops' own requests, as many at once as
the deployment serves — the default, and the fast one) and `promptflow` (a Prompt flow
batch run of the chat flow, then one of the evaluation flow; see `core/eval/pfbatch.py`).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core.backend import Backend
from core.config import Config
from core.errors import PhiopsError
from core.eval.data import Case, EvalSet, load_eval_set
from core.eval.generate import Generated, Params, Stopped, TargetFailed, run_generation
from core.eval.recorder import Recorder
from core.eval.results import (
    ANSWERS_FILE,
    FAILED,
    FINISHED,
    INTERRUPTED,
    EvalMeta,
    EvalRecord,
    EvalStore,
    read_rows,
)
from core.eval.targets import (
    Resolved,
    TargetSpec,
    describe,
    find_model,
    model_dir,
    resolved,
    started,
)

ENGINES = ("inprocess", "promptflow")
DEFAULT_FRESH_S = 24 * 3600.0

Say = Callable[[str], None]
Advance = Callable[[int, int], None]


class EvalInterrupted(PhiopsError):
    """Ctrl-C during an evaluation: the answers so far are kept for `--resume`."""

    exit_code = 130

    def __init__(self, run_id: str, done: int, total: int) -> None:
        super().__init__(
            f"evaluation interrupted after {done} of {total} rows; the answers are kept: "
            f"`phiops eval --resume {run_id[:12]}` asks the rest"
        )
        self.run_id, self.done, self.total = run_id, done, total


@dataclass
class EvalOptions:
    data: str | None = None  # default: the project's test file
    limit: int | None = None
    params: Params = field(default_factory=Params)
    concurrency: int | None = None
    engine: str = "inprocess"
    loss: bool = True  # the reference's loss, where the model's files are on this machine


def _quiet(*_: Any) -> None:
    return None


def row_of(generated: Generated) -> dict[str, Any]:
    """The stored form of one answer (scores are added when the evaluation ends)."""
    case = generated.case
    return {
        "line": case.line,
        "id": case.id,
        "system": case.system,
        "history": [list(pair) for pair in case.history],
        "question": case.question,
        "reference": case.reference,
        "answer": generated.answer,
        "latency_s": generated.latency_s,
        "tokens": generated.tokens,
        "finished": generated.finished,
        "deployment": generated.deployment,
        "error": generated.error,
    }


def token_counter(folder: Path | None) -> Callable[[str], int] | None:
    """Counts an answer's tokens with the model's tokenizer (for servers that do not say
    how many they generated); None when the tokenizer is not on this machine."""
    if folder is None:
        return None
    from core.serving.modelfiles import find_model_files

    try:
        path = find_model_files(folder).tokenizer_dir / "tokenizer.json"
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(path))
    except Exception:
        return None
    return lambda text: len(tokenizer.encode(text, add_special_tokens=False).ids)


class Evaluation:
    """Runs evaluations for one project; `say` gets phases, `advance` rows done/total."""

    def __init__(
        self,
        config: Config,
        backend: Backend | None = None,
        *,
        store: EvalStore | None = None,
        say: Say | None = None,
        advance: Advance | None = None,
        transport: Any = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.config = config
        self.stop = stop  # set from another thread (a UI) to interrupt, as Ctrl-C does
        self._started = time.perf_counter()
        self._backend = backend
        self.store = store or EvalStore(config)
        self.say = say or _quiet
        self.advance = advance or _quiet
        self.transport = transport  # an httpx transport for the requests (tests, proxies)

    @property
    def backend(self) -> Backend:
        if self._backend is None:
            from core.backends import get_backend

            self._backend = get_backend(self.config)
        return self._backend

    # -- entry points --------------------------------------------------------------------

    def run(self, spec: TargetSpec, options: EvalOptions | None = None) -> EvalRecord:
        self._started = time.perf_counter()
        options = options or EvalOptions()
        if options.engine not in ENGINES:
            raise PhiopsError(f"unknown engine {options.engine!r}; use {' or '.join(ENGINES)}")
        data = self.config.resolve(options.data or self.config.test_data_path)
        eval_set = load_eval_set(data, options.limit)
        if eval_set.skipped:
            self.say(eval_set.skipped_sentence())
        with (
            self._recorder() as recorder,
            resolved(
                self.config,
                self.backend,
                spec,
                concurrency=options.concurrency,
                progress=self.say,
            ) as target,
        ):
            return self._start(target, eval_set, options, recorder)

    def _recorder(self) -> Recorder:
        """Started before the target is resolved: it loads MLflow and ROUGE meanwhile."""
        return Recorder(self.store.store_path)

    def _start(
        self, target: Resolved, eval_set: EvalSet, options: EvalOptions, recorder: Recorder
    ) -> EvalRecord:
        meta = self._meta(target, eval_set, options)
        self.store.save_meta(meta)
        recorder.open(meta)
        return self._evaluate(target, meta, eval_set.cases, [], options, recorder)

    def resume(self, run: str, *, loss: bool = True) -> EvalRecord:
        """Continue an interrupted evaluation with the rows it has not answered yet."""
        self._started = time.perf_counter()
        record = self.store.get(run, rows=False)
        meta = record.meta
        if record.state == FINISHED:
            raise PhiopsError(f"evaluation {meta.run_id[:12]} is already finished")
        if meta.engine != "inprocess":
            raise PhiopsError(
                "only an in-process evaluation can be resumed; rerun it, or resume the "
                "Prompt flow run with `pf run create --resume-from`"
            )
        eval_set = load_eval_set(self.config.resolve(meta.data_path), meta.limit)
        if eval_set.sha256 != meta.data_sha256:
            raise PhiopsError(
                f"{meta.data_path} changed since evaluation {meta.run_id[:12]} started; "
                "start a new evaluation"
            )
        done = read_rows(self.store.folder(meta) / ANSWERS_FILE)
        answered = {row["line"] for row in done}
        remaining = [case for case in eval_set.cases if case.line not in answered]
        spec = TargetSpec(**meta.target)
        options = EvalOptions(
            data=meta.data_path,
            limit=meta.limit,
            params=Params(meta.temperature, meta.max_new_tokens, meta.top_p),
            concurrency=meta.concurrency,
            loss=loss,
        )
        with (
            self._recorder() as recorder,
            resolved(
                self.config, self.backend, spec, concurrency=meta.concurrency, progress=self.say
            ) as target,
        ):
            if target.identity != meta.identity and spec.kind == "endpoint":
                raise PhiopsError(
                    f"{target.label} is no longer what evaluation {meta.run_id[:12]} started "
                    "on (another model or URI); start a new evaluation"
                )
            meta.owner = _owner()
            recorder.open(meta)
            self.say(f"resuming: {len(done)} rows answered, {len(remaining)} to go")
            return self._evaluate(target, meta, remaining, done, options, recorder)

    def reuse_or_run(
        self,
        spec: TargetSpec,
        options: EvalOptions | None = None,
        *,
        max_age_s: float = DEFAULT_FRESH_S,
    ) -> tuple[EvalRecord, bool]:
        """A fresh enough finished evaluation of the same model behind the same target, on
        the same data with the same settings, or a new one; (record, reused)."""
        self._started = time.perf_counter()
        options = options or EvalOptions()
        data = self.config.resolve(options.data or self.config.test_data_path)
        eval_set = load_eval_set(data, options.limit)
        found = describe(self.config, self.backend, spec, options.concurrency)
        settings = self._settings(options)
        earlier = self.store.fresh(found.identity, eval_set.sha256, settings, max_age_s)
        if earlier is not None:
            return earlier, True
        if eval_set.skipped:
            self.say(eval_set.skipped_sentence())
        with self._recorder() as recorder, started(found, self.say) as target:
            return self._start(target, eval_set, options, recorder), False

    # -- the work ------------------------------------------------------------------------

    @staticmethod
    def _settings(options: EvalOptions) -> dict[str, Any]:
        return {
            "limit": options.limit,
            "temperature": options.params.temperature,
            "max_new_tokens": options.params.max_new_tokens,
            "top_p": options.params.top_p,
        }

    def _meta(self, target: Resolved, eval_set: EvalSet, options: EvalOptions) -> EvalMeta:
        return EvalMeta(
            target=target.spec.to_dict(),
            label=target.label,
            model=target.model,
            backend=target.backend,
            identity=target.identity,
            data_path=str(eval_set.path),
            data_sha256=eval_set.sha256,
            rows_total=len(eval_set.cases),
            rows_read=eval_set.rows_read,
            skipped=dict(eval_set.skipped),
            limit=options.limit,
            temperature=options.params.temperature,
            max_new_tokens=options.params.max_new_tokens,
            top_p=options.params.top_p,
            concurrency=target.target.concurrency,
            engine=options.engine,
            owner=_owner(),
        )

    def _evaluate(
        self,
        target: Resolved,
        meta: EvalMeta,
        cases: list[Case],
        done: list[dict[str, Any]],
        options: EvalOptions,
        recorder: Recorder,
    ) -> EvalRecord:
        rows = list(done)
        total = meta.rows_total
        self.say(
            f"asking {target.label} {len(cases)} question{'s' if len(cases) != 1 else ''}, "
            f"{target.target.concurrency} at a time"
        )
        self.advance(len(rows), total)
        clock = Clock(self._started)
        try:
            clock.lap("before_generation_s")
            generation_s = self._answer(target, meta, cases, rows, options, recorder)
            clock.lap("generation_s")
            self._complete(target, meta, rows, options)
            clock.lap("completing_rows_s")
            folder = self.store.folder(meta)
            recorder.finish(meta, folder, rows, generation_s=generation_s, timings=clock.laps)
        except (KeyboardInterrupt, asyncio.CancelledError, Stopped):
            if self._settle(meta, recorder, INTERRUPTED) == FINISHED:
                return self.store.get(meta.run_id)  # Ctrl-C came as it was being recorded
            raise EvalInterrupted(meta.run_id, len(rows), total) from None
        except TargetFailed as failure:
            self._settle(meta, recorder, FAILED)
            raise PhiopsError(
                f"{failure}; {len(rows)} of {total} rows were answered and kept "
                f"(`phiops eval --resume {meta.run_id[:12]}` continues once the target is back)"
            ) from None
        except BaseException:
            self._settle(meta, recorder, FAILED)
            raise
        return self.store.get(meta.run_id)

    def _answer(
        self,
        target: Resolved,
        meta: EvalMeta,
        cases: list[Case],
        rows: list[dict[str, Any]],
        options: EvalOptions,
        recorder: Recorder,
    ) -> float | None:
        """Ask the target; every answer goes into `rows` (and the answers file) at once."""
        if not cases:
            return None
        if options.engine != "promptflow":
            return self._generate(target, meta, cases, rows, options.params, recorder)
        from core.eval.pfbatch import generate_with_promptflow
        from core.eval.results import RowWriter

        answers, seconds = generate_with_promptflow(
            cases, target.target, options.params, self.store.folder(meta), say=self.say
        )
        writer = RowWriter(self.store.folder(meta) / ANSWERS_FILE)
        try:
            for generated in answers:
                rows.append(row_of(generated))
                writer.write(rows[-1])
                self.advance(len(rows), meta.rows_total)
        finally:
            writer.close()
        return seconds

    def _complete(
        self, target: Resolved, meta: EvalMeta, rows: list[dict[str, Any]], options: EvalOptions
    ) -> None:
        """What the recorder cannot do: token counts where the server gave none and the
        references' loss (with the model's files), and with the promptflow engine the
        evaluation flow's scores. The recorder scores the rest."""
        rows.sort(key=lambda row: row["line"])
        self._fill_tokens(target, rows)
        if options.loss:
            self._reference_loss(target, rows)
        if options.engine == "promptflow":
            from core.eval.pfbatch import score_with_promptflow

            self.say("scoring with the evaluation flow (Prompt flow batch run)")
            score_with_promptflow(rows, meta, self.store.folder(meta))

    def _generate(
        self,
        target: Resolved,
        meta: EvalMeta,
        cases: list[Case],
        rows: list[dict[str, Any]],
        params: Params,
        recorder: Recorder,
    ) -> float:
        from core.eval.results import RowWriter

        writer = RowWriter(self.store.folder(meta) / ANSWERS_FILE)

        def on_row(generated: Generated) -> None:
            rows.append(row_of(generated))
            writer.write(rows[-1])
            self.advance(len(rows), meta.rows_total)
            recorder.poll()  # a run MLflow refused stops the evaluation now, not at the end

        try:
            return run_generation(
                cases, target.target, params, on_row, transport=self.transport, stop=self.stop
            )
        finally:
            writer.close()

    def _settle(self, meta: EvalMeta, recorder: Recorder, state: str) -> str:
        """Mark the evaluation `state` (unless it finished meanwhile); the state it has."""
        self.say(f"marking the evaluation {state}; its answers are kept")
        try:
            return recorder.mark(meta, state)
        except PhiopsError as error:  # the answers are on disk either way
            self.say(str(error))
            return state

    def _model_dir(self, target: Resolved) -> Path | None:
        if target.model_dir is not None:
            return target.model_dir
        if not target.model or target.model.startswith("base:"):
            return None
        try:
            return model_dir(self.backend, find_model(self.backend, target.model))
        except PhiopsError:
            return None

    def _fill_tokens(self, target: Resolved, rows: list[dict[str, Any]]) -> None:
        missing = [row for row in rows if row.get("tokens") is None and not row.get("error")]
        if not missing:
            return
        count = token_counter(self._model_dir(target))
        if count is None:
            return
        for row in missing:
            row["tokens"] = count(row["answer"])
            row["tokens_counted"] = True  # by re-encoding the text, not by the server

    def _reference_loss(self, target: Resolved, rows: list[dict[str, Any]]) -> None:
        folder = self._model_dir(target)
        if folder is None:
            return
        from core.eval.reference_loss import reference_losses

        cases = [case_from_row(row) for row in rows if not row.get("error")]
        self.say(f"computing the references' loss under the model ({len(cases)} rows)")
        losses = reference_losses(folder, cases)
        for row in rows:
            found = losses.get(row["line"])
            if found is not None:
                row["ref_loss_sum"], row["ref_tokens"] = found


class Clock:
    """Where an evaluation's time went (seconds per phase, kept in its summary)."""

    def __init__(self, since: float) -> None:
        self.last = since
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = round(now - self.last, 3)
        self.last = now


def case_from_row(row: dict[str, Any]) -> Case:
    return Case(
        line=row["line"],
        id=row["id"],
        system=row.get("system") or "",
        history=tuple(tuple(pair) for pair in row.get("history") or []),  # type: ignore[misc]
        question=row["question"],
        reference=row["reference"],
    )


def _owner() -> list[float]:
    import psutil

    return [float(os.getpid()), psutil.Process().create_time()]


def record_summary(record: EvalRecord) -> dict[str, Any]:
    """A short dict for listings and JSON."""
    data = record.to_dict(rows=False)
    data["meta"] = asdict(record.meta)
    return data
