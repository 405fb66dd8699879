"""`phiops eval` on the local backend: a real endpoint serving a model trained by a real job,
the base model on a temporary server, results in the project's MLflow store.

The fine-tuned tiny model answers the test split's capital questions in its trained form;
the scaffolded base model (random weights) babbles to max_new_tokens. So the comparison has
a known winner, and stops and cuts are both seen.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.config import load_config
from core.eval.generate import Params, Target, run_generation
from core.eval.results import EvalStore
from core.eval.runner import EvalOptions, Evaluation
from core.eval.targets import TargetSpec
from tests.helpers import BIN, run_phiops, top_level_imports

pytestmark = pytest.mark.slow

ENDPOINT = "eval-endpoint"
SHORT = ["--max-new-tokens", "24"]


def phiops_json(*args: str, cwd: Path, ok: bool = True, timeout: float = 600) -> dict | list:
    result = run_phiops(*args, "--json", cwd=cwd, timeout=timeout)
    if ok:
        assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout) if result.stdout.strip() else {"stderr": result.stderr}


@pytest.fixture(scope="module")
def served(local_job_project):
    """The session's trained job registered and deployed to an endpoint of this module."""
    folder, backend, job = local_job_project
    version = backend.register_model(job.name, "phi3-eval")
    backend.deploy(version, ENDPOINT, traffic=100)
    try:
        yield folder, backend, version
    finally:
        backend.delete_endpoint(ENDPOINT)


def test_eval_an_endpoint_keeps_an_mlflow_run_linked_to_the_model(served):
    folder, _, version = served
    result = phiops_json("eval", "--target", ENDPOINT, *SHORT, cwd=folder)
    assert result["state"] == "finished"
    meta = result["meta"]
    assert meta["label"] == f"{ENDPOINT}:blue ({version.ref})" and meta["model"] == version.ref
    assert meta["rows_total"] == 24 and meta["concurrency"] == 3  # the seed's request settings
    rouge = result["aggregates"]["rougeL"]
    assert 0.5 < rouge["value"] <= 1.0 and rouge["low"] <= rouge["value"] <= rouge["high"]
    assert result["aggregates"]["stopped_rate"]["value"] == 1.0  # counted by the server
    assert result["aggregates"]["ref_perplexity"]["value"] < 10  # its files are local

    run_id = result["run_id"]
    listed = phiops_json("eval", "list", cwd=folder)
    assert run_id in [item["run_id"] for item in listed]
    shown = phiops_json("eval", "show", run_id[:10], cwd=folder)
    assert len(shown["rows"]) == 24
    row = shown["rows"][0]
    assert row["line"] == 1 and row["deployment"] == "blue"
    assert row["tokens"] > 0 and row["finished"] is True and "rougeL" in row

    from mlflow.tracking import MlflowClient

    from core.local.tracking import tracking_uri

    config = load_config(folder / "phiops.toml")
    client = MlflowClient(tracking_uri(config.store_path))
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["phiops.model"] == version.ref
    assert run.data.params["data_sha256"] == meta["data_sha256"]
    assert run.data.params["max_new_tokens"] == "24" and run.data.params["temperature"] == "0.0"
    assert run.data.metrics["rougeL"] == pytest.approx(rouge["value"])
    assert run.data.metrics["rougeL_low"] == pytest.approx(rouge["low"])
    artifacts = {item.path for item in client.list_artifacts(run_id)}
    assert {"rows.jsonl", "summary.json", "meta.json"} <= artifacts
    # Linked to the registered version's logged model (MLflow 3): input and metrics.
    source = client.get_model_version(version.name, version.version).source
    model_id = source.rstrip("/").split("/")[-2]  # …/models/<model id>/artifacts
    assert model_id.startswith("m-") and [m.model_id for m in run.inputs.model_inputs] == [model_id]
    linked = {(m.key, m.run_id) for m in client.get_logged_model(model_id).metrics}
    assert ("rougeL", run_id) in linked and ("rougeL_high", run_id) in linked


