#!/usr/bin/env bash
# Set up moa_lab in ./.venv: the package with its views and test tools.
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[views,dev]"
echo "moa_lab is set up in .venv (try: .venv/bin/moa-lab --help)" >&2
