#!/usr/bin/env bash
# Installs recsys-scaling. Uses the active virtual environment ($VIRTUAL_ENV) when there is one,
# otherwise creates (or reuses) ./.venv. torch 2.13.0 (CPU) goes in first, so the project's
# torch range is already satisfied and pip never downloads a CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${VIRTUAL_ENV:-}" ]; then
  PY="$VIRTUAL_ENV/bin/python"
else
  python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "python3 >= 3.11 needed" >&2; exit 1; }
  [ -x .venv/bin/python ] || python3 -m venv .venv
  PY="$PWD/.venv/bin/python"
fi
"$PY" -m pip install --quiet --upgrade pip
"$PY" -m pip install --quiet torch==2.13.0
"$PY" -m pip install --quiet -e ".[dev,ray]"
echo "$PY"
