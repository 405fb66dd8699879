#!/usr/bin/env bash
# Creates or refreshes .venv so that both README commands work on a fresh machine.
# torch goes in first with a pin (a CPU wheel lies on disk here; any other spec pulls a
# multi-GB CUDA build), unless the venv already holds a torch, so a GPU user keeps theirs.
# A stamp of the install inputs makes a second run with nothing changed take seconds.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
python_bin="${PHIOPS_PYTHON:-}"
if [[ -z "$python_bin" ]]; then
    for candidate in python3.11 python3; do
        if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
            python_bin="$candidate"; break
        fi
    done
fi
[[ -n "$python_bin" ]] || { echo "phiops needs Python 3.11 (set PHIOPS_PYTHON to its path)." >&2; exit 1; }

stamp="$venv/.phiops-install-stamp"
want="$(cat "$root/pyproject.toml" "$root/scripts/bootstrap.sh" | sha256sum | cut -d' ' -f1)"
if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    exit 0
fi

echo "phiops: setting up $venv (first run takes a few minutes)" >&2
[[ -x "$venv/bin/python" ]] || "$python_bin" -m venv "$venv"
# pip's own chatter (index warnings, build-backend notices) goes to a log that is shown
# only when a step fails, so the first run reads as a few lines of progress.
log="$venv/phiops-install.log"
: > "$log"
pip_install() {
    if ! "$venv/bin/python" -m pip --disable-pip-version-check -q install "$@" >>"$log" 2>&1; then
        tail -n 40 "$log" >&2
        echo "phiops: setting up failed: pip install $* (whole log: $log)" >&2
        exit 1
    fi
}
pip_install --upgrade pip
if ! "$venv/bin/python" -c 'import torch' 2>/dev/null; then
    echo "phiops: installing torch==2.13.0" >&2
    pip_install "torch==2.13.0"
fi
echo "phiops: installing phiops and its dependencies" >&2
pip_install -e "$root[dev]"
echo "$want" > "$stamp"
