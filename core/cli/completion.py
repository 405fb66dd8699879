"""`phiops completion SHELL`: print the script that enables tab completion."""

from __future__ import annotations

import click
from click.shell_completion import get_completion_class


@click.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print a completion script, e.g. `eval "$(phiops completion bash)"` in ~/.bashrc."""
    from core.cli.main import cli

    complete_class = get_completion_class(shell)
    click.echo(complete_class(cli, {}, "phiops", "_PHIOPS_COMPLETE").source())
