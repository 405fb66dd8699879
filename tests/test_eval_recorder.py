"""The evaluation's recorder process: the MLflow run and the scores, kept by a child.

No model is needed: rows are written here as the target would have answered them, and the
recorder scores and records them in a real MLflow SQLite store.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from core.errors import PhiopsError
from core.eval.recorder import COMPLETED_FILE, Recorder
from core.eval.results import (
    ANSWERS_FILE,
    FAILED,
    FINISHED,
    INTERRUPTED,
    EvalMeta,
    EvalStore,
    write_rows,
)

REPO = Path(__file__).resolve().parents[1]

PAIRS = [  # (answer, reference): stemming, punctuation, numbers, repeats, no overlap
    ("The puffins are nesting on the cliffs.", "Puffins nest on cliffs"),
    ("Brindlemoor's capital is Hollowmere, founded 1642.", "Hollowmere (founded in 1642)"),
    ("running runners ran; the generously generous generation", "run runner generous generate"),
    ("a a a b b", "b a b a"),
    ("completely different words", "nothing shared here"),
]


def meta(**changes) -> EvalMeta:
    values = dict(
        target={"kind": "endpoint", "endpoint": "e"},
        label="e:blue (m:1)",
        model="m:1",
        backend="azure",  # no local registry to look the logged model up in
        identity="e|blue|m:1",
        data_path="test.jsonl",
        data_sha256="0" * 64,
        rows_total=2,
        rows_read=2,
        skipped={},
        limit=None,
        temperature=0.0,
        max_new_tokens=8,
        top_p=1.0,
        concurrency=2,
    )
    return EvalMeta(**{**values, **changes})


def saved(tmp_path: Path) -> tuple[EvalStore, EvalMeta]:
    """A store and an evaluation whose folder holds its meta, as the runner leaves them."""
    store = EvalStore(tmp_path / "store")
    evaluation = meta()
    store.save_meta(evaluation)
    return store, evaluation


def rows() -> list[dict]:
    base = {"system": "", "history": [], "deployment": "blue", "error": None}
    return [
        {**base, "line": 1, "id": "a", "question": "q1", "reference": PAIRS[0][1],
         "answer": PAIRS[0][0], "latency_s": 0.2, "tokens": 7, "finished": True},
        {**base, "line": 2, "id": "b", "question": "q2", "reference": PAIRS[1][1],
         "answer": PAIRS[1][0], "latency_s": 0.4, "tokens": 8, "finished": False},
    ]  # fmt: skip


def finish(
    recorder: Recorder,
    store: EvalStore,
    evaluation: EvalMeta,
    answered: list[dict],
    generation_s: float | None = 1.0,
) -> None:
    timings = {"generation_s": generation_s} if generation_s else {}
    recorder.finish(
        evaluation, store.folder(evaluation), answered, generation_s=generation_s, timings=timings
    )


def test_the_recorder_creates_scores_and_ends_the_run(tmp_path: Path):
    store, evaluation = saved(tmp_path)
    with Recorder(store.store_path) as recorder:
        recorder.open(evaluation)
        assert evaluation.run_id == ""  # not waited for: the target answers meanwhile
        finish(recorder, store, evaluation, rows(), generation_s=1.5)
        assert evaluation.run_id
        process = recorder._process
    assert process.poll() is not None  # it ends with the context

    record = store.get(evaluation.run_id)
    assert record.state == FINISHED and record.generation_s == 1.5
    assert [row["line"] for row in record.rows] == [1, 2]
    assert record.rows[0]["stopped"] == 1.0 and record.rows[1]["stopped"] == 0.0
    assert record.aggregates["rougeL"]["n"] == 2
    assert {"waiting_for_recorder_s", "scoring_s", "recording_s"} <= set(record.timings)

    from core.local.tracking import mlflow_client

    client = mlflow_client(store.store_path)
    run = client.get_run(evaluation.run_id)
    assert run.info.status == "FINISHED" and run.data.params["max_new_tokens"] == "8"
    assert run.data.metrics["rougeL"] == pytest.approx(record.aggregates["rougeL"]["value"])
    artifacts = {item.path for item in client.list_artifacts(evaluation.run_id)}
    assert artifacts == {"rows.jsonl", "summary.json", "meta.json"}


def test_files_in_the_working_directory_are_not_imported(tmp_path, monkeypatch):
    """A project may hold a json.py or mlflow.py: the recorder imports none of them."""
    project = tmp_path / "project"
    project.mkdir()
    for name in ("json", "mlflow", "core"):
        (project / f"{name}.py").write_text("raise SystemExit('imported from the project')\n")
    monkeypatch.chdir(project)
    store, evaluation = saved(tmp_path)
    with Recorder(store.store_path) as recorder:
        recorder.open(evaluation)
        finish(recorder, store, evaluation, rows())
    assert store.get(evaluation.run_id).state == FINISHED


def test_rows_scored_by_the_evaluation_flow_keep_their_scores(tmp_path: Path):
    store, evaluation = saved(tmp_path)
    answered = rows()
    answered[0].update(rougeL=0.123, scored_by="pf-run")
    with Recorder(store.store_path) as recorder:
        recorder.open(evaluation)
        finish(recorder, store, evaluation, answered, generation_s=None)
    scored = store.get(evaluation.run_id).rows
    assert scored[0]["rougeL"] == 0.123 and 0 < scored[1]["rougeL"] < 1


def test_an_interrupted_evaluation_is_marked_and_resumed_by_the_same_run(tmp_path: Path):
    store, evaluation = saved(tmp_path)
    with Recorder(store.store_path) as recorder:
        recorder.open(evaluation)
        recorder.mark(evaluation, INTERRUPTED)
    assert store.get(evaluation.run_id).state == INTERRUPTED
    run_id = evaluation.run_id
    resumed = store.get(run_id).meta
    resumed.owner = [1.0, 2.0]
    with Recorder(store.store_path) as recorder:
        recorder.open(resumed)  # it has a run: running again, not a new one
        finish(recorder, store, resumed, rows())
    assert resumed.run_id == run_id and store.get(run_id).state == FINISHED
    assert store.get(run_id).meta.owner == [1.0, 2.0]  # the resuming process owns it

    from core.local.tracking import mlflow_client

    assert mlflow_client(store.store_path).get_run(run_id).info.status == "FINISHED"


def test_a_run_mlflow_refuses_is_one_sentence_and_the_answers_stay(tmp_path: Path):
    from core.local.tracking import mlflow_client

    store, evaluation = saved(tmp_path)
    store.prepare()  # the evaluations' experiment, deleted (in MLflow's UI, say)
    mlflow_client(store.store_path).delete_experiment(store._experiment_id())
    (store.folder(evaluation) / ANSWERS_FILE).write_text(json.dumps(rows()[0]) + "\n")
    with Recorder(store.store_path) as recorder:
        recorder.open(evaluation)
        with pytest.raises(PhiopsError) as caught:
            finish(recorder, store, evaluation, rows())
        recorder.mark(evaluation, FAILED)
    message = str(caught.value)
    assert message.startswith("the evaluation could not be recorded in MLflow: ")
    assert "active" in message and "\n" not in message and "Traceback" not in message
    summary = json.loads((store.folder(evaluation) / "summary.json").read_text())
    assert summary["state"] == FAILED
    assert (store.folder(evaluation) / ANSWERS_FILE).read_text().count("\n") == 1


def test_a_recorder_that_died_is_one_sentence_and_the_answers_stay(tmp_path: Path):
    store, evaluation = saved(tmp_path)
    (store.folder(evaluation) / ANSWERS_FILE).write_text(json.dumps(rows()[0]) + "\n")
    with Recorder(store.store_path) as recorder:
        recorder.open(evaluation)
        recorder._process.kill()
        with pytest.raises(PhiopsError) as caught:
            finish(recorder, store, evaluation, rows())
    assert str(caught.value) == "the evaluation's recorder process stopped (signal 9)"
    assert (store.folder(evaluation) / ANSWERS_FILE).read_text().count("\n") == 1


def test_ctrl_c_while_the_run_is_recorded_leaves_it_finished(tmp_path: Path):
    """The wait for `finish` interrupted (the request sent, its reply not read): the
    interruption's `mark` is answered after the finish, which stands."""
    store, evaluation = saved(tmp_path)
    write_rows(store.folder(evaluation) / COMPLETED_FILE, rows())
    with Recorder(store.store_path) as recorder:
        recorder.open(evaluation)
        recorder._send("finish", evaluation, generation_s=1.0, timings={}, sent_at=0.0)
        assert recorder.mark(evaluation, INTERRUPTED) == FINISHED
    record = store.get(evaluation.run_id)
    assert record.state == FINISHED and record.aggregates["rougeL"]["n"] == 2
    assert not (store.folder(evaluation) / COMPLETED_FILE).exists()


