"""Report stage: MLflow runs -> pandas -> seed aggregation -> plots -> CSV/HTML (+ logged)."""
from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import mlflow

from .. import tracking
from .collect import runs_table, seed_summary
from .plots import auc_vs_params, ia_vs_scale
from .render import write_index

__all__ = ["Report", "build_report"]


@dataclass
class Report:
    out_dir: Path
    index: Path
    plot: Path
    summary_csv: Path
    runs_csv: Path
    parent_run_id: str
    num_runs: int


def build_report(sweep: str, tracking_uri: Optional[str] = None, experiment: str = "recsys-scaling",
                 out_root: Path = Path("reports"), parent_run_id: Optional[str] = None) -> Report:
    """Report the latest sweep named `sweep` (or the given parent run) into out_root/<sweep>/."""
    tracking.use_store(tracking_uri, experiment)
    parent = parent_run_id or tracking.latest_sweep_parent(tracking_uri, experiment, sweep).info.run_id
    runs = runs_table(tracking.child_runs(parent))
    if runs.empty:
        raise LookupError(f"sweep {sweep!r} (parent run {parent}) has no job runs")
    summary = seed_summary(runs)
    final_dir = Path(out_root) / sweep
    final_dir.parent.mkdir(parents=True, exist_ok=True)
    # Built in a scratch folder and moved into place, so a failed report leaves the old one whole.
    work = Path(tempfile.mkdtemp(prefix=f".{sweep}.tmp-", dir=final_dir.parent))
    try:
        plot = auc_vs_params(summary, work / "auc_vs_params.png", f"{sweep}: test AUC vs model size")
        ia_plot = ia_vs_scale(summary, work / "ia_vs_scale.png", f"{sweep}: embedding collapse (IA)")
        summary.to_csv(work / "summary.csv", index=False)
        runs.to_csv(work / "runs.csv", index=False)
        write_index(work, sweep, parent, [plot, ia_plot], summary, runs, mlflow.get_tracking_uri())
        tracking.log_artifacts_to(parent, work, "report")
        if final_dir.exists():
            shutil.rmtree(final_dir)
        work.rename(final_dir)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return Report(final_dir, final_dir / "index.html", final_dir / "auc_vs_params.png",
                  final_dir / "summary.csv", final_dir / "runs.csv", parent, len(runs))
