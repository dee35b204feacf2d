"""MLflow runs of a sweep -> one tidy pandas table, a row per job."""
from __future__ import annotations

from typing import Any, List, Sequence, Tuple

import numpy as np
import pandas as pd
from .. import tracking

TAG_COLUMNS = ("backbone", "arm", "scale", "num_embeddings", "embed_dim", "seed", "sweep", "dataset", "fingerprint",
               "data_fingerprint", "explicit_shape", "train_fraction")
INT_COLUMNS = ("scale", "num_embeddings", "embed_dim", "seed")
METRIC_COLUMNS = ("test_auc", "test_logloss", "best_valid_auc", "best_valid_logloss", "best_epoch",
                  "epochs_run", "train_seconds", "params_embedding", "params_dense", "params_total",
                  "flops_per_example", "ia_mean", "ia_set_mean", "ia_random_mean", "ia_mean_large", "ia_mean_small",
                  "oracle_bayes_auc", "oracle_auc_width_10", "oracle_auc_width_20", "oracle_auc_width_40",
                  "test_ne", "train_rows", "train_flops", "train_positive_rate")
ORACLE_COLUMNS = ("oracle_bayes_auc", "oracle_auc_width_10", "oracle_auc_width_20", "oracle_auc_width_40")


def runs_table(runs: List[Any], series: Sequence[str] = ()) -> pd.DataFrame:
    """One row per run; `series[i]` names the sweep run i was collected for (default: its tag)."""
    rows = []
    for i, run in enumerate(runs):
        tags, metrics = run.data.tags, run.data.metrics
        row = {"run_id": run.info.run_id, "experiment_id": run.info.experiment_id, "run_name": run.info.run_name,
               "status": run.info.status, "error": tags.get("error", ""), "start_time": run.info.start_time,
               "series": series[i] if i < len(series) else tags.get("sweep")}
        row.update({c: tags.get(c) for c in TAG_COLUMNS})
        row.update({c: metrics.get(c) for c in METRIC_COLUMNS})
        rows.append(row)
    table = pd.DataFrame(rows, columns=["run_id", "experiment_id", "run_name", "status", "error", "start_time",
                                        "series", *TAG_COLUMNS, *METRIC_COLUMNS])
    for column in INT_COLUMNS:
        table[column] = pd.to_numeric(table[column], errors="coerce").astype("Int64")
    for column in METRIC_COLUMNS:
        table[column] = pd.to_numeric(table[column], errors="coerce")
    # runs recorded before the data axis trained on the whole training split
    table["train_fraction"] = pd.to_numeric(table["train_fraction"], errors="coerce").fillna(1.0)
    return table.sort_values(["series", "backbone", "arm", "scale", "seed"], ignore_index=True)


def collect_runs(store: tracking.Store, parent_run_ids: Sequence[str],
                 filter_string: str = "") -> Tuple[pd.DataFrame, List[str]]:
    """Every child run of the given sweep parents (optionally filtered, MLflow search syntax),
    and the names of jobs a parent planned that never got a run."""
    runs: List[Any] = []
    series: List[str] = []
    missing: List[str] = []
    for parent in parent_run_ids:
        children = store.child_runs(parent, filter_string)
        reused = store.run_json(parent, "reused.json") or {}
        if reused and not filter_string:  # skipped jobs: their earlier runs stand for them (unless deleted since)
            children += store.live_runs(list(reused.values()))[0]
        if not filter_string:  # a filtered report leaves planned jobs out on purpose
            planned = store.run_json(parent, "jobs.json") or []
            children += finished_elsewhere(store, planned, {r.info.run_name for r in children})
            recorded = {r.info.run_name for r in children}
            missing.extend(sorted(set(planned) - recorded))
        runs.extend(children)
        # A reused run may come from another sweep; it belongs to the series it stands in for.
        series.extend([store.sweep_name(parent)] * len(children))
    return runs_table(runs, series), missing


def finished_elsewhere(store: tracking.Store, planned, recorded: set) -> List[Any]:
    """FINISHED runs of planned jobs this launch has no run for: another launch of the sweep, running
    at the same time, trained them. `planned` is the parent's jobs.json: job name -> fingerprint
    (a plain list of names, from before fingerprints were recorded, finds none)."""
    if not isinstance(planned, dict):
        return []
    wanted = {fp for name, fp in planned.items() if name not in recorded and fp}
    return store.live_runs(list(store.finished_runs(wanted).values()))[0] if wanted else []


