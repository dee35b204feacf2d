"""Per-backbone scaling analysis: claims (the scaling-rate gap, ME − SE gaps, trends), fitted
curves per arm, effective-size multipliers, and a verdict written from the claims.

Each sweep is its own series: runs of different sweeps are never pooled as seeds, and a run
that appears twice in one series (same config fingerprint) counts once. The ME curve starts
from the SE base at scale 1 (the paper's shared "base" column): ME with one set is that model.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from .cells import arm_cells, arm_curves, gap_claims, pooled_variance, scaling_gap_claim, trend_claim
from .claims import CORRECTIONS, FAMILIES, PAIRINGS, Claim, adjust_family, claim_text, fill_seeds_needed, mark_peak
from .collect import distinct_runs, split_series_by_data
from .compare import Comparison, SeriesSpec, comparisons
from .fit import CurveFit, effective_size_multiplier, fit_curve
from .intervals import Levels
from .metrics import METRICS, X_AXES, Metric, metric_named
from .slices import slices

DEFAULT_MARGIN = 0.0005
DEFAULT_IA_MARGIN = 1.0

__all__ = ["BackboneAnalysis", "analyse", "arm_curves", "claim_records", "fit_rows", "ia_column", "verdict"]


@dataclass
class BackboneAnalysis:
    backbone: str
    series: str = ""
    fits: Dict[str, Dict[str, CurveFit]] = field(default_factory=dict)  # metric -> arm -> fit
    claims: List[Claim] = field(default_factory=list)
    effective_multiplier: List[dict] = field(default_factory=list)
    verdict: str = ""
    label: str = ""  # backbone, or "series / backbone" when a report holds several series
    metric: str = "auc"  # the metric its claims and fits read
    slice: str = ""  # where a sweep varies another axis: " @ 2x" (the data axis) or " @ 0.25 data"
    shared_base: bool = True  # the ME curve starts from SE's 1x base (size axes; not along data)

    def __post_init__(self):
        self.label = self.label or self.backbone

    def of_kind(self, kind: str) -> List[Claim]:
        return [c for c in self.claims if c.kind == kind]

    @property
    def gaps(self) -> List[Claim]:
        return self.of_kind("gap")

    @property
    def ia_gaps(self) -> List[Claim]:
        return self.of_kind("ia_gap")

    @property
    def scaling_gap(self) -> Optional[Claim]:
        return next(iter(self.of_kind("scaling_gap")), None)

    def trend(self, arm: str, top: bool = False) -> Optional[Claim]:
        kind = "top_trend" if top else "trend"
        return next((c for c in self.claims if c.kind == kind and c.arm == arm), None)

    def lead_claims(self) -> List[Claim]:
        """The claims a verdict leads with: the scaling rate, the gap at the largest scale, each
        arm at its top, the large-field IA at the largest scale."""
        lead = [self.scaling_gap, self.gaps[-1] if self.gaps else None, self.trend("se", top=True),
                self.trend("me", top=True), self.ia_gaps[-1] if self.ia_gaps else None]
        return [c for c in lead if c is not None]

    def seeds_to_decide(self) -> Optional[int]:
        """Seeds per cell that would decide the undecided lead claims (None: all decided, or no
        seed spread measured)."""
        needed = [c.seeds_needed for c in self.lead_claims() if not c.decided and c.seeds_needed is not None]
        return max(needed) if needed else None

    def as_dict(self) -> dict:
        return {"backbone": self.backbone, "series": self.series, "slice": self.slice.strip(" @"),
                "metric": self.metric, "verdict": self.verdict,
                "claims": [c.as_dict() for c in self.claims],
                "effective_size_multiplier": self.effective_multiplier,
                "fits": {m: {a: f.as_dict() for a, f in arms.items()} for m, arms in self.fits.items()}}


def analyse(runs: pd.DataFrame, x_axis: str = "total", resamples: int = 1000, pairing: str = "welch",
            family: str = "backbone", correction: str = "holm", margin: float = DEFAULT_MARGIN,
            ia_margin: float = DEFAULT_IA_MARGIN, sequential: bool = False, max_seeds: Optional[int] = None,
            fit: bool = True, compare: Sequence[Tuple[SeriesSpec, SeriesSpec]] = (),
            metric: str = "auc") -> List[BackboneAnalysis]:
    """Claims and fits per (sweep, backbone) of a tidy runs table (the columns runs.parquet has).

    pairing: "welch" (default) or "seed" (paired t on seeds both arms ran); family: whose error
    rate the verdicts control — "backbone" (default: the chance of any false claim about one
    backbone ≤ 5%), "report" (every claim of the result) or "claim" (each alone); correction:
    "holm" (family-wise) or "bh" (false-discovery rate, with family="report"); margin / ia_margin: the practical margins
    (AUC, IA) of the equivalence verdicts and of seeds_needed; sequential: intervals that stay
    valid when seeds are added and the report re-read up to `max_seeds` seeds per cell; fit: also
    fit the curves (off: claims only, as the adaptive seed loop needs); compare: pairs of series
    (A, B) whose A − B gaps and scaling rates are claims too (`compare.py`), after the backbones;
    metric: auc, logloss or ne (margin in its units; claims read "better" as positive). x_axis
    data or compute: see slices.py for how a sweep that varies both size and data is cut."""
    if x_axis not in X_AXES:
        raise ValueError(f"x axis {x_axis!r}: choose from {sorted(X_AXES)}")
    if pairing not in PAIRINGS:
        raise ValueError(f"pairing {pairing!r}: choose from {PAIRINGS}")
    if not margin > 0 or not ia_margin > 0:
        raise ValueError(f"margin={margin}, ia_margin={ia_margin}: margins must be positive")
    if family not in FAMILIES or correction not in CORRECTIONS:
        raise ValueError(f"family {family!r} / correction {correction!r}: choose from {FAMILIES} / {CORRECTIONS}")
    if sequential and (max_seeds is None or max_seeds < 3):
        raise ValueError(f"sequential intervals need max_seeds >= 3 (the planned largest seed count), got {max_seeds}")
    x, chosen = X_AXES[x_axis], metric_named(metric)
    done, shared_base = slices(_finished(runs, x, chosen), x_axis)
    levels = look_levels(done, max_seeds) if sequential else Levels()
    ia = ia_column(done)
    several = done["series"].nunique() > 1
    results, cells_of = [], {"auc": [], "ia": []}
    for (series, cut, backbone), by_backbone in done.groupby(["series", "slice", "backbone"], sort=True):
        label = f"{series} / {backbone}{cut}" if several else f"{backbone}{cut}"
        result = BackboneAnalysis(str(backbone), str(series), label=label, metric=chosen.name, slice=str(cut),
                                  shared_base=shared_base)
        curves = arm_curves(by_backbone, shared_base=shared_base)
        auc = {arm: arm_cells(curve, x, "score") for arm, curve in curves.items()}
        cells_of["auc"] += [c for cells in auc.values() for c in cells]
        result.claims = _auc_claims(auc, pairing, margin, levels, first_scale=2 if shared_base else 1)
        if not shared_base:  # along data a cell's "scale" is its place among the training fractions
            fraction_at = dict(zip(by_backbone["scale"], by_backbone["train_fraction"]))
            for claim in result.claims:
                if claim.scale is not None:
                    claim.where = f"at {fraction_at[claim.scale]:g} of the training rows"
        if ia:
            ia_cells = {arm: arm_cells(curve, x, ia) for arm, curve in curves.items()}
            cells_of["ia"] += [c for cells in ia_cells.values() for c in cells]
            result.claims += gap_claims(ia_cells.get("me", []), ia_cells.get("se", []), pairing, ia_margin, levels,
                                        kind="ia_gap")
        if fit:
            result.fits = _fits(curves, x, resamples, margin, chosen)
            result.effective_multiplier = _multipliers(curves, result.fits.get(chosen.name, {}), x, resamples, chosen)
        results.append(result)
    results += comparisons(done, compare, x, pairing, margin, levels)
    for result in results:
        for claim in result.claims:
            claim.metric = chosen.gain  # the unit its texts name (IA claims name theirs)
    families = _families(results, family)
    adjust_family(families, correction, family)
    fallback = {"auc": pooled_variance(cells_of["auc"]), "ia": pooled_variance(cells_of["ia"])}
    for claims in families:
        family_size = sum(c.p_value is not None for c in claims)
        for claim in claims:
            fill_seeds_needed(claim, levels, fallback["ia" if claim.kind == "ia_gap" else "auc"], family_size)
    for result in results:
        if isinstance(result, BackboneAnalysis):
            _mark_peaks(result)
        result.verdict = verdict(result)
    return results


def _families(results: List[BackboneAnalysis], family: str) -> List[List[Claim]]:
    """The groups of claims whose error rate is controlled together."""
    if family == "report":
        return [[c for r in results for c in r.claims]]
    if family == "backbone":
        return [r.claims for r in results]
    return [[c] for r in results for c in r.claims]


def _mark_peaks(result: BackboneAnalysis) -> None:
    """Saturated trends of an arm whose fitted AUC curve peaks inside its measured range."""
    for arm, curve_fit in result.fits.get(result.metric, {}).items():
        peak = curve_fit.interior_best()
        for top in (False, True):
            claim = result.trend(arm, top=top)
            if claim is not None:
                mark_peak(claim, peak)


def most_seeds(runs: pd.DataFrame) -> int:
    """The most seeds any cell (series × backbone × arm × scale) of these runs has: which look of
    an adaptive plan they are."""
    keys = [k for k in ("series", "backbone", "arm", "scale") if k in runs]
    if runs.empty or not keys:
        return 0
    return int(runs.groupby(keys, dropna=False).size().max())


def look_levels(runs: pd.DataFrame, max_seeds: int) -> Levels:
    """The level of the adaptive plan's look these runs are (their finished runs' most seeds)."""
    finished = runs[runs["status"] == "FINISHED"] if "status" in runs else runs
    return Levels.sequential(max_seeds, seeds_seen=most_seeds(finished))


def _finished(runs: pd.DataFrame, x: str, metric: Metric) -> pd.DataFrame:
    runs = runs if "series" in runs else runs.assign(series=runs["sweep"] if "sweep" in runs else "")
    runs, _ = split_series_by_data(distinct_runs(runs.assign(series=runs["series"].fillna(""))))
    if "run_id" not in runs:
        runs = runs.assign(run_id=[f"row{i}" for i in range(len(runs))])
    for column in (x, metric.column):
        if column not in runs:
            runs = runs.assign(**{column: np.nan})
    runs = runs.assign(score=metric.score(runs[metric.column].to_numpy(dtype=float, na_value=np.nan)),
                       train_fraction=runs["train_fraction"].fillna(1.0) if "train_fraction" in runs else 1.0)
    ia = ia_column(runs)
    optional = [c for c in ("data_fingerprint", "train_rows", "train_flops", "flops_per_example", "params_total",
                            "test_ne") if c in runs]
    columns = ["run_id", "status", "series", "backbone", "arm", "scale", "seed", "num_embeddings", "test_auc", "test_logloss",
               "score", "train_fraction", x, *([ia] if ia else []), *optional]
    keep = (runs["status"] == "FINISHED") & runs[x].notna() & runs["score"].notna()
    if "explicit_shape" in runs:  # (K, d) cells of a frontier grid: arm and scale do not place them on a curve
        keep &= runs["explicit_shape"].fillna("") != "true"
    return runs.loc[keep, list(dict.fromkeys(columns))]


def curve_runs(runs: pd.DataFrame, x_axis: str, metric: str = "auc") -> pd.DataFrame:
    """The finished runs the analysis puts on curves, cut as it cuts them (a `slice` column)."""
    return slices(_finished(runs, X_AXES[x_axis], metric_named(metric)), x_axis)[0]


def _auc_claims(cells: dict, pairing: str, margin: float, levels: Levels, first_scale: int = 2) -> List[Claim]:
    me, se = cells.get("me", []), cells.get("se", [])
    claims = []
    scaling = scaling_gap_claim(me, se, margin, levels) if me and se else None
    claims += [scaling] if scaling is not None else []
    claims += gap_claims(me, se, pairing, margin, levels, first_scale=first_scale)
    for arm, arm_cells_ in sorted(cells.items()):
        if len(arm_cells_) >= 2:  # one size has no trend, whatever the seeds
            claims.append(trend_claim(arm, arm_cells_, margin, levels))
            claims.append(trend_claim(arm, arm_cells_, margin, levels, top=True))
    return claims


def ia_column(runs: pd.DataFrame) -> Optional[str]:
    """The IA the ia_gap claims compare: of the large fields when measured, else of all fields."""
    for column in ("ia_mean_large", "ia_mean"):
        if column in runs and runs[column].notna().any():
            return column
    return None


def _groups(curve: pd.DataFrame, x: str, column: str, transform) -> tuple:
    """(sizes, per-size arrays of transform(column)) over the rows with both, one per cell (its
    scale) at the cell's mean x — training FLOPs differ by seed within a cell — sorted by size."""
    xs, ys = curve[x].to_numpy(dtype=float, na_value=np.nan), curve[column].to_numpy(dtype=float, na_value=np.nan)
    scales = curve["scale"].to_numpy(dtype=float, na_value=np.nan)
    keep = np.isfinite(xs) & np.isfinite(ys) & np.isfinite(scales)
    xs, ys, scales = xs[keep], transform(ys[keep]), scales[keep]
    cells = sorted(((xs[scales == s].mean(), ys[scales == s]) for s in np.unique(scales)), key=lambda c: c[0])
    return np.array([size for size, _ in cells]), [values for _, values in cells]


