"""The Deployments tab's dialogs: deploy a model version, shift traffic.

Each is a `tui.screens.Modal` that returns a plain value through `dismiss` and does no work
of its own; the tab runs the operation in a worker (confirmations are `ConfirmScreen`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from tui.screens import Modal, say

if TYPE_CHECKING:
    from core.backend import EndpointInfo, ModelVersion


@dataclass
class DeployRequest:
    model: ModelVersion
    endpoint: str
    deployment: str | None
    traffic: int


def parse_share(text: str) -> int:
    """A traffic share typed by the user, 0..100, or a ValueError with the sentence to show."""
    try:
        share = int(text.strip().rstrip("%"))
    except ValueError:
        raise ValueError(f"Traffic must be a whole number from 0 to 100, not {text!r}.") from None
    if not 0 <= share <= 100:
        raise ValueError(f"Traffic must be from 0 to 100, not {share}.")
    return share


class DeployScreen(Modal[DeployRequest]):
    """Pick a registered model version and where it goes; returns a `DeployRequest`."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "submit", "Deploy", id="deploy.submit")
    ]

    def __init__(
        self,
        models: list[ModelVersion],
        endpoints: list[EndpointInfo],
        endpoint: str,
        warning: str = "",
        deployment: str = "",
    ) -> None:
        super().__init__()
        self.title_text = "Deploy a model version"
        self.default_deployment = deployment  # the config's fixed name, if it has one
        self.models = models
        self.endpoints = {info.name: info for info in endpoints}
        self.default_endpoint = endpoint
        self.warning = warning

    def compose(self) -> ComposeResult:
        with Vertical(id="box"):
            yield Static(self.title_text, classes="title")
            yield OptionList(
                *[Option(_model_label(model), id=model.ref) for model in self.models],
                id="deploy-models",
            )
            with Horizontal(classes="row"):
                with Vertical():
                    yield Label("Endpoint")
                    yield Input(self.default_endpoint, id="deploy-endpoint")
                with Vertical():
                    yield Label("Deployment")
                    yield Input(id="deploy-deployment")
                with Vertical(classes="narrow"):
                    yield Label("Traffic %")
                    yield Input("100", id="deploy-traffic", type="integer", max_length=3)
            yield Static("", id="deploy-hint", classes="hint")
            yield Static("", id="deploy-error", classes="error")
            if self.warning:
                yield Static(self.warning, classes="warning", markup=False)
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Deploy", id="submit", variant="primary")

    def on_mount(self) -> None:
        options = self.query_one("#deploy-models", OptionList)
        options.highlighted = 0
        options.focus()
        self._update_hint()

    @on(OptionList.OptionSelected, "#deploy-models")
    def _model_chosen(self) -> None:
        self.query_one("#deploy-endpoint", Input).focus()

    @on(Input.Changed, "#deploy-endpoint")
    def _update_hint(self) -> None:
        from core.bluegreen import next_deployment_name

        endpoint = self.query_one("#deploy-endpoint", Input).value.strip()
        info = self.endpoints.get(endpoint)
        existing = [d.name for d in info.deployments] if info else []
        self.query_one("#deploy-deployment", Input).placeholder = (
            self.default_deployment or next_deployment_name(existing)
        )
        if info and existing:
            hint = (
                f"{endpoint} has {', '.join(existing)}; the new deployment takes its share "
                "after a smoke test, the others keep the rest."
            )
        else:
            hint = f"A new endpoint {endpoint or '…'} is created for it."
        self.query_one("#deploy-hint", Static).update(hint)

    @on(Input.Submitted)
    @on(Button.Pressed, "#submit")
    def action_submit(self) -> None:
        error = self.query_one("#deploy-error", Static)
        options = self.query_one("#deploy-models", OptionList)
        if options.highlighted is None:
            say(error, "Pick a model version first.")
            return
        endpoint = self.query_one("#deploy-endpoint", Input).value.strip()
        if not endpoint:
            say(error, "Name the endpoint to deploy to.")
            return
        try:
            traffic = parse_share(self.query_one("#deploy-traffic", Input).value)
        except ValueError as problem:
            say(error, str(problem))
            return
        deployment = self.query_one("#deploy-deployment", Input).value.strip() or None
        model = self.models[options.highlighted]
        self.dismiss(DeployRequest(model, endpoint, deployment, traffic))


