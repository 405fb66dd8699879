"""The Jobs tab's submit form: the trainer's main options, checked before anything runs.

The form returns a `JobSpec`; the tab submits it in a worker. Numbers are checked here with
the same limits as `phiops train submit`, so a typo is one sentence under the form, not a
failed job a minute later. Empty fields are left to the trainer's defaults.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Checkbox, Input, Label, Static

from core.backend import JobSpec
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
    if form.lora:
        args.append("--lora")
    if form.assistant_only_loss:
        args.append("--assistant-only-loss")
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

    def __init__(self, form: SubmitForm, experiment_name: str, backend: str) -> None:
        super().__init__()
        self.form, self.experiment_name, self.backend = form, experiment_name, backend

    def compose(self) -> ComposeResult:
        form = self.form
        with Vertical(id="box"):
            yield Static(f"Submit a fine-tuning job ({self.backend} backend)", classes="title")
            with VerticalScroll():
                with Grid():
                    for key, label in (
                        ("display_name", "Display name"),
                        ("train_file", "Train file"),
                        ("eval_file", "Eval file"),
                        ("base_model", "Base model"),
                    ):
                        yield Label(label)
                        yield Input(getattr(form, key), id=f"submit-{key}", compact=True)
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
                yield Checkbox(
                    "LoRA adapter instead of every weight",
                    form.lora,
                    id="submit-lora",
                    compact=True,
                )
                yield Checkbox(
                    "Loss on the assistant's replies only",
                    form.assistant_only_loss,
                    id="submit-assistant_only_loss",
                    compact=True,
                )
                yield Static(
                    "Base model: a hub id or a local folder (`phiops model scaffold-tiny` "
                    "makes a tiny one that trains offline in a minute).",
                    classes="hint",
                    markup=False,
                )
            yield Static("", id="submit-error", classes="error")
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Submit (ctrl+s)", id="submit", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#submit-display_name", Input).focus()

    def read_form(self) -> SubmitForm:
        values = {
            key: self.query_one(f"#submit-{key}", Input).value
            for key in ("display_name", "train_file", "eval_file", "base_model", "extra")
        }
        values |= {key: self.query_one(f"#submit-{key}", Input).value for key, *_ in NUMBERS}
        values |= {
            key: self.query_one(f"#submit-{key}", Checkbox).value
            for key in ("lora", "assistant_only_loss")
        }
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