def test_a_refused_run_is_seen_while_the_target_answers(tmp_path: Path):
    """`poll`, called as each answer arrives, raises the refusal once it has come."""
    import time

    from core.local.tracking import mlflow_client

    store, evaluation = saved(tmp_path)
    store.prepare()
    mlflow_client(store.store_path).delete_experiment(store._experiment_id())
    with Recorder(store.store_path) as recorder:
        recorder.open(evaluation)
        deadline = time.monotonic() + 300  # catches a hang only
        with pytest.raises(PhiopsError, match=r"could not be recorded in MLflow: .*active"):
            while time.monotonic() < deadline:
                recorder.poll()
                time.sleep(0.05)
        assert recorder.mark(evaluation, FAILED) == FAILED  # the refusal is raised once
    summary = json.loads((store.folder(evaluation) / "summary.json").read_text())
    assert summary["state"] == FAILED


def test_rouge_loads_without_scipy_and_scores_as_rouge_score_does():
    """The recorder hides SciPy and scikit-learn while nltk loads (they cost ~1.7 s of CPU
    and ROUGE uses neither); the scores are rouge-score's own, loaded the usual way."""
    common = "import json, sys; sys.path.insert(0, 'flow/eval'); import eval_metrics as m\n"
    score = f"print(json.dumps([m.rouge_l(a, r) for a, r in {PAIRS!r}]))\n"
    hidden = (
        "from core.eval.recorder import load_rouge; load_rouge()\n"
        "loaded = sorted(n for n in ('scipy', 'sklearn') if n in sys.modules)\n"
        "import scipy.stats, sklearn  # afterwards, both import as usual\n"
        "print(json.dumps(loaded))\n"
    )
    fallback = (  # an nltk that needed what is hidden: loaded again, the usual way
        "import core.eval.recorder as r; r.NOT_FOR_ROUGE = ('numpy',); r.load_rouge()\n"
        "print(json.dumps([]))\n"
    )
    results = []
    for code in (common + score, common + hidden + score, common + fallback + score):
        result = subprocess.run(
            [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 0, result.stderr
        results.append([json.loads(line) for line in result.stdout.splitlines()])
    usual, (loaded, with_hidden), (_, with_fallback) = results[0][0], results[1], results[2]
    assert loaded == []
    assert with_hidden == usual and with_fallback == usual
    assert usual[0] == pytest.approx(8 / 11)  # puffin nest on cliff: precision 4/7, recall 1
