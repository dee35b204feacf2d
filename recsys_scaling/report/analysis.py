"""Per-backbone scaling analysis: fits per arm, ME - SE gaps, effective size, a verdict."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List

import pandas as pd

from .fit import CurveFit, effective_size, fit_curve, gap_interval

X_AXES = {"total": "params_total", "embedding": "params_embedding", "dense": "params_dense",
          "flops": "flops_per_example"}
METRICS = {"auc": ("test_auc", lambda v: 1.0 - v), "logloss": ("test_logloss", lambda v: v)}


@dataclass
class BackboneAnalysis:
    backbone: str
    fits: Dict[str, Dict[str, CurveFit]] = field(default_factory=dict)  # metric -> arm -> fit
    gaps: List[dict] = field(default_factory=list)
    effective_multiplier: List[dict] = field(default_factory=list)
    verdict: str = ""

    def as_dict(self) -> dict:
        return {"backbone": self.backbone, "verdict": self.verdict, "gaps": self.gaps,
                "effective_size_multiplier": self.effective_multiplier,
                "fits": {m: {a: f.as_dict() for a, f in arms.items()} for m, arms in self.fits.items()}}


def _groups(curve: pd.DataFrame, x: str, column: str, transform) -> tuple:
    by_size = curve.groupby(x)[column].apply(lambda s: transform(s.dropna().to_numpy()))
    by_size = by_size[by_size.map(len) > 0]
    return by_size.index.to_numpy(dtype=float), list(by_size.values)


def analyse(runs: pd.DataFrame, x_axis: str = "total", resamples: int = 1000) -> List[BackboneAnalysis]:
    if x_axis not in X_AXES:
        raise ValueError(f"x axis {x_axis!r}: choose from {sorted(X_AXES)}")
    x = X_AXES[x_axis]
    done = runs[(runs["status"] == "FINISHED") & runs[x].notna()]
    results = []
    for backbone, by_backbone in done.groupby("backbone", sort=True):
        result = BackboneAnalysis(str(backbone))
        for metric, (column, transform) in METRICS.items():
            result.fits[metric] = {}
            for arm, curve in by_backbone.groupby("arm", sort=True):
                sizes, groups = _groups(curve, x, column, transform)
                if len(sizes):
                    result.fits[metric][str(arm)] = fit_curve(sizes, groups, resamples=resamples)
        result.gaps = _gaps(by_backbone)
        result.effective_multiplier = _multipliers(result.fits.get("auc", {}))
        result.verdict = verdict(result)
        results.append(result)
    return results


def _gaps(runs: pd.DataFrame) -> List[dict]:
    """ME - SE test AUC at each scale both arms ran (scale 1 is the same model in both)."""
    gaps = []
    for scale, at_scale in runs.groupby("scale", sort=True):
        arms = {a: g["test_auc"].dropna().to_numpy() for a, g in at_scale.groupby("arm")}
        if "se" in arms and "me" in arms and len(arms["se"]) and len(arms["me"]) and int(scale) > 1:
            gaps.append({"scale": int(scale), **gap_interval(arms["me"], arms["se"])})
    return gaps


def _multipliers(auc_fits: Dict[str, CurveFit]) -> List[dict]:
    """For each ME size: the SE size whose fitted curve reaches ME's AUC there, over ME's size."""
    se, me = auc_fits.get("se"), auc_fits.get("me")
    if se is None or me is None or not se.identified:
        return []
    law = se.power_law()
    return [{"me_size": n, "me_auc": 1.0 - err, "se_size_needed": effective_size(law, err),
             "multiplier": effective_size(law, err) / n} for n, err in zip(me.sizes, me.means)]


def _fmt_ci(ci: List[float], scale: float = 1.0) -> str:
    return f"[{ci[0] * scale:+.4f}, {ci[1] * scale:+.4f}]"


def verdict(result: BackboneAnalysis) -> str:
    """A plain statement of what the data supports, with its uncertainty."""
    parts = []
    if result.gaps:
        last = result.gaps[-1]
        lo, hi = last["ci"]
        if lo > 0:
            parts.append(f"ME is ahead of SE at {last['scale']}x by {last['gap']:+.4f} AUC (95% CI {_fmt_ci(last['ci'])})")
        elif hi < 0:
            parts.append(f"ME is behind SE at {last['scale']}x by {last['gap']:+.4f} AUC (95% CI {_fmt_ci(last['ci'])})")
        else:
            parts.append(f"at {last['scale']}x the ME - SE gap ({last['gap']:+.4f} AUC, 95% CI {_fmt_ci(last['ci'])}) "
                         "is within seed noise")
    for arm, fit in sorted(result.fits.get("auc", {}).items()):
        if not fit.slope_ci:
            continue
        # the fitted metric is 1 - AUC: AUC gained per doubling is minus its slope
        gain, ci = -fit.slope_per_doubling, [-fit.slope_ci[1], -fit.slope_ci[0]]
        trend = "keeps improving" if ci[0] > 0 else ("gets worse" if ci[1] < 0 else "is flat within noise")
        parts.append(f"{arm.upper()} {trend} ({gain:+.4f} AUC per doubling, 95% CI {_fmt_ci(ci)})")
    flagged = [f"{arm.upper()}: {'; '.join(f.flags)}" for arm, f in result.fits.get("auc", {}).items() if f.flags]
    if flagged:
        parts.append("power-law fit not trusted (" + " | ".join(flagged) + ")")
    return (f"{result.backbone}: " + "; ".join(parts) + ".") if parts else f"{result.backbone}: no finished runs."


def fit_rows(results: List[BackboneAnalysis]) -> pd.DataFrame:
    rows = []
    for r in results:
        for metric, arms in r.fits.items():
            for arm, f in arms.items():
                law = f.law or {}
                rows.append({"backbone": r.backbone, "arm": arm, "metric": f"1-{metric}" if metric == "auc" else metric,
                             "sizes": len(f.sizes), "alpha": law.get("alpha"), "alpha_ci": f.alpha_ci or None,
                             "E": law.get("E"), "A": law.get("A"), "slope_per_doubling": f.slope_per_doubling,
                             "slope_ci": f.slope_ci or None,
                             "holdout_error": (f.holdout or {}).get("error"), "flags": "; ".join(f.flags)})
    return pd.DataFrame(rows)