def test_the_process_asking_the_target_never_loads_mlflow_or_rouge(served):
    """MLflow with its SQL store and ROUGE's nltk take ~3.5 s of CPU to load; they load in
    the evaluation's recorder process, not in the one whose requests the target answers
    (loaded there, they held its GIL and a local server's CPU: issue 18's throughput)."""
    folder, _, _ = served
    heavy = ["mlflow", "sqlalchemy", "alembic", "nltk", "rouge_score", "scipy", "sklearn"]
    code = (
        "import atexit, json, sys\n"
        "atexit.register(lambda: print('LOADED', json.dumps(sorted({m.split('.')[0] "
        "for m in sys.modules})), file=sys.stderr))\n"
        "from tui.launcher import main\n"
        f"sys.exit(main(['eval', '--target', {ENDPOINT!r}, '--limit', '6', '--json', "
        "'--max-new-tokens', '8', '--no-loss']))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=folder, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout)["aggregates"]["rougeL"]["value"] > 0.3
    loaded = json.loads(result.stderr.split("LOADED", 1)[1])
    assert [name for name in heavy if name in loaded] == []


def test_base_against_fine_tuned_and_compare(served):
    folder, _, _ = served
    base = phiops_json("eval", "--base", "--limit", "12", *SHORT, cwd=folder)
    assert base["meta"]["model"].startswith("base:") and base["meta"]["concurrency"] == 8
    assert base["aggregates"]["stopped_rate"]["value"] < 0.5  # random weights babble on
    tuned = phiops_json(
        "eval", "--target", ENDPOINT, "--limit", "12", "--compare", "base", *SHORT, cwd=folder
    )
    change = {m["name"]: m for m in tuned["comparison"]["metrics"]}
    assert tuned["comparison"]["a"]["run_id"] == base["run_id"]  # fresh base result reused
    assert change["rougeL"]["verdict"] == "better" and change["rougeL"]["change"]["low"] > 0.3
    assert change["ref_loss"]["verdict"] == "better"
    assert tuned["comparison"]["rows"], "the rows that changed most are listed"

    both = phiops_json("eval", "compare", base["run_id"], tuned["run_id"], cwd=folder)
    assert both["paired_rows"] == 12
    first = both["rows"][0]
    assert first["score_b"] - first["score_a"] == pytest.approx(first["delta"])
    text = run_phiops("eval", "compare", base["run_id"][:8], tuned["run_id"][:8], cwd=folder)
    assert text.returncode == 0 and "ROUGE-L" in text.stdout and "better" in text.stdout
    # The temporary base server is gone with the command.
    assert not [line for line in _processes() if "--deployment eval" in line]


def _processes() -> list[str]:
    import psutil

    found = []
    for process in psutil.process_iter(["cmdline"]):
        line = " ".join(process.info["cmdline"] or [])
        if "core.serving.server" in line:
            found.append(line)
    return found


def test_skipped_rows_are_counted_and_a_stopped_endpoint_is_one_sentence(served, tmp_path):
    folder, backend, _ = served
    lines = (folder / "data" / "test_data.jsonl").read_text().splitlines()[:3]
    lines.insert(1, json.dumps({"messages": [{"role": "user", "content": "Hello?"}]}))
    data = tmp_path / "test.jsonl"
    data.write_text("\n".join(lines) + "\n")
    args = ("eval", "--target", ENDPOINT, "--data", str(data), *SHORT)
    result = phiops_json(*args, cwd=folder)
    assert result["meta"]["rows_total"] == 3
    assert result["meta"]["skipped"] == {"no assistant turn": 1}
    human = run_phiops(*args, cwd=folder)
    assert "skipped 1 row: 1 with no assistant turn (line 2)" in human.stderr

    backend.endpoint_control().stop(ENDPOINT)
    try:
        refused = run_phiops("eval", "--target", ENDPOINT, cwd=folder)
        assert refused.returncode == 1
        message = refused.stderr.strip()
        assert message.count("\n") == 0 and "Traceback" not in message
        assert f"endpoint {ENDPOINT} is Stopped" in message and "phiops endpoints start" in message
    finally:
        backend.endpoint_control().start(ENDPOINT)


# Run a command with Ctrl-C's default action, as at a terminal's prompt. Under nohup or as
# a background job (a CI runner may be either) SIGINT is inherited ignored, and Python
# keeps ignoring it: the command would never be interrupted.
TERMINAL_SIGINT = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)


