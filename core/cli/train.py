"""`phiops train submit`: start a fine-tuning job on the local backend or Azure ML."""

from __future__ import annotations

import click

from core.backend import JobSpec
from core.cli.follow import raw_option
from core.cli.main import AppContext, pass_app
from core.cli.output import console, emit, err_console, json_option

# click option -> the trainer's flag; only the options given are passed on.
TRAINER_FLAGS = {
    "epochs": "--epochs",
    "learning_rate": "--learning-rate",
    "batch_size": "--batch-size",
    "max_length": "--max-length",
    "max_steps": "--max-steps",
    "save_steps": "--save-steps",
}


@click.group()
def train() -> None:
    """Submit a fine-tuning job."""


@train.command(
    "submit",
    context_settings={"ignore_unknown_options": False},
    epilog="Arguments after `--` go to the trainer unchanged, e.g. `-- --lora-r 16`.",
)
@click.option("--backend", type=click.Choice(["local", "azure"]), default=None)
@click.option(
    "--follow", "-f", is_flag=True, help="Follow the job until it ends: progress bar and log."
)
@raw_option
@click.option("--dry-run", is_flag=True, help="Print what would be submitted (Azure: as YAML).")
@click.option("--train-file", default=None, help="Training JSONL (default: train_data_path).")
@click.option("--eval-file", default=None, help="Evaluation JSONL (default: test_data_path).")
@click.option("--base-model", default=None, help="Hub id or local folder (default: base_model).")
@click.option("--display-name", default="", help="A readable name shown beside the job's name.")
@click.option("--instance-count", type=click.IntRange(1), default=1, help="Nodes (Azure).")
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help="Tag the job (repeat).")
@click.option("--epochs", type=click.FloatRange(min=0, min_open=True), default=None)
@click.option(
    "--learning-rate",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Peak learning rate (default: the trainer's, 5e-06 for a full fine-tune, 0.0002 "
    "with --lora).",
)
@click.option("--batch-size", type=click.IntRange(1), default=None, help="Per device.")
@click.option("--max-length", type=click.IntRange(1), default=None, help="Tokens per example.")
@click.option("--max-steps", type=click.IntRange(1), default=None, help="Stop after N steps.")
@click.option("--save-steps", type=click.IntRange(1), default=None, help="Checkpoint every N.")
@click.option("--lora", is_flag=True, help="Train a LoRA adapter instead of every weight.")
@click.option("--assistant-only-loss", is_flag=True, help="Compute the loss on replies only.")
@click.argument("extra", nargs=-1, type=click.UNPROCESSED)
@json_option
@pass_app
def submit(
    app: AppContext,
    backend: str | None,
    follow: bool,
    raw: bool,
    dry_run: bool,
    train_file: str | None,
    eval_file: str | None,
    base_model: str | None,
    display_name: str,
    instance_count: int,
    tags: tuple[str, ...],
    lora: bool,
    assistant_only_loss: bool,
    extra: tuple[str, ...],
    as_json: bool,
    **flags: float | int | None,
) -> None:
    """Fine-tune the base model on the train/test files named in phiops.toml."""
    config = app.config
    spec = JobSpec(
        train_file=train_file or config.train_data_path,
        eval_file=eval_file or config.test_data_path,
        base_model=base_model or config.base_model,
        trainer_args=trainer_args(flags, lora, assistant_only_loss, extra),
        display_name=display_name,
        experiment_name=config.experiment_name,
        instance_count=instance_count,
        tags=parse_tags(tags),
    )
    chosen = backend or config.backend
    if dry_run:
        show_plan(app, chosen, spec, as_json)
        return
    target = app.backend(chosen)
    if as_json:
        job = target.submit_job(spec)
    else:
        with err_console().status("Submitting…") as status:
            job = target.submit_job(spec, progress=lambda text: status.update(f"{text}…"))
    if follow:
        from core.cli.follow import follow_job, write_job

        write_job(job, as_json)
        raise SystemExit(follow_job(target, job.name, as_json, raw=raw))

    def human() -> None:
        console().print(f"Submitted [bold]{job.name}[/] ({job.status}).", highlight=False)
        console().print(f"Follow it with: phiops jobs logs {job.name} --follow", highlight=False)
        if job.studio_url:
            console().print(f"Azure ML studio: {job.studio_url}", highlight=False)

    emit(job.to_dict(), as_json, human)


def trainer_args(
    flags: dict, lora: bool, assistant_only_loss: bool, extra: tuple[str, ...]
) -> list[str]:
    """The trainer's command-line options for the flags given, then the pass-through ones."""
    args: list[str] = []
    for key, flag in TRAINER_FLAGS.items():
        if flags.get(key) is not None:
            args += [flag, str(flags[key])]
    if lora:
        args.append("--lora")
    if assistant_only_loss:
        args.append("--assistant-only-loss")
    return args + list(extra)


def parse_tags(tags: tuple[str, ...]) -> dict[str, str]:
    parsed = {}
    for tag in tags:
        key, sep, value = tag.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"'{tag}' is not KEY=VALUE", param_hint="--tag")
        parsed[key] = value
    return parsed


def show_plan(app: AppContext, backend: str, spec: JobSpec, as_json: bool) -> None:
    """What would be submitted, touching nothing. Azure: the SDK's own YAML."""
    if backend == "azure":
        from core.azure.jobs import plan

        planned = plan(app.config, spec)
        if as_json:
            import yaml

            documents = [yaml.safe_load(part) for part in planned.to_yaml().split("---\n")]
            emit(dict(zip(("job", "environment", "compute"), documents, strict=True)), True)
        else:
            click.echo(planned.to_yaml(), nl=False)
        return
    from core.jobcommon import FINE_TUNE

    data = {
        "backend": "local",
        "train_file": str(app.config.resolve(spec.train_file)),
        "eval_file": str(app.config.resolve(spec.eval_file)),
        "base_model": spec.base_model,
        "trainer": str(FINE_TUNE),
        "trainer_args": spec.trainer_args,
        "experiment_name": spec.experiment_name,
    }
    emit(data, as_json, lambda: click.echo(to_yaml(data)))


def to_yaml(data: dict) -> str:
    import yaml

    return yaml.safe_dump(data, sort_keys=False)
