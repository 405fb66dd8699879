# ruff: noqa: E501 -- the events are copied from a real job, one JSON object a line
"""The follow view: the trainer's events as a bar and lines that stay; metric dicts hidden.

The events and the log line are copied from a real local job of the tiny model (the
contract is `trainer/progress_events.py`); the end-to-end runs in a terminal are in
tests/test_jobs_local.py.
"""

from __future__ import annotations

import json

from core.cli.follow import TrainingView, is_metrics_line

EVENTS = [
    json.loads(line)
    for line in """\
{"time": 1796052780.026, "phase": "setup", "message": "validating data"}
{"time": 1796052793.165, "phase": "loading", "message": "loading /tmp/demo/models/tiny"}
{"time": 1796052800.036, "phase": "training", "step": 0, "max_steps": 12, "epoch": 0, "message": "training started"}
{"time": 1796052803.549, "phase": "training", "step": 1, "max_steps": 12, "epoch": 0.027778, "loss": 6.871584, "learning_rate": 0.0, "tokens_per_second": 145.775032, "eta_seconds": 38.638946}
{"time": 1796052805.344, "phase": "training", "step": 2, "max_steps": 12, "epoch": 0.055556, "tokens_per_second": 192.913087, "eta_seconds": 26.540515}
{"time": 1796052822.724, "phase": "training", "step": 12, "max_steps": 12, "epoch": 0.333333, "eta_seconds": 0.0, "message": "checkpoint-12 saved"}
{"time": 1796052822.724, "phase": "evaluating", "step": 12, "max_steps": 12, "epoch": 0.333333, "eta_seconds": 0.0, "message": "evaluating"}
{"time": 1796052826.76, "phase": "evaluating", "step": 12, "max_steps": 12, "epoch": 0.333333, "eval_loss": 6.844293, "eta_seconds": 0.0}
{"time": 1796052826.883, "phase": "saving", "step": 12, "max_steps": 12, "message": "saving the model"}
{"time": 1796052828.84, "phase": "done", "message": "model saved to /tmp/demo/model"}
""".splitlines()
]
METRICS_LINE = (
    "{'loss': '6.872', 'grad_norm': '2.891', 'learning_rate': '0', 'entropy': '6.843', "
    "'mean_token_accuracy': '0', 'num_tokens': '512', 'epoch': '0.02778', "
    "'num_input_tokens_seen': 512, 'train_runtime': '3.513', 'train_tokens_per_second': '145.8'}"
)


def test_lines_that_stay_are_phases_checkpoints_and_evaluations() -> None:
    view = TrainingView()
    assert view.feed(EVENTS[:4]) == [
        ("setup", "validating data"),
        ("loading", "loading /tmp/demo/models/tiny"),
        ("training", "training started at step 0/12, epoch 0.00"),
    ]
    assert (view.phase, view.steps()) == ("training", (1, 12))
    assert view.info(80) == "epoch 0.03 · loss 6.8716 · 146 tok/s · ETA 0:39"
    assert view.feed(EVENTS[4:]) == [
        ("training", "checkpoint-12 saved at step 12/12, epoch 0.33"),
        ("evaluated", "eval loss 6.8443 at step 12/12, epoch 0.33"),
        ("saving", "saving the model"),
        ("done", "model saved to /tmp/demo/model"),
    ]
    assert view.steps() == (12, 12)
    assert view.info(80) == "epoch 0.33 · loss 6.8716 · eval 6.8443 · 193 tok/s"


def test_the_figures_fit_the_width_least_needed_first() -> None:
    view = TrainingView()
    view.feed(EVENTS[:5])
    assert view.info(200) == "epoch 0.06 · loss 6.8716 · 193 tok/s · ETA 0:27"
    assert view.info(40) == "epoch 0.06 · loss 6.8716 · ETA 0:27"
    assert view.info(25) == "loss 6.8716 · ETA 0:27"
    assert view.info(5) == "loss 6.8716"


def test_only_the_trainers_metric_dicts_are_metrics_lines() -> None:
    assert is_metrics_line(METRICS_LINE)
    assert is_metrics_line("{'eval_loss': '6.844', 'eval_runtime': '4.034', 'epoch': '0.3333'}")
    assert not is_metrics_line("Data: 286 training rows, 71 evaluation rows")
    assert not is_metrics_line('{"loss": 1.0}')  # JSON a user printed, not the trainer's dict
