"""The whole pipeline on the local backend, as `phiops demo` runs it.

Each step first looks for what an earlier run left and reuses it, so a second run takes
seconds: the sample data (by its manifest), the tiny base model (by its config), the
fine-tuned model (a Completed job tagged with the recipe's fingerprint), its registered
version, and the endpoint serving it. Steps report through `report(step, message)` so the
CLI (and a test) can show progress without this module printing anything.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.backend import Backend, EndpointInfo, JobInfo, JobSpec, JobStatus, ModelVersion
from core.config import Config, load_config, write_config_values
from core.errors import PhiopsError

# A recipe a 2-core CPU finishes in well under a minute and that makes the Phi-3-mini twin
# answer the sample's questions on theme: a high learning rate for a model trained from
# scratch, and the trainer's bfd packing (whole conversations, each attending only to
# itself) of ~5 conversations per 256-token row. The twin answered all five sample questions
# after 7 epochs of a 30-epoch schedule; 12 leave a margin.
DEMO_RECIPE = [
    "--epochs", "12",
    "--learning-rate", "3e-3",
    "--warmup", "0.05",
    "--batch-size", "2",
    "--max-length", "256",
    "--logging-steps", "10",
    "--save-steps", "200",
]  # fmt: skip
DEMO_TAG = "phiops.demo"
BASE_MODEL_DIR = "models/tiny-phi3"
BASE_MODEL_PATH = f".phiops/{BASE_MODEL_DIR}"  # as written in a new phiops.toml
# The proof: both models answer the test split greedily, answers as long as the chat's.
EVAL_MAX_NEW_TOKENS = 80
QUESTIONS = Path(__file__).resolve().parent / "data" / "sample" / "questions.json"

Report = Callable[[str, str], None]


def sample_questions() -> list[str]:
    return [item["question"] for item in json.loads(QUESTIONS.read_text())["questions"]]


@dataclass
class DemoResult:
    """What the run produced, and which steps reused an earlier run's work."""

    config_path: str = ""
    train_file: str = ""
    test_file: str = ""
    base_model: str = ""
    job: str = ""
    model: str = ""
    endpoint: str = ""
    scoring_uri: str = ""
    question: str = ""
    answer: str = ""
    evaluation: dict[str, Any] = field(default_factory=dict)
    reused: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


def ensure_project(config: Config) -> Config:
    """A phiops.toml for the local backend where none exists (its base model the demo's, so
    `phiops eval --base` and `train submit` work after the demo); an existing one is kept."""
    if not config.path.exists():
        write_config_values(config.path, {"backend": "local", "base_model": BASE_MODEL_PATH})
        return load_config(config.path)
    return config


def data_files(config: Config, report: Report) -> tuple[Path, Path, bool]:
    """The sample split into the project's data files, or beside them if those hold other data.

    Returns (train, test, reused)."""
    from core.data.prepare import MANIFEST_NAME, prepare
    from core.data.sources import sample_source

    train = config.resolve(config.train_data_path)
    test = config.resolve(config.test_data_path)
    if train.exists() or test.exists():
        if _holds_sample(train, test, train.parent / MANIFEST_NAME):
            report("data", f"reusing the sample dataset in {_shown(train.parent, config)}")
            return train, test, True
        folder = config.store_path / "demo-data"
        report("data", f"{_shown(train, config)} holds your own data; the demo uses its own copy")
        train, test = folder / "train_data.jsonl", folder / "test_data.jsonl"
        if _holds_sample(train, test, folder / MANIFEST_NAME):
            return train, test, True
    result = prepare(sample_source(), train, test)
    report(
        "data",
        f"wrote {result.train.rows} training and {result.test.rows} test conversations "
        f"about Brindlemoor to {_shown(train.parent, config)}",
    )
    return train, test, False


