"""A joint size × data law per backbone and arm: L(N, D) = E + A/N^α + B/D^β.

L is the error of the chosen metric (1 − AUC, logloss or NE), N the size axis (parameters),
D the training rows. Fit by variable projection: for fixed exponents (α, β) the law is linear in
(E, A, B), solved by least squares on every seed's value; the exponents minimise the profiled
residual sum of squares (a log-spaced grid, then Nelder–Mead on log α, log β). The fit has
converged when the optimiser says so and the exponents are not on the edge of the search box.

Intervals. The covariance of (E, A, α, B, β) is the HC3 sandwich of the nonlinear least squares
(each residual scaled by 1/(1 − leverage)), so cells with unequal seed spreads are not assumed
equally noisy; intervals are Wald intervals with a t quantile on n − 5 degrees of freedom, on
the log scale for the exponents and for A and B (all positive; A and B are reported in the
law's own units, A = A₀·N₀^α). Simulated on planted laws with 3 seeds per cell (tests/test_joint.py) they cover
the truth at about 95%, also when the seed spread varies 10× over the grid.

Trust is held out as in the curve fits: the cells at the largest size and at the most rows are
predicted by a law fitted without them, and the fit is trusted when every held-out cell's 90%
interval of (prediction − observed mean) lies inside ±margin.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np
import pandas as pd
from scipy import optimize, stats

NAMES = ("E", "A", "alpha", "B", "beta")
EXPONENT_BOX = (0.01, 4.0)  # the exponents searched; an optimum on its edge has not converged
GRID = 24
MIN_CELLS_PER_AXIS = 3
LEVEL = 0.95
TRUST_LEVEL = 0.90


@dataclass
class Cells:
    """Seed-level observations of one backbone × arm: size N, rows D, error y, cell index."""

    N: np.ndarray
    D: np.ndarray
    y: np.ndarray
    cell: np.ndarray

    @property
    def sizes(self) -> np.ndarray:
        return np.unique(self.N)

    @property
    def rows(self) -> np.ndarray:
        return np.unique(self.D)

    def means(self) -> pd.DataFrame:
        frame = pd.DataFrame({"N": self.N, "D": self.D, "y": self.y, "cell": self.cell})
        return frame.groupby("cell").agg(N=("N", "mean"), D=("D", "mean"), mean=("y", "mean"), sd=("y", "std"),
                                         n=("y", "size")).reset_index(drop=True)

    def subset(self, keep: np.ndarray) -> "Cells":
        return Cells(self.N[keep], self.D[keep], self.y[keep], self.cell[keep])


@dataclass
class Fit:
    """The least-squares law in normalised units (N/N₀, D/D₀) with its covariance."""

    theta: np.ndarray  # E, A₀, α, B₀, β
    cov: np.ndarray
    dof: int
    N0: float
    D0: float
    converged: bool
    why: str = ""
    rss: float = float("nan")
    dropped: str = ""  # "size" or "data": a flat term left out (its effect is within noise)

    def predict(self, N, D, theta: Optional[np.ndarray] = None) -> np.ndarray:
        E, A, alpha, B, beta = self.theta if theta is None else theta
        return E + A * (np.asarray(N, float) / self.N0) ** -alpha + B * (np.asarray(D, float) / self.D0) ** -beta

    def draws(self, count: int, rng: np.random.Generator) -> np.ndarray:
        """Parameter draws from the fit's multivariate t (n − 5 d.o.f.), on the log scale for the
        positive constants (as their intervals are); a dropped term stays exactly 0."""
        positive = np.array([False, True, True, True, True]) & (self.theta > 0)
        gradient = np.where(positive, 1.0 / np.where(positive, self.theta, 1.0), 1.0)
        cov = self.cov * np.outer(gradient, gradient)
        values, vectors = np.linalg.eigh((cov + cov.T) / 2)
        root = vectors * np.sqrt(np.clip(values, 0.0, None))  # a covariance with rounding noise stays usable
        scale = np.sqrt(self.dof / rng.chisquare(self.dof, size=count))[:, None]
        centre = np.where(positive, np.log(np.where(positive, self.theta, 1.0)), self.theta)
        drawn = centre + scale * (rng.standard_normal((count, 5)) @ root.T)
        drawn = np.where(positive, np.exp(np.minimum(drawn, 700.0)), drawn)
        fixed = np.diag(self.cov) == 0
        drawn[:, fixed] = self.theta[fixed]
        return drawn


TERMS = {"size": (1, 2), "data": (3, 4)}  # the (coefficient, exponent) indices of each term in theta


def _design(x: np.ndarray, z: np.ndarray, exponents: Dict[str, float]) -> np.ndarray:
    columns = [np.ones_like(x)]
    columns += [np.exp(-exponents["size"] * x)] if "size" in exponents else []
    columns += [np.exp(-exponents["data"] * z)] if "data" in exponents else []
    return np.column_stack(columns)


def _profile(x, z, y, terms, log_exponents) -> Tuple[float, np.ndarray]:
    exponents = dict(zip(terms, np.exp(np.atleast_1d(log_exponents))))
    X = _design(x, z, exponents)
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    residual = y - X @ coef
    return float(residual @ residual), coef


def fit_law(cells: Cells) -> Fit:
    """The full law; when it does not converge, a law without one term (a flat axis: that
    axis's effect is absorbed in E) if it converges and fits no worse (F test at 5%)."""
    full = _fit_terms(cells, ("size", "data"))
    if full.converged:
        return full
    for kept, dropped in ((("data",), "size"), (("size",), "data")):
        reduced = _fit_terms(cells, kept)
        if reduced.converged and _no_worse(reduced, full, len(cells.y)):
            reduced.dropped = dropped
            return reduced
    return full


def _no_worse(reduced: "Fit", full: "Fit", n: int) -> bool:
    if full.rss <= 0:
        return reduced.rss <= 0
    statistic = (reduced.rss - full.rss) / 2 / (full.rss / max(n - 5, 1))
    return bool(statistic <= stats.f.ppf(0.95, 2, max(n - 5, 1)))


def _fit_terms(cells: Cells, terms: Tuple[str, ...]) -> Fit:
    """Variable projection over the given terms' exponents; (E and the coefficients) by least
    squares; a dropped term has coefficient and exponent 0 and no variance."""
    N0, D0 = float(cells.N.min()), float(cells.D.min())
    x, z, y = np.log(cells.N / N0), np.log(cells.D / D0), cells.y.astype(float)
    axis = np.log(np.geomspace(*EXPONENT_BOX, GRID))
    starts = np.array(np.meshgrid(*[axis] * len(terms), indexing="ij")).reshape(len(terms), -1).T
    start = min(starts, key=lambda p: _profile(x, z, y, terms, p)[0])
    bounds = np.log(EXPONENT_BOX)
    result = optimize.minimize(lambda p: _profile(x, z, y, terms, np.clip(p, *bounds))[0], start,
                               method="Nelder-Mead", options={"xatol": 1e-7, "fatol": 1e-14, "maxiter": 2000})
    log_exponents = np.clip(np.atleast_1d(result.x), *bounds)
    rss, coef = _profile(x, z, y, terms, log_exponents)
    theta = np.zeros(5)
    theta[0] = coef[0]
    active = [0]
    for term, c, log_e in zip(terms, coef[1:], log_exponents):
        i, j = TERMS[term]
        theta[i], theta[j] = c, np.exp(log_e)
        active += [i, j]
    on_edge = bool(np.any(np.abs(log_exponents - bounds[0]) < 1e-3) or np.any(np.abs(log_exponents - bounds[1]) < 1e-3))
    why = ("" if result.success and not on_edge else
           f"an exponent is on the edge of the searched range {EXPONENT_BOX}" if on_edge else
           f"the optimiser did not converge ({result.message})")
    if not why and theta[0] < 0:  # an error metric has no negative floor
        why = (f"the fitted floor E = {theta[0]:.3g} is below 0: the error falls with no floor in sight over the "
               "measured range (log-linearly), so no power law with a floor is identified")
    cov, dof = _hc3_covariance(x, z, y, theta, active)
    return Fit(theta, cov, dof, N0, D0, converged=not why, why=why, rss=rss)


def _jacobian(x, z, theta) -> np.ndarray:
    E, A, alpha, B, beta = theta
    u, v = np.exp(-alpha * x), np.exp(-beta * z)
    return np.column_stack([np.ones_like(x), u, -A * x * u, v, -B * z * v])


def _hc3_covariance(x, z, y, theta, active) -> Tuple[np.ndarray, int]:
    J = _jacobian(x, z, theta)[:, active]
    E, A, alpha, B, beta = theta
    residual = y - (E + A * np.exp(-alpha * x) + B * np.exp(-beta * z))
    bread = np.linalg.pinv(J.T @ J)
    leverage = np.clip(np.einsum("ij,jk,ik->i", J, bread, J), 0.0, 0.99)
    meat = (J * (residual / (1.0 - leverage))[:, None] ** 2).T @ J
    cov = np.zeros((5, 5))
    cov[np.ix_(active, active)] = bread @ meat @ bread
    return cov, max(len(y) - len(active), 1)


def raw_intervals(fit: Fit, level: float = LEVEL) -> Dict[str, dict]:
    """Each constant of L = E + A/N^α + B/D^β (A and B in raw units) with its interval."""
    t = stats.t.ppf(0.5 + level / 2, fit.dof)
    E, A0, alpha, B0, beta = fit.theta
    se = np.sqrt(np.maximum(np.diag(fit.cov), 0.0))
    out = {"E": _interval(E, E - t * se[0], E + t * se[0])}
    for name, value, spread in (("alpha", alpha, se[2]), ("beta", beta, se[4])):  # positive: on the log scale
        factor = np.exp(min(t * spread / value, 700.0)) if value > 0 else float("nan")
        out[name] = _interval(value, value / factor, value * factor) if value > 0 else _interval(0.0, 0.0, 0.0)
    for name, (coef, exponent, i, j, origin) in {"A": (A0, alpha, 1, 2, fit.N0), "B": (B0, beta, 3, 4, fit.D0)}.items():
        raw = coef * origin ** exponent
        if fit.dropped and TERMS[fit.dropped][0] == i:
            out[name] = _interval(0.0, 0.0, 0.0)
            continue
        if coef <= 0:
            out[name] = _interval(raw, float("nan"), float("nan"))
            continue
        gradient = np.array([1.0 / coef, np.log(origin)])  # of log(raw) in (coef, exponent)
        block = fit.cov[np.ix_([i, j], [i, j])]
        spread = min(t * float(np.sqrt(max(gradient @ block @ gradient, 0.0))), 700.0)
        with np.errstate(over="ignore"):
            out[name] = _interval(raw, raw * np.exp(-spread), raw * np.exp(spread))
    return out


def _interval(estimate, low, high) -> dict:
    return {"estimate": float(estimate), "low": float(low), "high": float(high)}


def holdout_check(cells: Cells, margin: float) -> dict:
    """Refit without the cells at the largest size and at the most rows; predict them."""
    if len(cells.sizes) < MIN_CELLS_PER_AXIS + 1 or len(cells.rows) < MIN_CELLS_PER_AXIS + 1:
        return {"trusted": False, "trust": f"not checkable: {len(cells.sizes)} sizes × {len(cells.rows)} data sizes "
                f"({MIN_CELLS_PER_AXIS + 1} of each needed to hold the edges out)", "error": None, "cells": []}
    edge = (cells.N == cells.sizes.max()) | (cells.D == cells.rows.max())
    inner = fit_law(cells.subset(~edge))
    held = cells.subset(edge).means()
    t = stats.t.ppf(0.5 + TRUST_LEVEL / 2, np.maximum(held["n"] - 1, 1))
    predicted = inner.predict(held["N"], held["D"])
    errors = predicted - held["mean"].to_numpy()
    prediction_se = _prediction_se(inner, held["N"].to_numpy(), held["D"].to_numpy())
    se = np.sqrt(prediction_se ** 2 + held["sd"].fillna(np.inf).to_numpy() ** 2 / held["n"].to_numpy())
    within = np.abs(errors) + t * se <= margin
    trusted = bool(inner.converged and within.all())
    trust = "trusted" if trusted else ("not trusted: the inner fit did not converge" if not inner.converged else
                                       f"not trusted: {int((~within).sum())} of {len(within)} held-out cells "
                                       f"predicted beyond ±{margin:g} (at 90%)")
    rows = [{"N": float(n), "D": float(d), "error": float(e)} for n, d, e in zip(held["N"], held["D"], errors)]
    return {"trusted": trusted, "trust": trust, "error": float(np.max(np.abs(errors))), "cells": rows}


def _prediction_se(fit: Fit, N: np.ndarray, D: np.ndarray) -> np.ndarray:
    x, z = np.log(N / fit.N0), np.log(D / fit.D0)
    J = _jacobian(x, z, fit.theta)
    return np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", J, fit.cov, J), 0.0))


@dataclass
class JointLaw:
    """The fitted law of one backbone × arm, its intervals, trust and compute-optimal allocation."""

    backbone: str
    arm: str
    metric: str
    size_axis: str
    cells: Cells
    fit: Fit
    params: Dict[str, dict]
    holdout: dict
    cost: "object" = None  # compute.CostModel: training FLOPs as a function of (N, D)
    notes: List[str] = field(default_factory=list)
    series: str = ""

    @property
    def trusted(self) -> bool:
        return bool(self.holdout["trusted"])

    def predict(self, N, D) -> np.ndarray:
        return self.fit.predict(N, D)

    def optimal(self, compute: float, draws: int = 4000, seed: int = 0) -> dict:
        from .compute import optimal_allocation

        return optimal_allocation(self, compute, draws=draws, seed=seed)

    def as_dict(self) -> dict:
        return {"series": self.series, "backbone": self.backbone, "arm": self.arm, "metric": self.metric,
                "size_axis": self.size_axis,
                "form": "L = E + A/N^alpha + B/D^beta", "params": self.params,
                "converged": self.fit.converged, "convergence": self.fit.why or "converged",
                "dropped_term": self.fit.dropped or None,
                "holdout_error": self.holdout["error"], "trusted": self.trusted, "trust": self.holdout["trust"],
                "sizes": [float(v) for v in self.cells.sizes], "rows": [float(v) for v in self.cells.rows],
                "cost": self.cost.as_dict() if self.cost is not None else None, "notes": self.notes}


def law_cells(curve: pd.DataFrame, size_column: str, metric) -> Optional[Cells]:
    """The seed-level (N, D, error) of one arm's finished runs; None without a data column."""
    if "train_rows" not in curve or size_column not in curve or metric.column not in curve:
        return None
    N = curve[size_column].to_numpy(dtype=float, na_value=np.nan)
    D = curve["train_rows"].to_numpy(dtype=float, na_value=np.nan)
    y = metric.error(curve[metric.column].to_numpy(dtype=float, na_value=np.nan))
    keep = np.isfinite(N) & np.isfinite(D) & np.isfinite(y) & (N > 0) & (D > 0)
    cell = pd.factorize(pd.Series(list(zip(N[keep], D[keep]))))[0]
    return Cells(N[keep], D[keep], y[keep], cell)


def why_not_fitted(cells: Optional[Cells]) -> Optional[str]:
    if cells is None:
        return "the runs have no train_rows (recorded before the data axis)"
    sizes, rows = len(cells.sizes), len(cells.rows)
    if sizes < MIN_CELLS_PER_AXIS or rows < MIN_CELLS_PER_AXIS:
        return (f"{sizes} size(s) × {rows} data size(s): a joint law needs {MIN_CELLS_PER_AXIS} of each "
                "(sweep data.train_fraction and the scale together)")
    return None


def fit_joint(curve: pd.DataFrame, backbone: str, arm: str, metric, size_axis: str, size_column: str,
              margin: float) -> JointLaw:
    """The joint law of one arm's runs (raises ValueError when they cannot hold one)."""
    from .compute import CostModel

    cells = law_cells(curve, size_column, metric)
    why = why_not_fitted(cells)
    if why:
        raise ValueError(f"{backbone}/{arm}: no joint law: {why}")
    fit = fit_law(cells)
    cost = CostModel.measured(*(curve[c].to_numpy(dtype=float, na_value=np.nan) if c in curve else
                                np.full(len(curve), np.nan) for c in (size_column, "flops_per_example", "train_rows",
                                                                      "train_flops")))
    notes = [] if fit.converged else [f"the fit did not converge: {fit.why}"]
    if cost is not None and cost.gamma < 0.02:
        notes.append(f"FLOPs per example do not grow with {size_axis} parameters (gamma={cost.gamma:.3g}): they "
                     "cost memory, not compute, so a compute budget does not bound the size")
    return JointLaw(backbone, arm, metric.name, size_axis, cells, fit, raw_intervals(fit), holdout_check(cells, margin),
                    cost, notes)


def joint_laws(runs: pd.DataFrame, metric: str = "logloss", size_axis: str = "total",
               margin: Optional[float] = None) -> Tuple[List[JointLaw], List[str]]:
    """A joint law per series × backbone × arm of a runs table (the report's columns), and one
    line for each that could not hold one. The ME curve starts from SE's 1x base at every data
    size (ME with one set is that model)."""
    from .cells import arm_curves
    from .collect import distinct_runs, split_series_by_data
    from .metrics import X_AXES, metric_named

    chosen = metric_named(metric)
    if size_axis not in X_AXES or size_axis in ("data", "compute"):
        raise ValueError(f"size_axis {size_axis!r}: choose from total, embedding, dense, flops")
    runs = runs if "series" in runs else runs.assign(series=runs["sweep"] if "sweep" in runs else "")
    if "status" in runs:
        runs = runs[runs["status"] == "FINISHED"]
    runs, _ = split_series_by_data(distinct_runs(runs.assign(series=runs["series"].fillna(""))))
    laws, skipped = [], []
    for (series, backbone), part in runs.groupby(["series", "backbone"], sort=True):
        for arm, curve in arm_curves(part).items():
            try:
                law = fit_joint(curve, str(backbone), arm, chosen, size_axis, X_AXES[size_axis],
                                margin if margin is not None else chosen.margin)
            except ValueError as exc:
                skipped.append(f"{series} / {exc}" if series else str(exc))
                continue
            law.series = str(series)
            laws.append(law)
    return laws, skipped


def joint_law(runs: pd.DataFrame, metric: str = "logloss", size_axis: str = "total", backbone: Optional[str] = None,
              arm: Optional[str] = None, margin: Optional[float] = None) -> JointLaw:
    """The joint law L(N, D) = E + A/N^α + B/D^β of one backbone × arm of a runs table (pick
    with `backbone` and `arm` when the table holds several)."""
    laws, skipped = joint_laws(runs, metric, size_axis, margin)
    chosen = [law for law in laws if backbone in (None, law.backbone) and arm in (None, law.arm)]
    if len(chosen) == 1:
        return chosen[0]
    if not chosen:
        raise ValueError("no joint law: " + ("; ".join(skipped) or "no finished runs match"))
    names = ", ".join(f"{law.backbone}/{law.arm}" for law in chosen)
    raise ValueError(f"these runs hold several laws ({names}): pick one with backbone= and arm=")