def _model_label(model: ModelVersion) -> str:
    import time

    parts = [model.ref]
    if model.job_name:
        parts.append(model.job_name)
    if model.created_at:
        parts.append(time.strftime("%Y-%m-%d %H:%M", time.localtime(model.created_at)))
    return " · ".join(parts)  # one line in the 70 columns the dialog has at 80×24


class TrafficScreen(Modal[dict[str, int]]):
    """The split, one editable share per deployment, opened on the current split; below,
    exactly what Apply sends. With two deployments, typing one share sets the other to the
    rest. ↑/↓ move between the shares, Enter or ctrl+s applies. Returns the new split."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "submit", "Apply", id="traffic.submit"),
        Binding("down", "move(1)", "Next share", show=False),
        Binding("up", "move(-1)", "Previous share", show=False),
    ]

    def __init__(self, endpoint: EndpointInfo) -> None:
        super().__init__()
        self.endpoint = endpoint
        self.names = [d.name for d in endpoint.deployments]
        self.current = {name: endpoint.traffic.get(name, 0) for name in self.names}
        self.plan: dict[str, int] | None = None

    def compose(self) -> ComposeResult:
        width = max(len(name) for name in self.names)
        with Vertical(id="box"):
            yield Static(f"Shift traffic on {self.endpoint.name}", classes="title")
            yield Static("Each deployment's share of the requests, in %:", classes="hint")
            for index, dep in enumerate(self.endpoint.deployments):
                with Horizontal(classes="share"):
                    yield Label(
                        f"{dep.name:<{width}}  {dep.model}  {dep.state}",
                        classes="name",
                        markup=False,
                    )
                    yield Input(
                        str(self.current[dep.name]),
                        id=f"share-{index}",
                        type="integer",
                        max_length=3,
                        compact=True,
                    )
                    yield Label("%")
            yield Static("", id="traffic-plan")
            yield Static("", id="traffic-error", classes="error")
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Apply (ctrl+s)", id="submit", variant="primary")

    def on_mount(self) -> None:
        self.shares[0].focus()
        self._update_plan()

    @property
    def shares(self) -> list[Input]:
        return list(self.query(".share Input").results(Input))

    def action_move(self, step: int) -> None:
        shares = self.shares
        focused = self.focused
        index = shares.index(focused) if focused in shares else -step
        shares[(index + step) % len(shares)].focus()

    @on(Input.Changed, ".share Input")
    def _share_changed(self, event: Input.Changed) -> None:
        shares = self.shares
        if len(shares) == 2 and event.input.has_focus:  # the user's typing: balance the other
            other = shares[1 - shares.index(event.input)]
            try:
                rest = 100 - parse_share(event.value)
            except ValueError:
                pass
            else:
                with other.prevent(Input.Changed):
                    other.value = str(rest)
        self._update_plan()

    def _update_plan(self) -> None:
        from core.bluegreen import validate_traffic
        from core.errors import PhiopsError

        plan_view = self.query_one("#traffic-plan", Static)
        error = self.query_one("#traffic-error", Static)
        self.plan = None
        try:
            typed = {
                name: parse_share(share.value)
                for name, share in zip(self.names, self.shares, strict=True)
            }
            self.plan = validate_traffic(typed, self.names)
        except (ValueError, PhiopsError) as problem:
            plan_view.update("")
            say(error, str(problem))
            return
        say(error, "")
        if self.plan == self.current:
            plan_view.update("Type the new shares; this is the split now.")
            return
        changes = ", ".join(
            f"{name} {self.current[name]}% → {pct}%" for name, pct in self.plan.items()
        )
        plan_view.update(f"Apply sets: {changes}")

    @on(Input.Submitted)
    @on(Button.Pressed, "#submit")
    def action_submit(self) -> None:
        self._update_plan()
        if self.plan is None:
            return
        if self.plan == self.current:
            say(self.query_one("#traffic-error", Static), "That is the split already.")
            return
        self.dismiss(self.plan)
