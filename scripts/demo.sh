#!/usr/bin/env bash
# Set up, run the demo sweep on the embedded synthetic data, write its report.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="$(bash scripts/setup.sh | tail -n 1)"
BIN="$(dirname "$PY")"
"$BIN/recsys-scaling" sweep demo
"$BIN/recsys-scaling" report demo
echo "browse the runs: $BIN/recsys-scaling ui   (then open the address it prints)"