def _fits(curves: Dict[str, pd.DataFrame], x: str, resamples: int, margin: float,
          chosen: Metric) -> Dict[str, Dict[str, CurveFit]]:
    """The chosen metric's fits (its margin), then AUC's and logloss's as before."""
    fits: Dict[str, Dict[str, CurveFit]] = {}
    for metric in dict.fromkeys([chosen.name, "auc", "logloss"]):
        fits[metric] = {}
        for arm, curve in curves.items():
            if METRICS[metric].column not in curve:
                continue
            sizes, groups = _groups(curve, x, METRICS[metric].column, METRICS[metric].error)
            if len(sizes):
                fits[metric][arm] = fit_curve(sizes, groups, resamples=resamples, margin=margin)
    return fits


def _multipliers(curves: Dict[str, pd.DataFrame], fits: Dict[str, CurveFit], x: str,
                 resamples: int, metric: Metric) -> List[dict]:
    """For each ME size above the base: the SE size whose fitted curve reaches ME's metric
    there, over ME's size — only on a trusted SE fit."""
    se_fit = fits.get("se")
    if "me" not in curves or se_fit is None or not se_fit.trusted:
        return []
    _, se_groups = _groups(curves["se"], x, metric.column, metric.error)
    me_sizes, me_groups = _groups(curves["me"], x, metric.column, metric.error)
    return [effective_size_multiplier(se_fit, se_groups, size, group, resamples=resamples)
            for size, group in zip(me_sizes, me_groups) if size > min(se_fit.sizes)]


