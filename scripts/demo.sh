#!/usr/bin/env bash
# Set up, run the demo sweep on the embedded synthetic data, write its report.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="$(bash scripts/setup.sh | tail -n 1)"
BIN="$(dirname "$PY")"
"$BIN/recsys-scaling" sweep demo
"$BIN/recsys-scaling" report demo
echo "MLflow UI: $BIN/mlflow ui --backend-store-uri sqlite:///mlflow.db --host 127.0.0.1 --port 5000"
