"""`recsys-scaling budget`: a sweep's jobs with their parameter counts, without training."""
from __future__ import annotations

from typing import Optional, Sequence

import pandas as pd

from ..budget import JobPlan
from ..config import BudgetMatch
from .estimate import memory_text
from .grid import Job
from .progress import clock

COLUMNS = ["job", "backbone", "arm", "scale", "seed", "K", "d", "Kxd", "embedding", "dense", "total",
           "flops_per_example", "matched_to", "reference_total", "mismatch_pct", "note", "est_time", "est_peak_mem"]
LEGEND = """\
K: embedding sets; d: size of each set; Kxd: embedding width per field; embedding / dense / total:
parameters; flops_per_example: forward FLOPs of the dense part. matched_to: what a job's total is
compared with (its SE or ME partner at the same scale, or a budget.targets entry);
mismatch_pct = (total - reference) / reference.
note "by design": budget.match=embedding (the paper's) gives SE and ME equal embedding parameters,
so their totals differ and that is expected; budget.match=total matches totals (within
budget.tolerance) instead. est_time / est_peak_mem: the job's time and peak memory on this machine,
from timing its model's training steps here (max_epochs epochs: an upper bound)."""


def budget_table(jobs: Sequence[Job], plans: Sequence[Optional[JobPlan]], estimate=None,
                 prepare: str = "...") -> pd.DataFrame:
    """`prepare`: the sweep or overrides that `recsys-scaling data prepare` takes for this grid."""
    estimates = {j.job: j for j in estimate.jobs} if estimate is not None else {}
    rows = []
    for job, plan in zip(jobs, plans):
        if plan is None:
            raise ValueError(f"{job.describe()}: vocabulary sizes unknown until the data is prepared: run "
                             f"`recsys-scaling data prepare {prepare}` first (or declare data.field_dims)")
        rows.append({
            "job": job.name, "backbone": plan.backbone, "arm": plan.arm, "scale": plan.scale,
            "seed": int(job.seed), "K": plan.num_embeddings, "d": plan.embed_dim,
            "Kxd": plan.num_embeddings * plan.embed_dim,
            "embedding": plan.counts["embedding"], "dense": plan.counts["dense"], "total": plan.counts["total"],
            "flops_per_example": plan.flops, "matched_to": plan.reference or "-",
            "reference_total": plan.reference_total,
            "mismatch_pct": None if plan.mismatch is None else round(100 * plan.mismatch, 3),
            "note": _note(job, plan),
            "est_time": estimates[job.name].seconds if job.name in estimates else None,
            "est_peak_mem": estimates[job.name].peak_bytes if job.name in estimates else None,
        })
    return pd.DataFrame(rows, columns=COLUMNS)


def _note(job: Job, plan: JobPlan) -> str:
    if plan.mismatch is None:
        return "-"
    if plan.reference == "target":
        return "target"
    if job.shared.budget.match == BudgetMatch.embedding:
        return "by design" if plan.mismatch else "equal"
    return "matched"


def iso_budget_lines(table: pd.DataFrame) -> str:
    """The grid's iso-budget lines: shapes (K x d) with equal K·d — equal embedding parameters —
    per backbone, where a line holds two shapes or more; "" when there is none."""
    lines = []
    for (backbone, product), part in table.groupby(["backbone", "Kxd"], sort=True):
        shapes = part.drop_duplicates(["K", "d"]).sort_values("K")
        if len(shapes) >= 2:
            cells = ", ".join(f"{k}x{d}" for k, d in zip(shapes["K"], shapes["d"]))
            lines.append(f"  {backbone}  K·d={product}: {cells}  ({int(shapes['embedding'].iloc[0]):,} embedding "
                         "parameters each)")
    if not lines:
        return ""
    return ("iso-budget lines (shapes K x d with equal embedding parameters; `recsys-scaling advise` compares them):\n"
            + "\n".join(lines))


def format_table(table: pd.DataFrame) -> str:
    shown = table.copy()
    for column in ("embedding", "dense", "total", "flops_per_example", "reference_total"):
        shown[column] = shown[column].map(lambda v: "-" if pd.isna(v) else f"{int(v):,}")
    shown["mismatch_pct"] = shown["mismatch_pct"].map(lambda v: "-" if pd.isna(v) else f"{v:+.2f}%")
    shown["est_time"] = shown["est_time"].map(lambda v: "-" if pd.isna(v) else clock(v))
    shown["est_peak_mem"] = shown["est_peak_mem"].map(lambda v: memory_text(None if pd.isna(v) else int(v)))
    return shown.to_string(index=False)
