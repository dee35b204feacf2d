"""MLflow runs of a sweep -> one tidy pandas table, a row per job."""
from __future__ import annotations

from typing import List, Sequence, Tuple

import numpy as np
import pandas as pd
from mlflow.entities import Run

from .. import tracking

TAG_COLUMNS = ("backbone", "arm", "scale", "num_embeddings", "embed_dim", "seed", "sweep", "dataset")
INT_COLUMNS = ("scale", "num_embeddings", "embed_dim", "seed")
METRIC_COLUMNS = ("test_auc", "test_logloss", "best_valid_auc", "best_valid_logloss", "best_epoch",
                  "epochs_run", "train_seconds", "params_embedding", "params_dense", "params_total",
                  "flops_per_example", "ia_mean", "ia_set_mean", "ia_random_mean")


def runs_table(runs: List[Run]) -> pd.DataFrame:
    rows = []
    for run in runs:
        tags, metrics = run.data.tags, run.data.metrics
        row = {"run_id": run.info.run_id, "experiment_id": run.info.experiment_id, "run_name": run.info.run_name,
               "status": run.info.status, "error": tags.get("error", "")}
        row.update({c: tags.get(c) for c in TAG_COLUMNS})
        row.update({c: metrics.get(c) for c in METRIC_COLUMNS})
        rows.append(row)
    table = pd.DataFrame(rows, columns=["run_id", "experiment_id", "run_name", "status", "error", *TAG_COLUMNS,
                                        *METRIC_COLUMNS])
    for column in INT_COLUMNS:
        table[column] = pd.to_numeric(table[column], errors="coerce").astype("Int64")
    for column in METRIC_COLUMNS:
        table[column] = pd.to_numeric(table[column], errors="coerce")
    return table.sort_values(["backbone", "arm", "scale", "seed"], ignore_index=True)


def collect_runs(parent_run_ids: Sequence[str], filter_string: str = "") -> Tuple[pd.DataFrame, List[str]]:
    """Every child run of the given sweep parents (optionally filtered, MLflow search syntax),
    and the names of jobs a parent planned that never got a run."""
    runs: List[Run] = []
    missing: List[str] = []
    for parent in parent_run_ids:
        children = tracking.child_runs(parent, filter_string)
        reused = tracking.run_json(parent, "reused.json") or {}
        if reused and not filter_string:  # skipped jobs: their earlier runs stand for them
            children += tracking.runs_by_id(list(reused.values()))
        runs.extend(children)
        if not filter_string:  # a filtered report leaves planned jobs out on purpose
            recorded = {r.info.run_name for r in children}
            missing.extend(sorted(set(tracking.run_json(parent, "jobs.json") or []) - recorded))
    return runs_table(runs), missing


def seed_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over seeds per (backbone, arm, scale), finished runs only."""
    done = table[table["status"] == "FINISHED"]
    grouped = done.groupby(["backbone", "arm", "scale"], observed=True)
    summary = grouped.agg(
        num_embeddings=("num_embeddings", "first"),
        embed_dim=("embed_dim", "first"),
        seeds=("seed", "nunique"),
        params_embedding=("params_embedding", "mean"),
        params_dense=("params_dense", "mean"),
        params_total=("params_total", "mean"),
        test_auc_mean=("test_auc", "mean"),
        test_auc_std=("test_auc", "std"),
        test_logloss_mean=("test_logloss", "mean"),
        test_logloss_std=("test_logloss", "std"),
        ia_mean=("ia_mean", "mean"),
        ia_mean_std=("ia_mean", "std"),
        ia_random_mean=("ia_random_mean", "mean"),
    ).reset_index()
    return summary.fillna({"test_auc_std": 0.0, "test_logloss_std": 0.0, "ia_mean_std": 0.0})


def largest_scale_spectra(runs: pd.DataFrame) -> dict:
    """(backbone, arm, scale) -> the mean over fields of the normalised singular-value spectrum of
    the embedding tables (all sets concatenated), from the lowest-seed finished run at each
    curve's largest scale."""
    spectra = {}
    done = runs[runs["status"] == "FINISHED"]
    for (backbone, arm), curve in done.groupby(["backbone", "arm"], sort=True):
        top = curve[curve["scale"] == curve["scale"].max()].sort_values("seed").iloc[0]
        payload = tracking.run_json(top["run_id"], "diagnostics/collapse.json")
        fields = [f["spectrum"] for f in (payload or {}).get("fields", []) if f.get("spectrum")]
        if fields:
            width = max(len(f) for f in fields)
            padded = np.full((len(fields), width), np.nan)
            for i, f in enumerate(fields):
                padded[i, : len(f)] = f
            spectra[(backbone, arm, int(top["scale"]))] = np.nanmean(padded, axis=0)
    return spectra
