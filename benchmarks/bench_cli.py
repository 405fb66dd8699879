"""Benchmark the CLI's "answers at once" budgets, which tests used to assert with a stopwatch.

Each figure is the best of `--repeat` runs of the real console script (or interpreter),
interleaved with the baseline, `phiops --help` (the interpreter and the CLI frame), so the
load on the machine hits both alike; a budget is a ratio to that baseline:
- `import core.config` (what every command loads first): its cumulative `-X importtime`,
  budget 150 ms (the import itself, not process start-up, so an absolute figure);
- the local backend's resources findings (the TUI's Resources tab opens with them);
- `phiops resources check` with no Azure login: one sentence, no managed-identity probe;
- `phiops data prepare --source someone/chats` with the hub unreachable: one connect
  decides, instead of ~25 s of retries.

    python benchmarks/bench_cli.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
BUDGETS = {
    "import_core_config_ms": 150,
    "local_findings_ratio": 3.0,
    "not_signed_in_ratio": 8.0,
    "hub_unreachable_ratio": 25.0,  # it imports `datasets` (seconds); the retries were ~25 s
}
FINDINGS = (
    "from core.config import load_config; from core.local.resources import local_findings;"
    "local_findings(load_config())"
)


def timed(command: list[str], cwd: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=env, capture_output=True, check=False)
    return time.perf_counter() - started


def import_ms(module: str) -> float:
    stderr = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    ).stderr
    for line in stderr.splitlines():
        parts = [part.strip() for part in line.split("|")]
        if len(parts) == 3 and parts[2] == module:
            return int(parts[1]) / 1000
    raise RuntimeError(f"{module} not in -X importtime output")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    project = Path(tempfile.mkdtemp(prefix="bench-cli-"))
    (project / "phiops.toml").write_text('[project]\nbackend = "local"\n')
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "MSI_"))}
    base_env.pop("IDENTITY_ENDPOINT", None)
    no_login = {**base_env, "AZURE_CONFIG_DIR": str(project / "no-az-login")}
    offline = {
        **base_env,
        "HF_HUB_OFFLINE": "0",
        "HF_DATASETS_OFFLINE": "0",
        "TRANSFORMERS_OFFLINE": "0",
        "HF_ENDPOINT": "http://127.0.0.1:9",
    }
    phiops = str(BIN / "phiops")
    commands = {
        "baseline": ([phiops, "--help"], base_env),
        "local_findings": ([sys.executable, "-c", FINDINGS], {**base_env, "PYTHONPATH": str(REPO)}),
        "not_signed_in": ([phiops, "resources", "check", "--backend", "azure"], no_login),
        "hub_unreachable": ([phiops, "data", "prepare", "--source", "someone/chats"], offline),
    }
    (project / "phiops.toml").write_text(
        '[project]\nbackend = "local"\n[azure]\nsubscription_id = '
        '"00000000-0000-0000-0000-000000000000"\nresource_group = "rg"\nworkspace = "ws"\n'
    )
    runs: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.repeat):
        for name, (command, env) in commands.items():
            runs[name].append(timed(command, project, env))
    imports = [import_ms("core.config") for _ in range(args.repeat)]

    baseline = min(runs["baseline"])
    results: dict = {
        "machine": {"cpus": os.cpu_count(), "load": os.getloadavg()[0]},
        "baseline_phiops_help_s": round(baseline, 3),
        "import_core_config": {
            "ms": round(min(imports), 1),
            "budget_ms": BUDGETS["import_core_config_ms"],
            "pass": min(imports) <= BUDGETS["import_core_config_ms"],
        },
    }
    for name in ("local_findings", "not_signed_in", "hub_unreachable"):
        ratio = min(runs[name]) / baseline
        budget = BUDGETS[f"{name}_ratio"]
        results[name] = {
            "seconds": round(min(runs[name]), 3),
            "ratio_to_baseline": round(ratio, 2),
            "budget_ratio": budget,
            "pass": ratio <= budget,
        }
    results["pass"] = all(
        value["pass"] for value in results.values() if isinstance(value, dict) and "pass" in value
    )
    print(json.dumps(results, indent=2))
    return 0 if results["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
