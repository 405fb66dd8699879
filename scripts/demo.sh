#!/usr/bin/env bash
# The README's first command: set up .venv if needed, then run the local pipeline end to end.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/bootstrap.sh"
cd "$root"
exec .venv/bin/phiops demo "$@"
