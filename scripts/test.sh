#!/usr/bin/env bash
# The README's test command: set up .venv if needed, then lint and run the whole test suite.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/bootstrap.sh"
cd "$root"
.venv/bin/ruff check .
.venv/bin/ruff format --check . >/dev/null || { .venv/bin/ruff format --diff .; exit 1; }
exec .venv/bin/python -m pytest "$@"