def fit_note(result: BackboneAnalysis) -> str:
    """'SE: peaked, trusted; ME: power law, not trusted' (or why there is no fit)."""
    fits = result.fits.get(result.metric, {})
    parts = [f"{arm.upper()}: {f.form}, {f.trust.split(':')[0]}" if f.form else
             f"{arm.upper()}: no fit" for arm, f in sorted(fits.items(), reverse=True)]
    return "; ".join(parts) if parts else "no fit"


def verdict(result) -> str:
    """A plain statement of what the data supports, leading with the scaling-rate claim."""
    if isinstance(result, Comparison) and not result.claims:
        return f"{result.label}: not compared: {result.note}."
    if not result.claims:
        return f"{result.label}: no finished runs."
    parts = [claim_text(c) for c in result.lead_claims()]
    fits = "" if isinstance(result, Comparison) else f"; fits: {fit_note(result)}"
    return f"{result.label}: " + "; ".join(parts) + f"{fits}."


def claim_records(results: List[BackboneAnalysis]) -> List[dict]:
    """Every claim of a report, one dict each (fits.json's `claims`, claims.csv's rows)."""
    return [{"series": r.series, "backbone": r.backbone, **c.as_dict()} for r in results for c in r.claims]


def _format_params(fit: CurveFit) -> str:
    return ", ".join(f"{k}={v:.4g}" for k, v in fit.params.items())


def fit_rows(results: List[BackboneAnalysis]) -> pd.DataFrame:
    rows = []
    for r in results:
        for metric, arms in r.fits.items():
            for arm, f in arms.items():
                rows.append({"backbone": r.label, "arm": arm, "metric": f"1-{metric}" if metric == "auc" else metric,
                             "sizes": len(f.sizes), "form": f.form, "params": _format_params(f),
                             "cv_error": f.cv_error.get(f.form) if f.form else None,
                             "runner_up": f.runner_up,
                             "runner_up_cv_error": f.cv_error.get(f.runner_up) if f.runner_up else None,
                             "holdout_error": f.holdout_error, "runner_up_holdout_error": f.runner_up_holdout_error,
                             "trusted": f.trusted, "trust": f.trust, "flags": "; ".join(f.flags)})
    return pd.DataFrame(rows)
