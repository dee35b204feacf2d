#!/usr/bin/env bash
# Set up, then run the test suite (extra arguments go to pytest).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="$(bash scripts/setup.sh | tail -n 1)"
# Two workers, each taking whole test files (module fixtures such as the PostgreSQL server stay in
# one process); PYTEST_WORKERS=0 runs in this process.
exec "$PY" -m pytest -n "${PYTEST_WORKERS:-2}" --dist loadfile "$@"
