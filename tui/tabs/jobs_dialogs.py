"""The Jobs tab's submit form: the trainer's main options, checked before anything runs.

The form returns a `JobSpec`; the tab submits it in a worker. Numbers are checked here with
the same limits as `phiops train submit`, so a typo is one sentence under the form, not a
failed job a minute later. Empty fields are left to the trainer's defaults. The form opens
on the base model that can work (`default_base_model`: the configured one, else the one
last used, else a model folder of the project), offers the project's model folders, and
can be filled from a job's own settings (`form_from_spec`) to submit it again.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.widgets import Button, Checkbox, Input, Label, Static

from core.backend import JobInfo, JobSpec

if TYPE_CHECKING:
    pass
from tui.screens import Modal, say

# (field id, label, trainer flag, type); type int/float must be > 0
NUMBERS = [
    ("epochs", "Epochs", "--epochs", float),
    ("learning_rate", "Learning rate", "--learning-rate", float),
    ("batch_size", "Batch size", "--batch-size", int),
    ("max_length", "Max length", "--max-length", int),
    ("max_steps", "Max steps", "--max-steps", int),
    ("save_steps", "Save every", "--save-steps", int),
]


@dataclass
class SubmitForm:
    """The form's text, as typed."""

    display_name: str = ""
    train_file: str = ""
    eval_file: str = ""
    base_model: str = ""
    epochs: str = ""
    learning_rate: str = ""
    batch_size: str = ""
    max_length: str = ""
    max_steps: str = ""
    save_steps: str = ""
    lora: bool = False
    assistant_only_loss: bool = False
    extra: str = ""


SWITCHES = [("lora", "--lora"), ("assistant_only_loss", "--assistant-only-loss")]
SKIP_DIRS = {".git", ".venv", "venv", "node_modules", "__pycache__", "jobs", "data"}


def form_from_spec(spec: JobSpec) -> SubmitForm:
    """The form that submits `spec` again: its numbers and switches in their fields, any
    other trainer option in "Other options"."""
    values: dict[str, str | bool] = {}
    rest: list[str] = []
    flags = {flag: key for key, _, flag, _ in NUMBERS}
    switches = {flag: key for key, flag in SWITCHES}
    args = list(spec.trainer_args)
    while args:
        arg = args.pop(0)
        if arg in flags and args:
            values[flags[arg]] = args.pop(0)
        elif arg in switches:
            values[switches[arg]] = True
        else:
            rest.append(arg)
    return SubmitForm(
        display_name=spec.display_name,
        train_file=spec.train_file,
        eval_file=spec.eval_file,
        base_model=spec.base_model,
        extra=shlex.join(rest),
        **values,  # type: ignore[arg-type]
    )


def local_models(project: Path, store: Path) -> list[str]:
    """Model folders (a `config.json` beside a tokenizer) in the project, at most three
    levels down, and in the local store's `models/`: base models that work offline. As the
    form shows them: relative to the project when inside it."""
    found: list[Path] = []
    for root in (store / "models", project):
        if not root.is_dir():
            continue
        base_depth = len(root.parts)
        for folder, dirs, files in os.walk(root):
            dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.startswith("."))
            if len(Path(folder).parts) - base_depth >= 3:
                dirs[:] = []
            if "config.json" in files and any(name.startswith("tokenizer") for name in files):
                found.append(Path(folder))
                dirs[:] = []
    shown = []
    for path in sorted(set(found)):
        try:
            shown.append(str(path.relative_to(project)))
        except ValueError:
            shown.append(str(path))
    return shown


def default_base_model(configured: str | None, jobs: Iterable[JobInfo], models: list[str]) -> str:
    """The base model the form opens with: the one phiops.toml (or PHIOPS_BASE_MODEL) sets,
    else the one the newest job used, else a local model folder; None of those: ""."""
    if configured:
        return configured
    for job in sorted(jobs, key=lambda job: job.created_at or 0, reverse=True):
        if job.spec is not None and job.spec.base_model:
            return job.spec.base_model
    return models[0] if models else ""


class ReadableCheckbox(Checkbox):
    """A checkbox that says `[x]` or `[ ]`: its state reads the same in 16 colours (the
    stock one tells on from off by colour alone)."""

    @property
    def _button(self) -> Content:
        return Content.assemble(("[x]" if self.value else "[ ]", "bold"))


