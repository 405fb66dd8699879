"""`phiops resources check|ensure`: what the backend needs, what is missing, and the fixes."""

from __future__ import annotations

from typing import Any

import click

from core.azure.resources import needs_attention
from core.backend import Finding, FindingState
from core.cli.main import AppContext, pass_app
from core.cli.output import console, emit, err_console, json_option
from core.config import BACKENDS
from core.errors import PhiopsError
from core.text import plural

ICONS = {
    FindingState.OK: "[green]✓[/]",
    FindingState.MISSING: "[red]✗[/]",
    FindingState.WRONG: "[red]✗[/]",
    FindingState.UNKNOWN: "[yellow]?[/]",
}

device_code_option = click.option(
    "--device-code",
    is_flag=True,
    help="Sign in to Azure with a code from any browser (for SSH sessions).",
)


@click.group()
def resources() -> None:
    """Check and create the Azure resources (on the local backend: the local ones)."""


def findings_table(findings: list[Finding], title: str = "") -> Any:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=title or None, title_justify="left", show_edge=False, expand=False)
    table.add_column("", width=1)
    table.add_column("resource", style="bold", no_wrap=True)
    table.add_column("state")
    table.add_column("detail")
    table.add_column("fix", style="cyan")
    for item in findings:
        icon = ICONS[item.state]
        if item.state != FindingState.OK and not item.required:
            icon = "[yellow]✗[/]" if item.state != FindingState.UNKNOWN else icon
        state = str(item.state) + ("" if item.required else " (optional)")
        style = "dim" if item.state == FindingState.UNKNOWN and not item.fix else None
        table.add_row(
            icon, escape(item.name), state, escape(item.detail), escape(item.fix), style=style
        )
    return table


def _status(message: str) -> Any:
    """A spinner on stderr, so stdout stays clean for --json and pipes."""
    return err_console().status(message)


@resources.command("check")
@click.option(
    "--backend",
    type=click.Choice(BACKENDS),
    default=None,
    help="Check this backend instead of the one phiops.toml names.",
)
@device_code_option
@json_option
@pass_app
def check(app: AppContext, backend: str | None, device_code: bool, as_json: bool) -> None:
    """Check every resource the backend needs; exit 1 when something required is missing.

    On Azure: subscription, resource group, workspace and its linked resources, managed
    identity, its role assignments, compute cluster and VM quota, each with its fix.
    """
    config = app.config
    if device_code:
        config.credential = "device-code"
    chosen = backend or config.backend
    with _status(f"checking the {chosen} resources"):
        findings = app.backend(chosen).resources()
    attention = needs_attention(findings)
    data = {
        "backend": chosen,
        "ok": not attention,
        "findings": findings,
    }

    def human() -> None:
        out = console()
        out.print(findings_table(findings, f"{chosen} resources"))
        if attention:
            out.print(
                "\nSomething required is missing or wrong: apply the fixes above"
                + (
                    " (`phiops resources ensure` creates what code can)."
                    if chosen == "azure"
                    else "."
                )
            )
        else:
            out.print("\nEverything required is in place.")

    emit(data, as_json, human)
    if attention:
        raise SystemExit(1)


@resources.command("ensure")
@click.option(
    "--dry-run",
    is_flag=True,
    help="Show the plan; create nothing. Not signed in: every entity ensure would create, "
    "as the SDKs' YAML.",
)
@click.option("--yes", "-y", is_flag=True, help="Do not ask before creating.")
@device_code_option
@json_option
@pass_app
def ensure(app: AppContext, dry_run: bool, yes: bool, device_code: bool, as_json: bool) -> None:
    """Create the missing Azure resources that code can create, after showing the plan.

    Resource group, workspace (storage, key vault, insights, container registry), managed
    identity, its three role assignments and the compute cluster (min 0 nodes). Nothing
    that exists is changed or deleted; GPU quota is explained, since no API grants it.
    """
    from core.azure import client as client_module
    from core.azure.credentials import NotSignedInError
    from core.azure.ensure import EnsureReport, plan_resources
    from core.azure.resources import check_resources

    config = app.config
    if device_code:
        config.credential = "device-code"
    clients = client_module.AzureClients(config)
    try:
        with _status("checking the Azure resources"):
            plan = plan_resources(config, clients)
    except NotSignedInError as error:
        if not dry_run:
            raise
        _show_blueprint(config, error, as_json)
        return

    if not as_json:
        _show_plan(plan)
    if dry_run or not plan.steps:
        report = EnsureReport(plan, [], dry_run, plan.findings)
        emit(report.to_dict(), as_json, lambda: _say_nothing_done(dry_run, plan))
        if not dry_run and needs_attention(plan.findings):
            raise SystemExit(1)
        return
    if not (yes or as_json):
        click.confirm(
            f"Create {plural(len(plan.steps), 'resource')} in Azure?", abort=True, err=True
        )

    _apply(plan, quiet=as_json)
    with _status("checking again"):
        findings = check_resources(config, clients)
    report = EnsureReport(plan, plan.done, False, findings)

    def human() -> None:
        from rich.markup import escape

        out = console()
        out.print("\n[bold]Done:[/]")
        for action in plan.done:
            out.print(f"  [green]✓[/] {escape(action)}")
        out.print(findings_table(findings, "Azure resources now"))

    emit(report.to_dict(), as_json, human)
    if needs_attention(findings):
        raise SystemExit(1)


def _apply(plan: Any, quiet: bool) -> None:
    """Run the plan under a progress bar on stderr; a failure says what was made so far."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=err_console(), transient=True, disable=quiet) as bar:
        task = bar.add_task("creating", total=len(plan.steps))

        def on_step(index: int, step: Any) -> None:
            bar.update(task, completed=index, description=step.action)

        def say(message: str) -> None:
            bar.update(task, description=message)

        try:
            plan.apply(say, on_step)
        except PhiopsError as error:
            made = "; ".join(plan.done) or "nothing"
            raise PhiopsError(
                f"{error} (done so far: {made}; run `phiops resources ensure` again once fixed)"
            ) from None
        bar.update(task, completed=len(plan.steps))


def _show_plan(plan: Any) -> None:
    from rich.markup import escape

    out = console()
    if plan.steps:
        out.print("[bold]phiops will create:[/]")
        for step in plan.steps:
            out.print(f"  [green]+[/] {escape(step.action)}")
    if plan.manual:
        out.print(findings_table(plan.manual, "Needs you (code cannot do these)"))


def _show_blueprint(config: Any, error: Exception, as_json: bool) -> None:
    """`--dry-run` without a sign-in: what ensure creates where nothing exists yet, as the
    SDKs' YAML. What already exists can only be known signed in."""
    from core.azure.blueprint import blueprint_documents, yaml_documents

    documents = blueprint_documents(config)
    note = (
        f"{error} — without it, this is everything `phiops resources ensure` creates where "
        "nothing exists yet; signed in, the plan leaves out what exists"
    )
    if as_json:
        emit({"signed_in": False, "note": note, "entities": dict(documents)}, True, lambda: None)
        return
    click.echo(yaml_documents(documents), nl=False)
    click.echo(note, err=True)


def _say_nothing_done(dry_run: bool, plan: Any) -> None:
    if dry_run:
        console().print(f"\nDry run: nothing created ({plural(len(plan.steps), 'step')} planned).")
    else:
        console().print("\nNothing to create: everything code can create exists.")
