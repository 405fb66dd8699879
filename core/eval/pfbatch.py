"""The evaluation the Prompt flow way: a batch run of the chat flow over the test data, then
a batch run of the evaluation flow (`flow/eval/`) over its outputs.

What phiops runs is what a user can run with `pf` alone (the data files stay in the
evaluation's folder; `phiops eval show` prints the commands):

    PHIOPS_ENDPOINT_URL=… PHIOPS_ENDPOINT_KEY=… [PHIOPS_ENDPOINT_DEPLOYMENT=…] \\
    pf run create --flow flow --data flow_data.jsonl --stream \\
        --column-mapping question='${data.question}' chat_history='${data.chat_history}' \\
            system='${data.system}' temperature='${data.temperature}' \\
            max_new_tokens='${data.max_new_tokens}' top_p='${data.top_p}'
    pf run create --flow flow/eval --data eval_data.jsonl --run <chat run> \\
        --column-mapping answer='${run.outputs.answer}' reference='${data.reference}' ...

The endpoint and key reach the tool through the environment the batch run's workers
inherit (`PHIOPS_ENDPOINT_*`, set in this process for the run and removed afterwards),
never through the run's recorded `environment_variables` or a file: a Prompt flow
connection would keep the key encrypted with the system keyring, which a server or CI
machine often lacks. Prompt flow's home is phiops' (telemetry and tracing off, so no
trace service is started). Each line's latency is the line run's own time;
tokens and stops are counted with the model's tokenizer when its files are here (a served
flow returns text only), so the stop rate is an estimate on this path.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from core.errors import PhiopsError
from core.eval.data import Case
from core.eval.generate import Generated, Params, Target
from core.eval.results import EvalMeta
from core.eval.scoring import EVAL_FLOW_DIR

FLOW_DATA = "flow_data.jsonl"
EVAL_DATA = "eval_data.jsonl"
CHAT_MAPPING = {
    name: "${data." + name + "}"
    for name in ("question", "chat_history", "system", "temperature", "max_new_tokens", "top_p")
}
EVAL_MAPPING = {
    "answer": "${run.outputs.answer}",
    **{
        name: "${data." + name + "}"
        for name in (
            "reference",
            "max_new_tokens",
            "answer_tokens",
            "finished",
            "latency_s",
            "ref_loss_sum",
            "ref_tokens",
        )
    },
}


def _client() -> Any:
    """A PFClient on phiops' Prompt flow home (set before Prompt flow is imported)."""
    from core.chat.flowserve import pf_home
    from core.chat.inprocess import _quiet_promptflow

    os.environ.setdefault("PF_HOME_DIRECTORY", str(pf_home()))
    os.environ.setdefault("PF_LOGGING_LEVEL", "ERROR")  # a line per worker otherwise
    _quiet_promptflow()
    from promptflow.client import PFClient

    return PFClient()


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """`values` in this process's environment (the batch workers inherit it) for a while."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def endpoint_environment(target: Target) -> dict[str, str]:
    """What the chat tool reads (flow/chat_tool.py: URL_ENV, KEY_ENV, DEPLOYMENT_ENV)."""
    return {
        "PHIOPS_ENDPOINT_URL": target.url,
        "PHIOPS_ENDPOINT_KEY": target.key,
        "PHIOPS_ENDPOINT_DEPLOYMENT": target.deployment,
        "PHIOPS_ENDPOINT_TIMEOUT": f"{target.timeout_s:g}",
    }


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    return path


def _seconds(start: str | None, end: str | None) -> float | None:
    try:
        return (
            datetime.fromisoformat(str(end)) - datetime.fromisoformat(str(start))
        ).total_seconds()
    except (TypeError, ValueError):
        return None


def _line_runs(client: Any, run: Any) -> dict[int, dict[str, Any]]:
    """Each line's run record (status, output, start and end time), by line index."""
    storage = client.runs._get_local_storage(run)
    return {int(info["index"]): info for info in storage.load_detail()["flow_runs"]}


def _run(client: Any, workers: int, **kwargs: Any) -> Any:
    previous = os.environ.get("PF_WORKER_COUNT")
    os.environ["PF_WORKER_COUNT"] = str(workers)
    try:
        run = client.run(stream=False, **kwargs)
    except Exception as error:
        raise PhiopsError(f"the Prompt flow batch run failed: {error}") from None
    finally:
        if previous is None:
            os.environ.pop("PF_WORKER_COUNT", None)
        else:
            os.environ["PF_WORKER_COUNT"] = previous
    return run


