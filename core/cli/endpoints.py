"""`phiops endpoints …` and `phiops score`: status, logs, keys, traffic, rollback, delete,
start/stop (local), and one scoring request — all through the backend interface, so they
work the same on Azure. Keys are shown masked unless --show-secrets is given."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import click

from core.backend import EndpointControl, EndpointInfo
from core.cli.deploy import backend_option, progress_lines
from core.cli.main import AppContext, pass_app
from core.cli.output import console, emit, err_console, json_option, report_problems
from core.errors import PhiopsError
from core.secrets import mask
from core.text import plural

STATE_STYLE = {
    "succeeded": "green",
    "creating": "yellow",
    "updating": "yellow",
    "starting": "yellow",
    "deleting": "magenta",
    "failed": "red",
    "stopped": "red",
}
AZURE_CHARGES = (
    "Azure bills an online deployment's instances for as long as the deployment exists, "
    "whether or not it gets traffic; deleting is the way to stop the charges."
)


def styled(state: str) -> str:
    colour = STATE_STYLE.get((state or "").lower())
    return f"[{colour}]{state}[/]" if colour else (state or "?")


def endpoint_name(app: AppContext, name: str | None) -> str:
    return name or app.config.endpoint_name


@click.group()
def endpoints() -> None:
    """Endpoints: status, logs, keys, traffic, rollback, delete, start/stop (local)."""


def render_endpoint(info: EndpointInfo, key: str = "", detailed: bool = False) -> None:
    from rich.table import Table

    out = console()
    out.print(
        f"[bold]{info.name}[/]  {styled(info.state)}  ({info.backend}, auth {info.auth_mode})",
        highlight=False,
    )
    out.print(f"  scoring URI  {info.scoring_uri or '(none yet)'}", markup=False)
    if key:
        out.print(f"  key          {key}", markup=False)
    if not info.deployments:
        out.print("  no deployments")
        return
    table = Table(show_edge=False, pad_edge=False, box=None, padding=(0, 2))
    for column in ("deployment", "state", "traffic", "model", "instances"):
        table.add_column(column, no_wrap=True)
    for item in info.deployments:
        table.add_row(
            item.name,
            styled(item.state),
            f"{info.traffic.get(item.name, 0)}%",
            item.model,
            f"{item.instance_count} × {item.instance_type}",
        )
    out.print(table)
    if detailed:
        for item in info.deployments:
            settings = item.request_settings
            out.print(
                f"  {item.name}: {settings.max_concurrent_requests_per_instance} concurrent "
                f"requests, queue wait {settings.max_queue_wait_ms} ms, request timeout "
                f"{settings.request_timeout_ms} ms",
                markup=False,
                highlight=False,
            )


@endpoints.command("list")
@backend_option
@json_option
@pass_app
def list_(app: AppContext, backend: str | None, as_json: bool) -> None:
    """List endpoints with their deployments and traffic."""
    chosen = app.backend(backend)
    found = chosen.endpoints()
    problems = chosen.record_problems()

    def human() -> None:
        if not found:
            if not problems:
                console().print("No endpoints yet; create one with `phiops deploy`.")
            return
        for index, info in enumerate(found):
            if index:
                console().print()
            render_endpoint(info)

    emit([info.to_dict() for info in found], as_json, human)
    report_problems(problems)


@endpoints.command("show")
@click.argument("name", required=False)
@backend_option
@json_option
@pass_app
def show(app: AppContext, name: str | None, backend: str | None, as_json: bool) -> None:
    """One endpoint: state, scoring URI, masked key, deployments and traffic."""
    chosen = app.backend(backend)
    info = chosen.endpoint(endpoint_name(app, name))
    try:
        key = mask(chosen.endpoint_keys(info.name).primary)
    except PhiopsError:
        key = ""
    emit({**info.to_dict(), "key": key}, as_json, lambda: render_endpoint(info, key, True))


@endpoints.command("logs")
@click.argument("name", required=False)
@click.option("--deployment", default=None, help="Deployment (default: the one with most traffic).")
@click.option("--lines", type=click.IntRange(1), default=100, show_default=True)
@backend_option
@json_option
@pass_app
def logs(
    app: AppContext,
    name: str | None,
    deployment: str | None,
    lines: int,
    backend: str | None,
    as_json: bool,
) -> None:
    """The last lines of a deployment's log."""
    chosen = app.backend(backend)
    endpoint = endpoint_name(app, name)
    if deployment is None:
        info = chosen.endpoint(endpoint)
        if not info.deployments:
            raise PhiopsError(f"endpoint {endpoint} has no deployments")
        deployment = max(info.deployments, key=lambda d: info.traffic.get(d.name, 0)).name
    from core.serving.logredact import redact_log

    text = redact_log(chosen.deployment_logs(endpoint, deployment, lines))
    data = {"endpoint": endpoint, "deployment": deployment, "text": text}
    emit(data, as_json, lambda: click.echo(text.rstrip("\n")))


