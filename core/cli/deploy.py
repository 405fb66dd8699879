"""`phiops deploy`: a registered model (or a job's) to an endpoint, blue/green, with progress.

Which model: `--model NAME[:VERSION]` (the latest version without one), else `--job NAME`,
else the latest Completed job; for a job, the version registered from it, or a new one.
The endpoint is created if absent and never deleted; the new deployment starts at 0%,
is smoke-tested, then takes `--traffic` percent (default 100).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import click

from core.backend import JobStatus, ModelVersion, Progress, RequestSettings
from core.cli.main import AppContext, pass_app
from core.cli.output import console, emit, err_console, json_option
from core.errors import NotFoundError, PhiopsError
from core.secrets import mask

backend_option = click.option(
    "--backend",
    type=click.Choice(["local", "azure"]),
    default=None,
    help="Backend to use (default: the project's).",
)


@contextlib.contextmanager
def progress_lines(as_json: bool, start: str) -> Iterator[Progress]:
    """A spinner on stderr showing the current step, each finished step kept as a line.
    With --json the steps still go to stderr (as plain lines), never to stdout."""
    if as_json:
        yield lambda message: click.echo(message, err=True)
        return
    from rich.markup import escape

    out = err_console()
    with out.status(start) as status:
        last: list[str] = []

        def say(message: str) -> None:
            if not message.endswith(" s)"):  # a tick ("… (12 s)") only updates the spinner
                if last:
                    out.print(f"[dim]·[/] {escape(last[-1])}", highlight=False)
                last[:] = [message]
            status.update(escape(message))

        yield say
        if last:
            out.print(f"[dim]·[/] {escape(last[-1])}", highlight=False)


def parse_model_ref(value: str) -> tuple[str, str | None]:
    name, _, version = value.partition(":")
    if not name or (value.count(":") > 1):
        raise click.BadParameter("give the model as NAME or NAME:VERSION", param_hint="--model")
    return name, version or None


def choose_model(
    backend: Any, model: str | None, job: str | None, name: str, say: Progress
) -> ModelVersion:
    """The version to deploy (registering a job's model when it has none yet)."""
    if model:
        wanted, version = parse_model_ref(model)
        versions = backend.models(wanted)
        if not versions:
            raise NotFoundError(f"no model named {wanted} is registered; see `phiops model list`")
        if version is None:
            return versions[0]
        for found in versions:
            if found.version == version:
                return found
        known = ", ".join(v.version for v in versions)
        raise NotFoundError(f"model {wanted} has no version {version} (versions: {known})")
    if job:
        chosen = backend.job_status(job)
    else:
        chosen = next((j for j in backend.jobs() if j.status == JobStatus.COMPLETED), None)
        if chosen is None:
            raise NotFoundError(
                "nothing to deploy: no completed job; train one (`phiops train submit`) or "
                "name a registered model with --model NAME:VERSION"
            )
    for found in backend.models(name):
        if found.job_name == chosen.name:
            say(f"using {found.ref}, registered from job {chosen.name}")
            return found
    say(f"registering the model of job {chosen.name} as {name}")
    return backend.register_model(chosen.name, name)


def show_plan(
    app: AppContext,
    backend: str | None,
    model: str | None,
    endpoint: str,
    deployment: str | None,
    settings: RequestSettings,
    as_json: bool,
) -> None:
    """`--dry-run`: the entities an Azure deploy sends, built offline. Which model version
    and which blue/green name a deploy picks depend on Azure, so without `--model N:V` and
    `--deployment` they are shown as what a deploy would choose."""
    from core.azure.blueprint import yaml_documents
    from core.azure.endpoints import check_name, plan_documents

    config = app.config
    if (backend or config.backend) != "azure":
        raise PhiopsError(
            "--dry-run shows what a deploy sends to Azure ML; the local backend has no "
            "entities to show (use --backend azure, or deploy without --dry-run)"
        )
    name, version = parse_model_ref(model) if model else (config.model_name, None)
    version = version or "<the version deploy registers or picks>"
    target = check_name(deployment or config.deployment_name or "blue", "deployment")
    documents = plan_documents(config, ModelVersion(name, version), endpoint, target, settings)
    if as_json:
        emit({title: data for title, data in documents}, True, lambda: None)
        return
    click.echo(yaml_documents(documents), nl=False)
    if not (deployment or config.deployment_name):
        click.echo(
            "(the deployment's name is the next free one of blue, green, blue-2, … at deploy time)",
            err=True,
        )


def request_settings(
    max_concurrent: int | None, timeout_s: int | None, queue_wait_s: int | None
) -> RequestSettings:
    """The seed's settings with what the command line changed (whole seconds: Azure reads
    its durations back in whole seconds)."""
    defaults = RequestSettings()
    return RequestSettings(
        max_concurrent_requests_per_instance=(
            max_concurrent or defaults.max_concurrent_requests_per_instance
        ),
        request_timeout_ms=timeout_s * 1000 if timeout_s else defaults.request_timeout_ms,
        max_queue_wait_ms=queue_wait_s * 1000 if queue_wait_s else defaults.max_queue_wait_ms,
    )


@click.command()
@click.option("--job", default=None, help="Deploy this job's model (default: latest completed).")
@click.option("--model", default=None, metavar="NAME[:VERSION]", help="Deploy a registered model.")
@click.option("--endpoint", default=None, help="Endpoint name (default: endpoint_name).")
@click.option("--deployment", default=None, help="Deployment name (default: blue, green, …).")
@click.option(
    "--traffic",
    type=click.IntRange(0, 100),
    default=100,
    show_default=True,
    help="Share of traffic the new deployment takes once its smoke test passes.",
)
@click.option(
    "--max-concurrent",
    type=click.IntRange(1),
    default=None,
    help="Requests one instance serves at once; more wait in the queue.  [default: 3]",
)
@click.option(
    "--request-timeout",
    type=click.IntRange(1, 180),
    default=None,
    metavar="SECONDS",
    help="Longest a request may take (Azure allows at most 180).  [default: 180]",
)
@click.option(
    "--max-queue-wait",
    type=click.IntRange(1),
    default=None,
    metavar="SECONDS",
    help="Longest a request waits for a free slot before a 429, on the local backend. "
    "Azure ML managed online endpoints ignore it (they queue by --max-concurrent and "
    "--request-timeout).  [default: 120]",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Azure: print the endpoint, environment and deployment as the SDK's YAML; signs in "
    "to nothing and creates nothing.",
)
@click.option(
    "--gate",
    default=None,
    metavar="METRIC[:TOLERANCE]",
    help="Evaluate the new deployment at 0% on the test split against the current one and "
    "move traffic only if it is not worse by more than TOLERANCE (e.g. rougeL:0.02).",
)
@backend_option
@json_option
@pass_app
def deploy(
    app: AppContext,
    job: str | None,
    model: str | None,
    endpoint: str | None,
    deployment: str | None,
    traffic: int,
    max_concurrent: int | None,
    request_timeout: int | None,
    max_queue_wait: int | None,
    dry_run: bool,
    gate: str | None,
    backend: str | None,
    as_json: bool,
) -> None:
    """Deploy a model to an endpoint, blue/green: the new deployment takes traffic only
    after a smoke test (and, with --gate, an evaluation), and the previous one stays until
    you delete it."""
    if job and model:
        raise click.UsageError("give either --job or --model, not both")
    config = app.config
    endpoint = endpoint or config.endpoint_name
    if dry_run:
        settings = request_settings(max_concurrent, request_timeout, max_queue_wait)
        show_plan(app, backend, model, endpoint, deployment, settings, as_json)
        return
    chosen = app.backend(backend)
    gated = None
    if gate:
        from core.eval.gate import Gate

        gated = Gate.parse(gate)
    try:
        before = {d.name for d in chosen.endpoint(endpoint).deployments}
    except NotFoundError:
        before = set()
    result = None
    with progress_lines(as_json, "Choosing the model…") as say:
        version = choose_model(chosen, model, job, config.model_name, say)
        settings = request_settings(max_concurrent, request_timeout, max_queue_wait)
        if gated is None:
            info = chosen.deploy(
                version, endpoint, deployment, traffic, progress=say, request_settings=settings
            )
        else:
            from core.eval.gate import gated_deploy

            result = gated_deploy(
                config,
                chosen,
                version,
                endpoint,
                gated,
                deployment=deployment,
                traffic=traffic,
                request_settings=settings,
                say=say,
            )
            info = result.endpoint
    # The deployment this call created, as the backend decided it under its lock; the
    # difference from before is only a fallback for a backend that does not say.
    created = sorted({d.name for d in info.deployments} - before)
    name = info.deployed or deployment or (created[0] if created else "")
    try:
        key = mask(chosen.endpoint_keys(endpoint).primary)
    except PhiopsError:
        key = ""
    data = {"model": version.ref, "deployment": name, "key": key, "endpoint": info.to_dict()}
    if result is not None:
        data["gate"] = result.to_dict()

    def human() -> None:
        out = console()
        if result is not None:
            gate_report(result)
        split = ", ".join(f"{n} {s}%" for n, s in sorted(info.traffic.items()))
        out.print(
            f"Deployed [bold]{version.ref}[/] as [bold]{name}[/] on endpoint "
            f"[bold]{info.name}[/] (traffic: {split})",
            highlight=False,
        )
        out.print(f"  scoring URI  {info.scoring_uri}", highlight=False, markup=False)
        if key:
            out.print(f"  key          {key}  (phiops endpoints keys --show-secrets)", markup=False)
        out.print(f'\nTry it: phiops score "Hello!" --endpoint {info.name}', markup=False)

    emit(data, as_json, human)
    if result is not None and not result.passed:
        raise PhiopsError(
            f"the gate held: {result.reason}; traffic stays as it was and {name} stays at 0% "
            f"(`phiops eval compare {result.current.run_id[:12]} {result.new.run_id[:12]}`)"
        )


def gate_report(result: Any) -> None:
    """The gate's verdict, and the comparison behind it."""
    from core.cli.eval import print_comparison

    out = console()
    word = "[green]passed[/]" if result.passed else "[red]held[/]"
    out.print(f"Gate {word}: {result.reason}", highlight=False)
    if result.comparison is not None:
        if result.current_reused:
            out.print(f"(current deployment's evaluation {result.current.run_id[:12]} reused)")
        print_comparison(result.comparison)
        out.print()