def test_ctrl_c_keeps_the_answers_and_resume_asks_only_the_rest(served):
    """The base model (random weights) talks to max_new_tokens: slow enough to interrupt.
    The signal goes to the process group, as a terminal sends it: the recorder process
    ignores it and marks the run when asked."""
    folder, _, _ = served
    config = load_config(folder / "phiops.toml")
    store = EvalStore(config)
    before = set(store.root.iterdir()) if store.root.is_dir() else set()
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            TERMINAL_SIGINT,
            str(BIN / "phiops"),
            "eval",
            "--base",
            "--concurrency",
            "1",
            "--max-new-tokens",
            "1000",  # long answers: 24 of them cannot all be done before the Ctrl-C
            "--no-loss",
            "--json",
        ],
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as at a terminal's prompt
    )
    try:
        answers = _wait_for_answers(store, before, process, at_least=3)
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C does: the whole group gets it
        _, err = process.communicate(timeout=180)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, err
    assert "interrupted after" in err and "phiops eval --resume" in err
    kept = [json.loads(line) for line in answers.read_text().splitlines()]
    meta = json.loads((answers.parent / "meta.json").read_text())
    record = store.get(meta["run_id"])
    assert record.state == "interrupted"
    assert 3 <= len(kept) < 24, err

    resumed = phiops_json("eval", "--resume", record.run_id[:12], "--no-loss", cwd=folder)
    assert resumed["run_id"] == record.run_id and resumed["state"] == "finished"
    rows = phiops_json("eval", "show", record.run_id, cwd=folder)["rows"]
    assert sorted(row["line"] for row in rows) == list(range(1, 25))  # each once
    again = {row["line"]: row for row in rows}
    for row in kept:  # the answers from before the interruption were not asked again
        assert again[row["line"]]["latency_s"] == row["latency_s"]
    finished = run_phiops("eval", "--resume", record.run_id, cwd=folder)
    assert finished.returncode == 1 and "already finished" in finished.stderr


def test_a_run_mlflow_refuses_stops_the_evaluation_early(served):
    """The run is created while the target answers; refused (the evaluations' experiment
    deleted in MLflow's UI, say), the evaluation stops at the next answer, not after all
    of them, with one sentence and the answers kept."""
    from core.local.tracking import mlflow_client

    folder, _, _ = served
    store = EvalStore(load_config(folder / "phiops.toml"))
    store.prepare()
    client = mlflow_client(store.store_path)
    experiment = store._experiment_id()
    before = set(store.root.iterdir())
    client.delete_experiment(experiment)
    try:  # the base model talks to max_new_tokens: 24 long answers take a while
        result = run_phiops("eval", "--base", "--max-new-tokens", "1000", "--no-loss", cwd=folder)
    finally:
        client.restore_experiment(experiment)
    assert result.returncode == 1, result.stderr
    assert "could not be recorded in MLflow" in result.stderr and "active" in result.stderr
    assert "Traceback" not in result.stderr
    (new,) = set(store.root.iterdir()) - before
    answered = (new / "answers.jsonl").read_text().splitlines()
    assert 1 <= len(answered) < 24


