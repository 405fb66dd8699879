"""The trainer's hooks into the training loop: progress events, MLflow metrics, checkpoints.

They live apart from the modules they report to so that those stay free of heavy imports:
a bad data row or a usage error is reported before torch and transformers load.
"""

from __future__ import annotations

from typing import Any

from checkpoints import GracefulStop
from mlflow_tracking import METRICS, Tracking
from progress_events import EventLog, ThroughputMeter
from transformers import TrainerCallback


class ProgressEventsCallback(TrainerCallback):
    """Writes a `training` event each optimizer step (with loss when the trainer logs one),
    `evaluating` events around evaluation, and keeps `tokens_per_second` for others to log."""

    def __init__(self, events: EventLog, meter: ThroughputMeter) -> None:
        self.events = events
        self.meter = meter
        self._last_tokens_step = -1

    def _progress(self, state) -> dict[str, Any]:
        return {
            "step": state.global_step,
            "max_steps": state.max_steps,
            "epoch": state.epoch,
            "eta_seconds": self.meter.eta_seconds(state.global_step, state.max_steps),
        }

    def on_train_begin(self, args, state, control, **kwargs):
        self.meter.start(state.global_step, state.num_input_tokens_seen)
        self.events.emit("training", **self._progress(state), message="training started")

    def on_step_end(self, args, state, control, **kwargs):
        if self._last_tokens_step != state.global_step:
            self.meter.update(state.num_input_tokens_seen)
            self._last_tokens_step = state.global_step
        if not control.should_log:  # on_log writes this step's event, with its loss
            self.events.emit(
                "training", **self._progress(state), tokens_per_second=self.meter.tokens_per_second
            )
        if control.should_evaluate:
            self.events.emit("evaluating", **self._progress(state), message="evaluating")

    def on_epoch_end(self, args, state, control, **kwargs):
        if control.should_evaluate:
            self.events.emit("evaluating", **self._progress(state), message="evaluating")

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        if "loss" in logs:
            self.events.emit(
                "training",
                **self._progress(state),
                loss=logs["loss"],
                learning_rate=logs.get("learning_rate"),
                tokens_per_second=self.meter.tokens_per_second,
            )
        if "eval_loss" in logs:
            self.events.emit("evaluating", **self._progress(state), eval_loss=logs["eval_loss"])

    def on_evaluate(self, args, state, control, **kwargs):
        self.meter.skip()

    def on_save(self, args, state, control, **kwargs):
        self.meter.skip()
        self.events.emit(
            "training", **self._progress(state), message=f"checkpoint-{state.global_step} saved"
        )


class MetricsCallback(TrainerCallback):
    """Sends the trainer's logs to MLflow at each logging step, with `step` = global step."""

    def __init__(self, tracking: Tracking, meter) -> None:
        self.tracking = tracking
        self.meter = meter

    def on_log(self, args, state, control, logs=None, **kwargs):
        metrics = {key: float(logs[key]) for key in METRICS if key in (logs or {})}
        if "loss" in metrics and self.meter.tokens_per_second:
            metrics["tokens_per_second"] = self.meter.tokens_per_second
        self.tracking.log_metrics(metrics, step=state.global_step)


def _agreed(flag: bool, device) -> bool:
    """True when any rank was signalled, so that all ranks save the same step together."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return flag
    import torch

    tensor = torch.tensor([int(flag)], device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return bool(tensor.item())


class CheckpointCallback(TrainerCallback):
    """Saves at the end of each epoch (besides every `save_steps`) and on a stop request."""

    def __init__(self, stop: GracefulStop) -> None:
        self.stop = stop
        self.last_saved_step = -1
        self.stopped_at: int | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.stop.deferred = True

    def on_train_end(self, args, state, control, **kwargs):
        self.stop.deferred = False

    def on_step_end(self, args, state, control, **kwargs):
        if _agreed(self.stop.requested, args.device):
            self.stop.requested = True
            self.stopped_at = state.global_step
            control.should_save = True
            control.should_training_stop = True
            control.should_evaluate = False
        return control

    def on_epoch_end(self, args, state, control, **kwargs):
        if self.stopped_at is not None:
            control.should_evaluate = False
            control.should_save = state.global_step != self.last_saved_step
        elif state.global_step != self.last_saved_step:
            control.should_save = True
        return control

    def on_save(self, args, state, control, **kwargs):
        self.last_saved_step = state.global_step
