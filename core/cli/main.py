"""The `phiops` command group. Subcommands load lazily, so `phiops --help` stays instant."""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from core import __version__
from core.errors import PhiopsError

# name -> ("module:attribute", one-line help); each area of the CLI lives in its own module,
# and `phiops --help` reads the help from here instead of importing every module.
COMMANDS: dict[str, tuple[str, str]] = {
    "config": ("core.cli.config_cmd:config", "Create, show and change the project's phiops.toml."),
    "completion": ("core.cli.completion:completion", "Print a shell completion script."),
    "data": ("core.cli.data:data", "Prepare, validate and preview chat datasets."),
    "model": ("core.cli.model:model", "Scaffold base models; register and list models."),
    "train": ("core.cli.train:train", "Submit a fine-tuning job."),
    "jobs": ("core.cli.jobs:jobs", "List jobs, follow their logs and metrics, cancel them."),
    "deploy": ("core.cli.deploy:deploy", "Deploy a model to an endpoint, blue/green."),
    "endpoints": (
        "core.cli.endpoints:endpoints",
        "Endpoints: status, logs, keys, rollback, delete.",
    ),
    "score": ("core.cli.endpoints:score", "Send one request to the endpoint."),
    "eval": (
        "core.cli.eval:eval_",
        "Evaluate a model on the test split; list, show and compare evaluations.",
    ),
    "flow": ("core.cli.flow:flow", "Serve the Prompt flow chat flow."),
    "chat": ("core.cli.chat:chat", "Chat with the fine-tuned model."),
    "resources": ("core.cli.resources:resources", "Check and create the Azure resources."),
    "demo": ("core.cli.demo:demo", "Run the whole pipeline on the local backend."),
    "down": ("core.cli.demo:down", "Stop every local server phiops started."),
}
# `tui` is added by tui.launcher: core never imports the TUI, the TUI imports core.


class LazyGroup(click.Group):
    """A click group that imports a subcommand's module only when it is used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module_name, attribute = COMMANDS[name][0].split(":")
        return getattr(importlib.import_module(module_name), attribute)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@dataclass
class AppContext:
    """What every command may need, built on first use."""

    debug: bool = False
    _config: Any = field(default=None, repr=False)

    @property
    def config(self):
        if self._config is None:
            from core.config import load_config
            from core.pfconfig import ensure_project_pf_config

            self._config = load_config()
            if self._config.path.exists():  # first use in a project: its pf.yaml too
                ensure_project_pf_config(self._config.project_dir)
        return self._config

    def backend(self, name: str | None = None):
        from core.backends import get_backend

        return get_backend(self.config, name)


pass_app = click.make_pass_decorator(AppContext, ensure=True)


@click.group(
    cls=LazyGroup,
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(__version__, "--version", prog_name="phiops")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Use this phiops.toml instead of the nearest one.",
)
@click.option("--debug", is_flag=True, help="Show Python tracebacks for errors.")
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None, debug: bool) -> None:
    """Fine-tune a Phi-3 model, deploy it and chat with it through Prompt flow.

    Run `phiops` alone in a terminal to open the app, or a command below from scripts.
    """
    if config_path is not None:
        os.environ["PHIOPS_CONFIG"] = str(config_path.expanduser().resolve())
    ctx.obj = AppContext(debug=debug)
    if ctx.invoked_subcommand is None:
        if "tui" in COMMANDS and sys.stdin.isatty() and sys.stdout.isatty():
            ctx.invoke(cli.get_command(ctx, "tui"))
        else:
            click.echo(ctx.get_help())


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; user errors become one sentence on stderr, never a traceback."""
    from core.cli.output import fail

    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        result = cli.main(args=argv, prog_name="phiops", standalone_mode=False)
    except click.Abort:
        fail("aborted", 130)
    except click.ClickException as error:
        error.show()
        return error.exit_code
    except PhiopsError as error:
        if debug:
            raise
        fail(str(error), error.exit_code)
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except BrokenPipeError:
        return 141
    except Exception as error:  # a bug: say so plainly, keep the traceback for --debug
        if debug:
            raise
        fail(f"unexpected error ({type(error).__name__}): {error}. Run with --debug for details.")
    return result if isinstance(result, int) else 0