def build_spec(form: SubmitForm, experiment_name: str) -> JobSpec:
    """The job the form describes, or ValueError with the sentence to show."""
    for value, what in ((form.train_file, "training file"), (form.eval_file, "evaluation file")):
        if not value.strip():
            raise ValueError(f"Give the {what}.")
    if not form.base_model.strip():
        raise ValueError("Give the base model: a hub id or a local folder.")
    args: list[str] = []
    for key, label, flag, kind in NUMBERS:
        text = getattr(form, key).strip()
        if not text:
            continue
        try:
            number = kind(text)
        except ValueError:
            noun = "a whole number" if kind is int else "a number"
            raise ValueError(f"{label} must be {noun}, not {text!r}.") from None
        if number <= 0:
            raise ValueError(f"{label} must be above 0, not {text}.")
        args += [flag, text]
    args += [flag for key, flag in SWITCHES if getattr(form, key)]
    try:
        args += shlex.split(form.extra)
    except ValueError as error:
        raise ValueError(f"Other trainer options cannot be read: {error}.") from None
    return JobSpec(
        train_file=form.train_file.strip(),
        eval_file=form.eval_file.strip(),
        base_model=form.base_model.strip(),
        trainer_args=args,
        display_name=form.display_name.strip(),
        experiment_name=experiment_name,
    )


class SubmitScreen(Modal[JobSpec]):
    """Submit a fine-tuning job; returns a `JobSpec`, or None if the user leaves."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "submit", "Submit", id="submit.submit")
    ]

    def __init__(
        self,
        form: SubmitForm,
        experiment_name: str,
        backend: str,
        *,
        models: Iterable[str] = (),
        title: str = "Submit a fine-tuning job",
    ) -> None:
        super().__init__()
        self.form, self.experiment_name, self.backend = form, experiment_name, backend
        self.models, self.title_text = list(models), title

    def compose(self) -> ComposeResult:
        form = self.form
        with Vertical(id="box"):
            yield Static(f"{self.title_text} ({self.backend} backend)", classes="title")
            with VerticalScroll():
                with Grid():
                    for key, label in (
                        ("display_name", "Display name"),
                        ("train_file", "Train file"),
                        ("eval_file", "Eval file"),
                        ("base_model", "Base model"),
                    ):
                        yield Label(label)
                        yield Input(
                            getattr(form, key),
                            id=f"submit-{key}",
                            compact=True,
                            suggester=self._suggester(key),
                        )
                    for key, label, _, kind in NUMBERS:
                        yield Label(label)
                        yield Input(
                            getattr(form, key),
                            id=f"submit-{key}",
                            compact=True,
                            type="integer" if kind is int else "number",
                            placeholder="trainer default",
                        )
                    yield Label("Other options")
                    yield Input(
                        form.extra,
                        id="submit-extra",
                        compact=True,
                        placeholder="e.g. --lora-r 8 --seed 1",
                    )
                yield ReadableCheckbox(
                    "LoRA adapter instead of every weight",
                    form.lora,
                    id="submit-lora",
                    compact=True,
                )
                yield ReadableCheckbox(
                    "Loss on the assistant's replies only",
                    form.assistant_only_loss,
                    id="submit-assistant_only_loss",
                    compact=True,
                )
                yield Static(self._base_model_hint(), classes="hint", markup=False)
            yield Static("", id="submit-error", classes="error")
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Submit (ctrl+s)", id="submit", variant="primary")

    def _suggester(self, key: str):
        from textual.suggester import SuggestFromList

        return SuggestFromList(self.models) if key == "base_model" and self.models else None

    def _base_model_hint(self) -> str:
        if self.models:
            shown = ", ".join(self.models[:3]) + (", …" if len(self.models) > 3 else "")
            return (
                f"Base model: this project's model folders work offline ({shown}; → accepts "
                "the suggestion), or a hub id (the hub must be reachable)."
            )
        return (
            "Base model: a local folder, or a hub id (the hub must be reachable; offline, "
            "`phiops model scaffold-tiny` makes a tiny model that trains in a minute)."
        )

    def on_mount(self) -> None:
        self.query_one("#submit-display_name", Input).focus()

    def read_form(self) -> SubmitForm:
        values = {
            key: self.query_one(f"#submit-{key}", Input).value
            for key in ("display_name", "train_file", "eval_file", "base_model", "extra")
        }
        values |= {key: self.query_one(f"#submit-{key}", Input).value for key, *_ in NUMBERS}
        values |= {key: self.query_one(f"#submit-{key}", Checkbox).value for key, _ in SWITCHES}
        return SubmitForm(**values)

    @on(Input.Submitted)
    def _next_field(self) -> None:
        self.focus_next()  # Enter moves on; submitting a job takes ctrl+s or the button

    @on(Button.Pressed, "#submit")
    def action_submit(self) -> None:
        try:
            spec = build_spec(self.read_form(), self.experiment_name)
        except ValueError as error:
            say(self.query_one("#submit-error", Static), str(error))
            return
        self.form = self.read_form()  # the tab keeps it should the backend refuse the job
        self.dismiss(spec)