def deleted_reuse_notes(store: tracking.Store, parent_run_ids: Sequence[str]) -> List[str]:
    """One line per sweep whose reused runs (jobs that finished before) were deleted in MLflow since:
    they are out of the report, and the sweep's next launch runs those jobs again."""
    notes = []
    for parent in parent_run_ids:
        reused = store.run_json(parent, "reused.json") or {}
        gone = set(store.live_runs(list(reused.values()))[1]) if reused else set()
        if gone:
            jobs = sorted(job.split("#")[0] for job, run_id in reused.items() if run_id in gone)
            shown = ", ".join(jobs[:4]) + (f" and {len(jobs) - 4} more" if len(jobs) > 4 else "")
            notes.append(f"sweep {store.sweep_name(parent)!r}: {len(jobs)} reused run(s) were deleted in MLflow since "
                         f"({shown}): left out; the sweep's next launch runs those jobs again")
    return notes


def split_series_by_data(table: pd.DataFrame) -> Tuple[pd.DataFrame, List[str]]:
    """Runs on different data never share a series: a series whose runs carry more than one data
    fingerprint (the data file changed between launches, or runs recorded before fingerprints,
    "unknown") becomes one series per data, labelled `series @ data <fingerprint>`. Returns the
    table and one note per series split."""
    if "data_fingerprint" not in table or table.empty:
        return table, []
    data = table["data_fingerprint"].fillna("unknown").astype(str)
    notes, series = [], table["series"].fillna("").astype(str).copy()
    for name in sorted(series.unique()):
        here = series == name
        kinds = sorted(data[here].unique())
        if len(kinds) > 1:
            series[here] = name + " @ data " + data[here].str[:8]
            notes.append(f"series {name!r} holds runs on {len(kinds)} different data ({', '.join(k[:8] for k in kinds)}"
                         "; 'unknown': recorded before runs carried a data fingerprint): each is reported apart")
    return table.assign(series=series), notes


def distinct_runs(table: pd.DataFrame) -> pd.DataFrame:
    """One row per (series, config fingerprint): a job reported twice (reused by a relaunch,
    or under two parents of one sweep) counts once; a FINISHED run wins, then the latest."""
    if "fingerprint" not in table or table["fingerprint"].isna().all():
        return table
    ranked = table.assign(_finished=table["status"] == "FINISHED").sort_values(
        ["_finished", "start_time"], na_position="first", kind="stable")
    keyed = ranked[ranked["fingerprint"].notna()].drop_duplicates(["series", "fingerprint"], keep="last")
    kept = pd.concat([keyed, ranked[ranked["fingerprint"].isna()]]).drop(columns="_finished")
    return kept.sort_values(["series", "backbone", "arm", "scale", "seed"], ignore_index=True)


def seed_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over seeds per (series, backbone, arm, scale), finished runs
    only. The std of a single seed is missing (NaN), not zero."""
    done = table[table["status"] == "FINISHED"]
    grouped = done.groupby(["series", "backbone", "arm", "scale"], observed=True)
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
        ia_mean_large=("ia_mean_large", "mean"),
        ia_mean_large_std=("ia_mean_large", "std"),
        ia_mean_small=("ia_mean_small", "mean"),
        ia_random_mean=("ia_random_mean", "mean"),
    ).reset_index()
    return summary


def oracle_aucs(table: pd.DataFrame) -> dict:
    """The synthetic teacher's oracle test AUCs logged by the runs (empty for real data)."""
    columns = [c for c in ORACLE_COLUMNS if c in table and table[c].notna().any()]
    return {c: float(table[c].dropna().iloc[0]) for c in columns}


def largest_scale_spectra(store: tracking.Store, runs: pd.DataFrame) -> dict:
    """(backbone, arm, scale) -> the mean over fields of the normalised singular-value spectrum of
    the embedding tables (all sets concatenated), from the lowest-seed finished run at each
    curve's largest scale."""
    spectra = {}
    done = runs[runs["status"] == "FINISHED"]
    for (backbone, arm), curve in done.groupby(["backbone", "arm"], sort=True):
        top = curve[curve["scale"] == curve["scale"].max()].sort_values("seed").iloc[0]
        payload = store.run_json(top["run_id"], "diagnostics/collapse.json")
        fields = [f["spectrum"] for f in (payload or {}).get("fields", []) if f.get("spectrum")]
        if fields:
            width = max(len(f) for f in fields)
            padded = np.full((len(fields), width), np.nan)
            for i, f in enumerate(fields):
                padded[i, : len(f)] = f
            spectra[(backbone, arm, int(top["scale"]))] = np.nanmean(padded, axis=0)
    return spectra