def _holds_sample(train: Path, test: Path, manifest_path: Path) -> bool:
    """Both files exist, came from the sample, and still hash to what the manifest says."""
    if not (train.is_file() and test.is_file() and manifest_path.is_file()):
        return False
    try:
        manifest = json.loads(manifest_path.read_text())
        files = manifest["files"]
        if manifest["source"].get("kind") != "sample":
            return False
        return all(
            _sha256(path) == files[role]["sha256"]
            for role, path in (("train", train), ("test", test))
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def base_model(config: Config, train: Path, test: Path, report: Report) -> tuple[Path, bool]:
    """The Phi-3-mini twin (tokenizer pieces learned from the sample) in the local store."""
    from core.cli.model import run_scaffold_tiny

    folder = config.store_path / BASE_MODEL_DIR
    if (folder / "config.json").is_file() and (folder / "tokenizer.json").is_file():
        report("base model", f"reusing the Phi-3-mini twin in {_shown(folder, config)}")
        return folder, True
    summary = run_scaffold_tiny(folder, [train, test], "tiny")
    report(
        "base model",
        f"built a Phi-3-mini twin offline: {summary['architecture']}, Phi-3-mini's "
        f"vocabulary ({summary['vocab_size']}) and tokens, {summary['layers']} layers of "
        f"{summary['hidden_size']}",
    )
    return folder, False


def fingerprint(train: Path, test: Path, model: Path, recipe: list[str]) -> str:
    """What makes two demo trainings the same: the data, the base model and the recipe."""
    digest = hashlib.sha256()
    for part in (_sha256(train), _sha256(test), _sha256(model / "model.safetensors"), *recipe):
        digest.update(part.encode())
    return digest.hexdigest()[:16]


def finished_job(backend: Backend, tag: str) -> JobInfo | None:
    """The newest Completed demo job trained from the same inputs, if any."""
    for job in backend.jobs():  # newest first
        if job.tags.get(DEMO_TAG) == tag and job.status == JobStatus.COMPLETED:
            return job
    return None


def running_job(backend: Backend, tag: str) -> JobInfo | None:
    """A demo job for the same inputs still on its way (a run interrupted while following)."""
    for job in backend.jobs():
        if job.tags.get(DEMO_TAG) == tag and not job.status.is_final:
            return job
    return None


def submit_training(
    backend: Backend,
    config: Config,
    train: Path,
    test: Path,
    model: Path,
    tag: str,
    recipe: list[str],
) -> JobInfo:
    spec = JobSpec(
        train_file=str(train),
        eval_file=str(test),
        base_model=str(model),
        trainer_args=list(recipe),
        display_name="phiops demo: Brindlemoor guide",
        experiment_name=config.experiment_name,
        tags={DEMO_TAG: tag},
    )
    return backend.submit_job(spec)


def _shown(path: Path, config: Config) -> str:
    """A path relative to the project when it is inside it, for short messages."""
    try:
        return str(path.relative_to(config.project_dir))
    except ValueError:
        return str(path)


@dataclass
class Demo:
    """The local pipeline, step by step; `follow(job)` shows a running job's log."""

    config: Config
    report: Report
    follow: Callable[[Backend, str], int]
    recipe: list[str] = field(default_factory=lambda: list(DEMO_RECIPE))

    def run(self, question: str | None = None) -> DemoResult:
        import time

        self.config = ensure_project(self.config)
        result = DemoResult(config_path=str(self.config.path))
        backend = self._backend()
        clock = time.perf_counter()

        def lap(step: str, reused: bool) -> None:
            nonlocal clock
            now = time.perf_counter()
            result.seconds[step] = round(now - clock, 1)
            clock = now
            if reused:
                result.reused.append(step)

        train, test, reused = data_files(self.config, self.report)
        result.train_file, result.test_file = str(train), str(test)
        lap("data", reused)
        model_dir, reused = base_model(self.config, train, test, self.report)
        result.base_model = str(model_dir)
        lap("base model", reused)
        job, reused = self.train(backend, train, test, model_dir)
        result.job = job.name
        lap("training", reused)
        version, reused = self.register(backend, job)
        result.model = version.ref
        lap("registry", reused)
        endpoint, reused = self.deploy(backend, version)
        result.endpoint, result.scoring_uri = endpoint.name, endpoint.scoring_uri
        lap("endpoint", reused)
        result.question = question or sample_questions()[0]
        result.answer = self.ask(result.question)
        lap("chat", False)
        result.evaluation, reused = self.evaluate(backend, endpoint, model_dir, test)
        lap("evaluation", reused)
        return result

    def _backend(self) -> Backend:
        from core.backends import get_backend

        return get_backend(self.config, "local")

    def train(self, backend: Backend, train: Path, test: Path, model: Path) -> tuple[JobInfo, bool]:
        tag = fingerprint(train, test, model, self.recipe)
        done = finished_job(backend, tag)
        if done is not None:
            self.report("training", f"reusing {done.name}, trained on the same data and recipe")
            return done, True
        job = running_job(backend, tag)
        if job is not None:
            self.report("training", f"{job.name} is still {job.status}; following it")
        else:
            job = submit_training(backend, self.config, train, test, model, tag, self.recipe)
            self.report("training", f"fine-tuning as local job {job.name} (log below)")
        if self.follow(backend, job.name) != 0:
            job = backend.job_status(job.name)
            raise PhiopsError(
                f"the demo's training job {job.name} ended {job.status}"
                + (f": {job.error}" if job.error else "")
                + f"; see `phiops jobs logs {job.name}`"
            )
        return backend.job_status(job.name), False

    def register(self, backend: Backend, job: JobInfo) -> tuple[ModelVersion, bool]:
        for version in backend.models(self.config.model_name):
            if version.job_name == job.name:
                self.report("registry", f"reusing model {version.ref}")
                return version, True
        version = backend.register_model(job.name, self.config.model_name)
        self.report("registry", f"registered {version.ref} from {job.name}")
        return version, False

    def deploy(self, backend: Backend, version: ModelVersion) -> tuple[EndpointInfo, bool]:
        from core.errors import NotFoundError

        name = self.config.endpoint_name
        try:
            endpoint = backend.endpoint(name)
        except NotFoundError:
            endpoint = None
        if endpoint is not None and serves(endpoint, version, live=False):
            if not serves(endpoint, version, live=True):
                self.report("endpoint", f"starting endpoint {name} again")
                control = backend.endpoint_control()
                assert control is not None, "the demo runs on the local backend"
                endpoint = control.start(name, progress=lambda text: self.report("endpoint", text))
            self.report("endpoint", f"endpoint {name} already serves {version.ref}")
            return endpoint, True
        endpoint = backend.deploy(
            version, name, traffic=100, progress=lambda text: self.report("endpoint", text)
        )
        self.report("endpoint", f"endpoint {name} serves {version.ref} at {endpoint.scoring_uri}")
        return endpoint, False

    def ask(self, question: str) -> str:
        """One question through the Prompt flow flow in-process, greedy, in a new session."""
        import asyncio

        from core.chat.service import (
            AnswerDelta,
            AnswerDone,
            AnswerFailed,
            ChatService,
            GenerationParams,
        )

        service = ChatService(self.config, backend_factory=self._backend)

        async def conversation() -> str:
            session = service.store.create(title="phiops demo", route="flow")
            params = GenerationParams(temperature=0, max_new_tokens=80)
            try:
                async for event in service.ask(session.id, question, params=params):
                    if isinstance(event, AnswerDelta):
                        self.report("answer", event.text)
                    elif isinstance(event, AnswerDone):
                        return event.answer
                    elif isinstance(event, AnswerFailed):
                        raise PhiopsError(f"the flow could not answer: {event.message}")
            finally:
                await service.aclose()
            raise PhiopsError("the flow ended without an answer")

        self.report("chat", f"asking the flow: {question}")
        return asyncio.run(conversation())

    def evaluate(
        self, backend: Backend, endpoint: EndpointInfo, base: Path, test: Path
    ) -> tuple[dict[str, Any], bool]:
        """The proof: the fine-tuned deployment against the base model on the test split
        (fresh earlier results of the same models and data are reused)."""
        from core.eval.compare import compare
        from core.eval.generate import Params
        from core.eval.runner import EvalOptions, Evaluation
        from core.eval.targets import TargetSpec

        say = lambda text: self.report("evaluation", text)  # noqa: E731
        evaluation = Evaluation(self.config, backend, say=say)
        options = EvalOptions(data=str(test), params=Params(max_new_tokens=EVAL_MAX_NEW_TOKENS))
        say("scoring the fine-tuned model and the base model on the test split")
        tuned, tuned_reused = evaluation.reuse_or_run(
            TargetSpec.endpoint_of(endpoint.name), options
        )
        untuned, base_reused = evaluation.reuse_or_run(TargetSpec.base_of(str(base)), options)
        comparison = compare(untuned, tuned)
        change = comparison.metric("rougeL")
        summary = {
            "metric": "rougeL",
            "fine_tuned": tuned.aggregates.get("rougeL"),
            "base": untuned.aggregates.get("rougeL"),
            "change": change.change if change else None,
            "verdict": change.verdict if change else "",
            "rows": comparison.paired,
            "fine_tuned_run": tuned.run_id,
            "base_run": untuned.run_id,
        }
        say(proof_sentence(summary))
        return summary, tuned_reused and base_reused


def proof_sentence(summary: dict[str, Any]) -> str:
    """ "fine-tuned ROUGE-L 0.61 (0.57–0.65) against the base model's 0.04 (…): better" """

    def shown(figures: dict[str, Any] | None) -> str:
        if not figures or figures.get("value") is None:
            return "–"
        return f"{figures['value']:.2f} ({figures['low']:.2f}–{figures['high']:.2f})"

    verdict = {
        "better": "fine-tuning clearly helped",
        "worse": "fine-tuning made it worse",
        "no clear change": "no clear difference",
    }.get(summary.get("verdict", ""), "")
    return (
        f"ROUGE-L on {summary.get('rows', 0)} test conversations: fine-tuned "
        f"{shown(summary.get('fine_tuned'))}, base {shown(summary.get('base'))}"
        + (f" — {verdict}" if verdict else "")
    )


def serves(endpoint: EndpointInfo, model: ModelVersion, *, live: bool) -> bool:
    """The endpoint sends all its traffic to a deployment of `model` (running, if `live`)."""
    for deployment in endpoint.deployments:
        if deployment.model != model.ref or endpoint.traffic.get(deployment.name, 0) != 100:
            continue
        if not live or (deployment.state == "Succeeded" and endpoint.state == "Succeeded"):
            return True
    return False


def down(config: Config) -> dict[str, list[str]]:
    """Stop every local server phiops started for the project: endpoints and flow servers,
    each on its own; `problems` says which records could not be read."""
    from core.chat.flowserve import stop_flow_servers
    from core.local.endpoints import LocalEndpoints
    from core.local.registry import LocalRegistry

    local = LocalEndpoints(config, LocalRegistry(config))
    endpoints = local.stop_all()
    problems = list(local.problems)
    flows = [record.url for record in stop_flow_servers(config, problems=problems)]
    return {"endpoints": endpoints, "flow_servers": flows, "problems": problems}
