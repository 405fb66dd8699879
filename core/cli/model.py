"""`phiops model …`: scaffold an offline Phi-3-mini twin; register a job's model, list versions."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click

import core
from core.cli.main import AppContext, pass_app
from core.cli.output import console, emit, json_option, report_problems
from core.errors import NotFoundError, PhiopsError

SCAFFOLD_TINY = Path(core.__file__).resolve().parent.parent / "trainer" / "scaffold_tiny.py"


@click.group()
def model() -> None:
    """Scaffold base models; register and list models."""


def run_scaffold_tiny(out: Path, data_files: list[Path], size: str) -> dict:
    """Run trainer/scaffold_tiny.py in the venv's Python (core never imports trainer/)."""
    if not SCAFFOLD_TINY.is_file():
        raise NotFoundError(f"the trainer is missing at {SCAFFOLD_TINY}; reinstall phiops.")
    for file in data_files:
        if not file.is_file():
            raise NotFoundError(f"data file {file} does not exist.")
    command = [sys.executable, str(SCAFFOLD_TINY), str(out), "--size", size, "--from-data"]
    result = subprocess.run(
        [*command, *map(str, data_files)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        reason = lines[-1].removeprefix("scaffold_tiny: ") if lines else "no error message"
        raise PhiopsError(f"could not scaffold the base model: {reason}")
    config = json.loads((out / "config.json").read_text())
    return {
        "path": str(out),
        "size": size,
        "architecture": config["architectures"][0],
        "vocab_size": config["vocab_size"],
        "hidden_size": config["hidden_size"],
        "layers": config["num_hidden_layers"],
    }


@model.command("scaffold-tiny")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--from-data",
    "data_files",
    multiple=True,
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Chat JSONL whose text trains the tokenizer (repeat for several files).",
)
@click.option("--size", type=click.Choice(["tiny", "small"]), default="tiny", show_default=True)
@json_option
def scaffold_tiny(out: Path, data_files: tuple[Path, ...], size: str, as_json: bool) -> None:
    """Make a Phi-3-mini twin in OUT, for offline training and demos.

    It has Phi-3-mini-4k-instruct's vocabulary (32064), special tokens at their ids, tokenizer
    files, chat template and generation config; only its width and depth are small."""
    out = out.expanduser().resolve()
    if as_json:
        summary = run_scaffold_tiny(out, list(data_files), size)
    else:
        with console().status(f"Scaffolding a {size} Phi-3-mini twin…"):
            summary = run_scaffold_tiny(out, list(data_files), size)

    def human() -> None:
        console().print(
            f"Wrote a {size} Phi-3-mini twin, {summary['architecture']} (hidden "
            f"{summary['hidden_size']}, {summary['layers']} layers, vocabulary "
            f"{summary['vocab_size']}) to {out}"
        )

    emit(summary, as_json, human)


# -- the registry ------------------------------------------------------------------------


def _when(stamp: float | None) -> str:
    import time

    return time.strftime("%Y-%m-%d %H:%M", time.localtime(stamp)) if stamp else ""


@model.command("register")
@click.option(
    "--job", default=None, help="The job whose model to register (default: latest completed)."
)
@click.option("--name", default=None, help="Registered model name (default: model_name).")
@click.option("--backend", type=click.Choice(["local", "azure"]), default=None)
@json_option
@pass_app
def register(
    app: AppContext, job: str | None, name: str | None, backend: str | None, as_json: bool
) -> None:
    """Register a job's MLflow model as the next version of a model."""
    version = app.backend(backend).register_model(job, name or app.config.model_name)

    def human() -> None:
        console().print(
            f"Registered [bold]{version.ref}[/] from job {version.job_name}", highlight=False
        )
        console().print(f"Deploy it with: phiops deploy --model {version.ref}", markup=False)

    emit(version.__dict__ | {"ref": version.ref}, as_json, human)


@model.command("list")
@click.option("--name", default=None, help="Only this model's versions.")
@click.option("--backend", type=click.Choice(["local", "azure"]), default=None)
@json_option
@pass_app
def list_(app: AppContext, name: str | None, backend: str | None, as_json: bool) -> None:
    """List registered models and their versions, newest first."""
    chosen = app.backend(backend)
    versions = chosen.models(name)
    problems = chosen.record_problems()

    def human() -> None:
        if not versions:
            if not problems:  # a store that lost its models is not "no models yet"
                console().print(
                    "No registered models yet; register one with `phiops model register`."
                )
            return
        from rich.table import Table

        table = Table(show_edge=False)
        for column in ("model", "version", "job", "registered"):
            table.add_column(column, no_wrap=True)
        for version in versions:
            table.add_row(
                version.name, version.version, version.job_name, _when(version.created_at)
            )
        console().print(table)

    emit([v.__dict__ | {"ref": v.ref} for v in versions], as_json, human)
    report_problems(problems)