@endpoints.command("keys")
@click.argument("name", required=False)
@click.option("--show-secrets", is_flag=True, help="Print the keys themselves, not masked.")
@backend_option
@json_option
@pass_app
def keys(
    app: AppContext, name: str | None, show_secrets: bool, backend: str | None, as_json: bool
) -> None:
    """The endpoint's keys, masked unless --show-secrets."""
    endpoint = endpoint_name(app, name)
    found = app.backend(backend).endpoint_keys(endpoint)
    shown = (lambda key: key) if show_secrets else mask
    data = {
        "endpoint": endpoint,
        "primary": shown(found.primary),
        "secondary": shown(found.secondary),
    }

    def human() -> None:
        console().print(f"primary    {data['primary']}", markup=False, highlight=False)
        console().print(f"secondary  {data['secondary']}", markup=False, highlight=False)

    emit(data, as_json, human)


def parse_split(items: tuple[str, ...]) -> dict[str, int]:
    split = {}
    for item in items:
        name, _, share = item.partition("=")
        try:
            split[name] = int(share)
        except ValueError:
            raise click.BadParameter(
                f"{item!r}: give DEPLOYMENT=PERCENT, e.g. blue=90 green=10"
            ) from None
    return split


def render_traffic(info: EndpointInfo) -> None:
    split = ", ".join(f"{n} {s}%" for n, s in sorted(info.traffic.items())) or "none"
    console().print(f"{info.name}: {split}", markup=False, highlight=False)


@endpoints.command("traffic")
@click.argument("args", nargs=-1, metavar="[NAME] [DEPLOYMENT=PERCENT]...")
@backend_option
@json_option
@pass_app
def traffic(app: AppContext, args: tuple[str, ...], backend: str | None, as_json: bool) -> None:
    """Show the traffic split, or set it: `phiops endpoints traffic blue=90 green=10`.

    Deployments left out get 0%; the split before is kept for `rollback`."""
    names = [arg for arg in args if "=" not in arg]
    if len(names) > 1:
        raise click.UsageError("give at most one endpoint name, then DEPLOYMENT=PERCENT pairs")
    endpoint = endpoint_name(app, names[0] if names else None)
    split = parse_split(tuple(arg for arg in args if "=" in arg))
    chosen = app.backend(backend)
    info = chosen.set_traffic(endpoint, split) if split else chosen.endpoint(endpoint)
    emit({"endpoint": endpoint, "traffic": info.traffic}, as_json, lambda: render_traffic(info))


@endpoints.command("rollback")
@click.argument("name", required=False)
@backend_option
@json_option
@pass_app
def rollback(app: AppContext, name: str | None, backend: str | None, as_json: bool) -> None:
    """Put the traffic split back as it was before the last change."""
    endpoint = endpoint_name(app, name)
    info = app.backend(backend).rollback(endpoint)
    emit({"endpoint": endpoint, "traffic": info.traffic}, as_json, lambda: render_traffic(info))