def generate_with_promptflow(
    cases: list[Case],
    target: Target,
    params: Params,
    folder: Path,
    *,
    say: Callable[[str], None] | None = None,
) -> tuple[list[Generated], float]:
    """The chat flow's batch run over `cases`; (answers in case order, seconds)."""
    from core.chat.inprocess import FLOW_DIR

    say = say or (lambda message: None)
    folder.mkdir(parents=True, exist_ok=True)
    data = _write_jsonl(
        folder / FLOW_DATA,
        [
            {
                **case.flow_row(),
                "temperature": params.temperature,
                "max_new_tokens": params.max_new_tokens,
                "top_p": params.top_p,
            }
            for case in cases
        ],
    )
    client = _client()
    started = time.perf_counter()
    with environment(endpoint_environment(target)):
        say(f"Prompt flow batch run of the chat flow ({len(cases)} lines)")
        run = _run(
            client,
            min(target.concurrency, len(cases)),
            flow=str(FLOW_DIR),
            data=str(data),
            column_mapping=CHAT_MAPPING,
            display_name=f"phiops eval {folder.name[:8]}",
            tags={"phiops.eval": folder.name},
        )
    seconds = time.perf_counter() - started
    (folder / "pf_runs.json").write_text(json.dumps({"chat_run": run.name}))
    lines = _line_runs(client, run)
    answers = []
    for index, case in enumerate(cases):
        info = lines.get(index) or {}
        output = info.get("output") or {}
        answer = output.get("answer") if isinstance(output, dict) else None
        if info.get("status") != "Completed" or not isinstance(answer, str):
            message = ((info.get("error") or {}).get("message")) or "the line did not complete"
            from core.chat.endpoint import unwrap_flow_error

            message = unwrap_flow_error(str(message))
            if "(HTTP 4" in message and "HTTP 401" not in message and "HTTP 404" not in message:
                answers.append(Generated(case, error=message))
                continue
            raise PhiopsError(
                f"the chat flow's batch run {run.name} failed on line {case.line}: {message}"
            )
        latency = _seconds(info.get("start_time"), info.get("end_time"))
        answers.append(
            Generated(case, answer=answer, latency_s=latency, deployment=target.deployment)
        )
    return answers, seconds


def score_with_promptflow(rows: list[dict[str, Any]], meta: EvalMeta, folder: Path) -> None:
    """The evaluation flow's batch run over the chat run's outputs; its per-line scores
    replace the rows' (they are computed by the same file, so they must agree)."""
    client = _client()
    chat_run = json.loads((folder / "pf_runs.json").read_text())["chat_run"]
    answered = [row for row in rows if not row.get("error")]
    index = {row["line"]: position for position, row in enumerate(_read_flow_rows(folder))}
    data = []
    for row in rows:
        finished = row.get("finished")
        data.append(
            {
                "line": row["line"],
                "reference": row["reference"],
                "max_new_tokens": meta.max_new_tokens,
                "answer_tokens": row["tokens"] if row.get("tokens") is not None else -1,
                "finished": "" if finished is None else str(bool(finished)).lower(),
                "latency_s": row["latency_s"] if row.get("latency_s") is not None else -1,
                "ref_loss_sum": row.get("ref_loss_sum", -1),
                "ref_tokens": row.get("ref_tokens", -1),
            }
        )
    data.sort(key=lambda item: index[item["line"]])
    path = _write_jsonl(folder / EVAL_DATA, data)
    run = _run(
        client,
        1,
        flow=str(EVAL_FLOW_DIR),
        data=str(path),
        run=chat_run,
        column_mapping=EVAL_MAPPING,
        display_name=f"phiops eval scores {folder.name[:8]}",
        tags={"phiops.eval": folder.name},
    )
    (folder / "pf_runs.json").write_text(json.dumps({"chat_run": chat_run, "eval_run": run.name}))
    lines = _line_runs(client, run)
    by_line = {row["line"]: row for row in answered}
    for position, item in enumerate(data):
        row = by_line.get(item["line"])
        info = lines.get(position) or {}
        scores = (info.get("output") or {}).get("scores")
        if row is not None and isinstance(scores, dict):
            row.update(scores)
            row["scored_by"] = run.name
    meta_metrics = client.get_metrics(run)
    (folder / "pf_metrics.json").write_text(json.dumps(meta_metrics, indent=2))


def _read_flow_rows(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (folder / FLOW_DATA).read_text().splitlines() if line]
