"""`phiops tui` (and `phiops` alone in a terminal): open the app.

Only the config is read before the app starts — a broken phiops.toml is one sentence on
stderr, not a crash inside the screen. Everything else (the backend, the jobs, the data)
is loaded by the tabs in workers once the first frame is painted.
"""

from __future__ import annotations

import click

from core.cli.main import AppContext, pass_app
from tui.tabs import TABS


@click.command()
@click.option(
    "--backend",
    type=click.Choice(["local", "azure"]),
    default=None,
    help="Work on this backend (default: the project's).",
)
@click.option(
    "--tab",
    type=click.Choice([tab_id for tab_id, _, _ in TABS]),
    default="resources",
    show_default=True,
    help="The tab to open on.",
)
@pass_app
def tui(app: AppContext, backend: str | None, tab: str) -> None:
    """Open the terminal app: resources, dataset, jobs, deployments, chat and evaluate."""
    from tui.app import PhiopsApp
    from tui.services import Services

    services = Services(config=app.config, backend_name=backend)
    PhiopsApp(services, initial_tab=tab).run()
