"""Per-backbone scaling analysis: claims (ME − SE gaps, trends), power-law fits per arm,
effective-size multipliers, and a verdict written from the claims.

Each sweep is its own series: runs of different sweeps are never pooled as seeds, and a run
that appears twice in one series (same config fingerprint) counts once. The ME curve starts
from the SE base at scale 1 (the paper's shared "base" column): ME with one set is that model.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np
import pandas as pd

from .claims import PAIRINGS, Claim, claim_text, gap_claim, holm_adjust, trend_claim
from .collect import distinct_runs
from .fit import CurveFit, effective_size_multiplier, fit_curve

X_AXES = {"total": "params_total", "embedding": "params_embedding", "dense": "params_dense",
          "flops": "flops_per_example"}
METRICS = {"auc": ("test_auc", lambda v: 1.0 - v), "logloss": ("test_logloss", lambda v: v)}


@dataclass
class BackboneAnalysis:
    backbone: str
    series: str = ""
    fits: Dict[str, Dict[str, CurveFit]] = field(default_factory=dict)  # metric -> arm -> fit
    claims: List[Claim] = field(default_factory=list)
    effective_multiplier: List[dict] = field(default_factory=list)
    verdict: str = ""
    label: str = ""  # backbone, or "series / backbone" when a report holds several series

    def __post_init__(self):
        self.label = self.label or self.backbone

    @property
    def gaps(self) -> List[Claim]:
        return [c for c in self.claims if c.kind == "gap"]

    @property
    def ia_gaps(self) -> List[Claim]:
        return [c for c in self.claims if c.kind == "ia_gap"]

    def trend(self, arm: str) -> Optional[Claim]:
        return next((c for c in self.claims if c.kind == "trend" and c.arm == arm), None)

    def as_dict(self) -> dict:
        return {"backbone": self.backbone, "series": self.series, "verdict": self.verdict,
                "claims": [c.as_dict() for c in self.claims],
                "effective_size_multiplier": self.effective_multiplier,
                "fits": {m: {a: f.as_dict() for a, f in arms.items()} for m, arms in self.fits.items()}}


def arm_curves(runs: pd.DataFrame) -> Dict[str, pd.DataFrame]:
    """arm -> its finished runs; the ME curve's 1x point is the SE base (ME with one set is that
    model), unless ME ran a different 1x model of its own (K > 1 there, e.g. budget targets)."""
    curves = {str(arm): curve for arm, curve in runs.groupby("arm", sort=True)}
    se, me = curves.get("se"), curves.get("me")
    if se is None or me is None:
        return curves
    me = me[me["num_embeddings"].fillna(2) != 1]
    base = se[se["scale"] == 1]
    if len(base) and not (me["scale"] == 1).any():
        me = pd.concat([base.assign(arm="me"), me])
    curves["me"] = me
    return curves


def _groups(curve: pd.DataFrame, x: str, column: str, transform) -> tuple:
    """(sorted distinct sizes, per-size arrays of transform(column)) over the rows with both."""
    xs, ys = curve[x].to_numpy(dtype=float, na_value=np.nan), curve[column].to_numpy(dtype=float, na_value=np.nan)
    keep = np.isfinite(xs) & np.isfinite(ys)
    xs, ys = xs[keep], transform(ys[keep])
    sizes = np.unique(xs)
    return sizes, [ys[xs == size] for size in sizes]


def analyse(runs: pd.DataFrame, x_axis: str = "total", resamples: int = 1000, pairing: str = "welch",
            holm: bool = False) -> List[BackboneAnalysis]:
    """Claims and fits per (sweep, backbone) of a tidy runs table (the columns runs.parquet has).
    `pairing`: "welch" (default) or "seed" (paired t on seeds both arms ran); `holm`: Holm's
    correction across every claim of the result."""
    if x_axis not in X_AXES:
        raise ValueError(f"x axis {x_axis!r}: choose from {sorted(X_AXES)}")
    if pairing not in PAIRINGS:
        raise ValueError(f"pairing {pairing!r}: choose from {PAIRINGS}")
    x = X_AXES[x_axis]
    runs = runs if "series" in runs else runs.assign(series=runs["sweep"] if "sweep" in runs else "")
    runs = distinct_runs(runs.assign(series=runs["series"].fillna("")))
    ia = ia_column(runs)
    done = runs.loc[(runs["status"] == "FINISHED") & runs[x].notna() & runs["test_auc"].notna(),
                    list(dict.fromkeys(["series", "backbone", "arm", "scale", "seed", "num_embeddings", "test_auc",
                                        "test_logloss", x, *([ia] if ia else [])]))]
    several = done["series"].nunique() > 1
    results = []
    for (series, backbone), by_backbone in done.groupby(["series", "backbone"], sort=True):
        label = f"{series} / {backbone}" if several else str(backbone)
        result = BackboneAnalysis(str(backbone), str(series), label=label)
        curves = arm_curves(by_backbone)
        for metric, (column, transform) in METRICS.items():
            result.fits[metric] = {}
            for arm, curve in curves.items():
                sizes, groups = _groups(curve, x, column, transform)
                if len(sizes):
                    result.fits[metric][arm] = fit_curve(sizes, groups, resamples=resamples)
        result.claims = _gap_claims(by_backbone, pairing) + _trend_claims(curves, x)
        if ia:
            result.claims += _gap_claims(by_backbone, pairing, ia, "ia_gap")
        result.effective_multiplier = _multipliers(curves, result.fits.get("auc", {}), x, resamples)
        results.append(result)
    if holm:
        holm_adjust([c for r in results for c in r.claims])
    for result in results:
        result.verdict = verdict(result)
    return results


def ia_column(runs: pd.DataFrame) -> Optional[str]:
    """The IA the ia_gap claims compare: of the large fields when measured, else of all fields."""
    for column in ("ia_mean_large", "ia_mean"):
        if column in runs and runs[column].notna().any():
            return column
    return None


def _by_seed(runs: pd.DataFrame, column: str) -> Dict[int, float]:
    runs = runs[runs[column].notna()]
    seeds = runs["seed"].to_numpy(dtype=float, na_value=np.nan)
    values = runs[column].to_numpy(dtype=float)
    return {int(s) if np.isfinite(s) else -1 - i: float(v) for i, (s, v) in enumerate(zip(seeds, values))}


def _gap_claims(runs: pd.DataFrame, pairing: str, column: str = "test_auc", kind: str = "gap") -> List[Claim]:
    """ME − SE of `column` at each scale > 1 that both arms ran (scale 1 is the shared base)."""
    scales, arms = runs["scale"].to_numpy(dtype=float, na_value=np.nan), runs["arm"].to_numpy()
    claims = []
    for scale in np.unique(scales[np.isfinite(scales) & (scales > 1)]):
        me, se = runs[(scales == scale) & (arms == "me")], runs[(scales == scale) & (arms == "se")]
        if len(me) and len(se):
            claims.append(gap_claim(_by_seed(me, column), _by_seed(se, column), int(scale), pairing, kind))
    return claims


def _trend_claims(curves: Dict[str, pd.DataFrame], x: str) -> List[Claim]:
    claims = []
    for arm, curve in curves.items():
        sizes, groups = _groups(curve, x, "test_auc", lambda v: v)
        if len(sizes):
            claims.append(trend_claim(arm, sizes, groups))
    return claims


def _multipliers(curves: Dict[str, pd.DataFrame], auc_fits: Dict[str, CurveFit], x: str,
                 resamples: int) -> List[dict]:
    """For each ME size above the base: the SE size whose fitted curve reaches ME's AUC there,
    over ME's size — only on a trusted SE fit."""
    se_fit = auc_fits.get("se")
    if "me" not in curves or se_fit is None or not se_fit.identified:
        return []
    se_sizes, se_groups = _groups(curves["se"], x, "test_auc", lambda v: 1.0 - v)
    me_sizes, me_groups = _groups(curves["me"], x, "test_auc", lambda v: 1.0 - v)
    return [effective_size_multiplier(se_sizes, se_groups, size, group, resamples=resamples)
            for size, group in zip(me_sizes, me_groups) if size > min(se_sizes)]