def _wait_for_answers(
    store: EvalStore, before: set[Path], process: subprocess.Popen, at_least: int
) -> Path:
    """The new evaluation's answers file once it holds `at_least` lines."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[1]
        for folder in set(store.root.iterdir() if store.root.is_dir() else ()) - before:
            path = folder / "answers.jsonl"
            if path.is_file() and len(path.read_text().splitlines()) >= at_least:
                return path
        time.sleep(0.1)
    raise AssertionError("the evaluation wrote no answers")


@pytest.fixture(scope="module")
def busy_server(tiny_base_model):
    """One request at a time, 200 ms in the queue at most: the base model talks to
    max_new_tokens, so a second request in flight gets 429 with Retry-After."""
    from core.backend import RequestSettings
    from tests.fixtures_deploy import served as serve

    settings = RequestSettings(max_concurrent_requests_per_instance=1, max_queue_wait_ms=200)
    yield from serve(tiny_base_model, settings, deployment="busy")


def test_busy_deployment_answers_429_and_every_row_is_answered(busy_server, chat_dataset):
    """Concurrency above what the server takes: 429s with Retry-After are waited out."""
    from core.eval.data import load_eval_set
    from tests.fixtures_deploy import KEY

    cases = load_eval_set(chat_dataset["eval"], limit=4).cases
    target = Target(busy_server.scoring_uri, KEY, concurrency=3)
    got = []
    run_generation(cases, target, Params(max_new_tokens=64), got.append)
    assert sorted(g.case.line for g in got) == [c.line for c in cases]
    assert all(g.answer and not g.error for g in got)
    import httpx

    auth = {"Authorization": f"Bearer {KEY}"}  # /stats takes the key like /score
    stats = httpx.get(busy_server.url + "/stats", headers=auth, timeout=10).json()
    assert stats["rejected_busy"] > 0  # the server did say 429, and it was honoured


def test_promptflow_batch_runs_give_the_same_scores(served, tmp_path):
    """The chat flow's batch run + the evaluation flow's, against phiops' own requests."""
    folder, backend, _ = served
    config = load_config(folder / "phiops.toml")
    evaluation = Evaluation(config, backend)
    spec = TargetSpec.endpoint_of(ENDPOINT)
    options = dict(limit=6, params=Params(max_new_tokens=24))
    ours = evaluation.run(spec, EvalOptions(**options))
    theirs = evaluation.run(spec, EvalOptions(engine="promptflow", **options))
    assert [r["answer"] for r in theirs.rows] == [r["answer"] for r in ours.rows]
    assert all(r.get("scored_by") for r in theirs.rows)  # scores from the evaluation flow
    for name in (
        "rougeL",
        "exact_match",
        "contains_match",
        "empty_rate",
        "length_ratio",
        "ref_loss",
        "ref_perplexity",
    ):
        assert theirs.aggregates[name] == pytest.approx(ours.aggregates[name]), name
    # The aggregation node logged the same figures as the run's metrics.
    logged = json.loads((evaluation.store.folder(theirs.meta) / "pf_metrics.json").read_text())
    assert logged["rougeL"] == pytest.approx(theirs.aggregates["rougeL"]["value"])
    assert logged["rougeL_low"] == pytest.approx(theirs.aggregates["rougeL"]["low"])
    # No Prompt flow service or worker is left behind.
    home = os.environ["PF_HOME_DIRECTORY"]
    import psutil

    left = []
    for process in psutil.process_iter(["cmdline", "environ"]):
        try:
            line = " ".join(process.info["cmdline"] or [])
            if "promptflow" in line or "pfs" in line.split():
                env = process.environ()
                if env.get("PF_HOME_DIRECTORY") == home:
                    left.append(line)
        except psutil.Error:
            continue
    assert left == []


def test_the_evaluation_flow_never_imports_phiops():
    folder = Path(__file__).resolve().parents[1] / "flow" / "eval"
    imported = {name for _, name in top_level_imports(folder)}
    assert not imported & {"core", "tui", "trainer"}


def test_a_stop_from_another_thread_interrupts_like_ctrl_c(served):
    """What the TUI does: an event set while answers arrive stops the requests in flight."""
    import threading

    from core.eval.runner import EvalInterrupted

    folder, backend, _ = served
    stop = threading.Event()
    progress = []

    def advance(done: int, total: int) -> None:
        progress.append((done, total))
        if done >= 2:
            stop.set()

    evaluation = Evaluation(
        load_config(folder / "phiops.toml"), backend, advance=advance, stop=stop
    )
    with pytest.raises(EvalInterrupted) as caught:
        evaluation.run(TargetSpec.base_of(), EvalOptions(params=Params(max_new_tokens=300)))
    record = evaluation.store.get(caught.value.run_id)
    assert record.state == "interrupted" and 2 <= len(record.rows) < 24
    assert progress[0] == (0, 24) and caught.value.done == len(record.rows)