@endpoints.command("delete")
@click.argument("name", required=False)
@click.option("--deployment", default=None, help="Delete only this deployment.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@backend_option
@json_option
@pass_app
def delete(
    app: AppContext,
    name: str | None,
    deployment: str | None,
    yes: bool,
    backend: str | None,
    as_json: bool,
) -> None:
    """Delete an endpoint (with its deployments and keys) or one deployment. Asks first."""
    chosen = app.backend(backend)
    endpoint = endpoint_name(app, name)
    info = chosen.endpoint(endpoint)  # a wrong name fails before the question
    what = (
        f"deployment {deployment} of endpoint {endpoint}"
        if deployment
        else (
            f"endpoint {endpoint} with its "
            f"{plural(len(info.deployments), 'deployment')} and its keys"
        )
    )
    if deployment and deployment not in {d.name for d in info.deployments}:
        raise PhiopsError(f"endpoint {endpoint} has no deployment named {deployment}")
    if not yes:
        if as_json or not sys.stdin.isatty():
            raise PhiopsError(f"deleting {what} needs confirmation: add --yes")
        if chosen.name == "azure":
            err_console().print(f"[yellow]{AZURE_CHARGES}[/]", highlight=False)
        if not click.confirm(f"Delete {what}? This cannot be undone", default=False, err=True):
            raise click.Abort()
    with progress_lines(as_json, f"Deleting {what}…") as say:
        say(f"deleting {what}")
        if deployment:
            chosen.delete_deployment(endpoint, deployment)
        else:
            chosen.delete_endpoint(endpoint)
    data = {"endpoint": endpoint, "deployment": deployment, "deleted": True}
    emit(data, as_json, lambda: console().print(f"Deleted {what}.", highlight=False))


# -- local only: start and stop ------------------------------------------------------------


def endpoint_control(app: AppContext, backend: str | None) -> EndpointControl:
    control = app.backend(backend).endpoint_control()
    if control is None:
        raise PhiopsError(
            "start and stop apply to local endpoints; an Azure endpoint runs (and is billed) "
            "until its deployments are deleted"
        )
    return control


@endpoints.command("start")
@click.argument("name", required=False)
@backend_option
@json_option
@pass_app
def start(app: AppContext, name: str | None, backend: str | None, as_json: bool) -> None:
    """Start a local endpoint's gateway and deployments again (after `stop` or a reboot)."""
    control = endpoint_control(app, backend)
    endpoint = endpoint_name(app, name)
    with progress_lines(as_json, f"Starting endpoint {endpoint}…") as say:
        info = control.start(endpoint, progress=say)
    emit(info.to_dict(), as_json, lambda: render_endpoint(info))


@endpoints.command("stop")
@click.argument("name", required=False)
@click.option("--all", "every", is_flag=True, help="Stop every local endpoint.")
@backend_option
@json_option
@pass_app
def stop(
    app: AppContext, name: str | None, every: bool, backend: str | None, as_json: bool
) -> None:
    """Stop a local endpoint's processes; its deployments, split and URI are kept."""
    control = endpoint_control(app, backend)
    if every:
        stopped = control.stop_all()
        problems = list(control.problems)
        emit(
            {"stopped": stopped, "problems": problems},
            as_json,
            lambda: console().print(
                f"Stopped {', '.join(stopped)}." if stopped else "No local endpoint was running."
            ),
        )
        report_problems(problems)
        return
    info = control.stop(endpoint_name(app, name))
    emit(info.to_dict(), as_json, lambda: render_endpoint(info))


# -- score ---------------------------------------------------------------------------------


def score_body(text: str, max_new_tokens: int, temperature: float) -> dict[str, Any]:
    params: dict[str, Any] = {"max_new_tokens": max_new_tokens, "do_sample": temperature > 0}
    if temperature > 0:
        params["temperature"] = temperature
    return {"input_data": [text], "params": params}


def http_failure(response: Any, uri: str) -> PhiopsError:
    try:
        detail = response.json().get("error") or ""
    except (ValueError, AttributeError):
        detail = response.text[:200]
    detail = " ".join(str(detail).split())
    suffix = f": {detail}" if detail else ""
    return PhiopsError(f"the endpoint at {uri} answered HTTP {response.status_code}{suffix}")


@click.command()
@click.argument("text")
@click.option("--endpoint", default=None, help="Endpoint name (default: endpoint_name).")
@click.option("--deployment", default=None, help="Send to this deployment, whatever the split.")
@click.option("--stream", is_flag=True, help="Print the answer as it is generated.")
@click.option("--max-new-tokens", type=click.IntRange(1, 4096), default=256, show_default=True)
@click.option("--temperature", type=click.FloatRange(0), default=0.0, show_default=True)
@click.option("--timeout", type=click.FloatRange(1), default=300.0, show_default=True)
@backend_option
@json_option
@pass_app
def score(
    app: AppContext,
    text: str,
    endpoint: str | None,
    deployment: str | None,
    stream: bool,
    max_new_tokens: int,
    temperature: float,
    timeout: float,
    backend: str | None,
    as_json: bool,
) -> None:
    """Send TEXT to the endpoint as one chat turn and print the answer.

    With --stream --json, one JSON object a line: {"delta": …} pieces, then the answer."""
    import httpx

    chosen = app.backend(backend)
    name = endpoint_name(app, endpoint)
    info = chosen.endpoint(name)
    if not info.scoring_uri:
        raise PhiopsError(f"endpoint {name} has no scoring URI yet; deploy a model first")
    headers = {"Authorization": f"Bearer {chosen.endpoint_keys(name).primary}"}
    if deployment:
        headers["azureml-model-deployment"] = deployment
    if stream:
        headers["Accept"] = "text/event-stream"
    body = score_body(text, max_new_tokens, temperature)
    started = time.monotonic()
    pieces: list[str] = []
    try:
        with httpx.stream(
            "POST", info.scoring_uri, json=body, headers=headers, timeout=timeout, trust_env=False
        ) as response:
            if response.status_code != 200:
                response.read()
                raise http_failure(response, info.scoring_uri)
            served_by = response.headers.get("azureml-model-deployment", deployment or "")
            if "text/event-stream" in response.headers.get("content-type", ""):
                for piece in sse_deltas(response, info.scoring_uri):
                    pieces.append(piece)
                    if as_json:
                        click.echo(json.dumps({"delta": piece}))
                    else:
                        sys.stdout.write(piece)
                        sys.stdout.flush()
                if not as_json:
                    sys.stdout.write("\n")
                answer = "".join(pieces)
            else:
                answer = answer_from(response.read(), info.scoring_uri)
                if stream and not as_json:
                    click.echo(answer)
    except httpx.HTTPError as problem:
        raise PhiopsError(
            f"the request to {info.scoring_uri} failed ({type(problem).__name__}: {problem})"
        ) from None
    data = {
        "answer": answer,
        "endpoint": name,
        "deployment": served_by,
        "latency_s": round(time.monotonic() - started, 3),
    }
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False) if stream else json.dumps(data, indent=2))
    elif not stream:
        click.echo(answer)


def answer_from(raw: bytes, uri: str) -> str:
    try:
        data = json.loads(raw)
    except ValueError:
        raise PhiopsError(f"the endpoint at {uri} answered something that is not JSON") from None
    if isinstance(data, list) and data and isinstance(data[0], str):
        return data[0]
    raise PhiopsError(f"the endpoint at {uri} answered JSON that is not a list of strings")


def sse_deltas(response: Any, uri: str):
    """The `delta` texts of a server-sent-events answer; an `error` event raises."""
    event, data = "message", []
    for line in response.iter_lines():
        if line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
        elif not line and data:
            payload, data = "\n".join(data), []
            if payload == "[DONE]":
                return
            try:
                parsed = json.loads(payload)
            except ValueError:
                parsed = payload
            if event == "error":
                reason = parsed.get("error") if isinstance(parsed, dict) else parsed
                raise PhiopsError(f"the endpoint at {uri} failed while answering: {reason}")
            yield parsed.get("delta", "") if isinstance(parsed, dict) else str(parsed)
            event = "message"
    raise PhiopsError(f"the stream from {uri} ended before the answer was complete")