def fit_note(result: BackboneAnalysis) -> str:
    fits = result.fits.get("auc", {})
    if not fits:
        return "no fit"
    trusted = [a.upper() for a, f in sorted(fits.items()) if f.identified]
    return ("power law trusted for " + " and ".join(trusted)) if trusted else "power law not trusted"


def verdict(result: BackboneAnalysis) -> str:
    """A plain statement of what the data supports, written from the claims."""
    if not result.claims:
        return f"{result.label}: no finished runs."
    parts = []
    if result.gaps:
        parts.append(claim_text(result.gaps[-1]))
    parts += [claim_text(c) for c in result.claims if c.kind == "trend"]
    if result.ia_gaps:
        parts.append(claim_text(result.ia_gaps[-1]))
    return f"{result.label}: " + "; ".join(parts) + f"; {fit_note(result)}."


def claim_records(results: List[BackboneAnalysis]) -> List[dict]:
    """Every claim of a report, one dict each (fits.json's `claims`, claims.csv's rows)."""
    return [{"series": r.series, "backbone": r.backbone, **c.as_dict()} for r in results for c in r.claims]


def fit_rows(results: List[BackboneAnalysis]) -> pd.DataFrame:
    rows = []
    for r in results:
        for metric, arms in r.fits.items():
            for arm, f in arms.items():
                law = f.law or {}
                rows.append({"backbone": r.label, "arm": arm, "metric": f"1-{metric}" if metric == "auc" else metric,
                             "sizes": len(f.sizes), "alpha": law.get("alpha"), "alpha_ci": f.alpha_ci or None,
                             "E": law.get("E"), "A": law.get("A"),
                             "holdout_error": (f.holdout or {}).get("error"),
                             "trusted": f.identified, "flags": "; ".join(f.flags)})
    return pd.DataFrame(rows)
