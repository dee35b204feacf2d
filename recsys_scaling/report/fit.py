"""Scaling-law fits with seed-bootstrap uncertainty.

Fit the error, not the score: y(N) = E + A * N^(-alpha) with y = 1 - AUC (or logloss), E >= 0,
A >= 0. Robust estimator: for every alpha on a grid, (E, A) by non-negative least squares on
the per-size means; the alpha with the smallest squared error wins. N is scaled by its
smallest value first, so A is the reducible error at the smallest model.

Uncertainty: bootstrap over seeds within each size (resample each size's seed results with
replacement, refit). A simple log-linear slope (metric gained per doubling of N) is fitted the
same way. A curve is flagged instead of trusted when it has fewer than 3 sizes, when alpha sits
on the edge of its grid (no curvature to identify it), or when its bootstrap interval on alpha
is wider than the grid's half range.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np
from scipy.optimize import minimize_scalar, nnls

ALPHA_GRID = np.geomspace(0.02, 3.0, 160)
MIN_SIZES = 3


@dataclass
class PowerLaw:
    E: float
    A: float
    alpha: float
    n0: float
    sse: float

    def predict(self, n) -> np.ndarray:
        return self.E + self.A * (np.asarray(n, dtype=float) / self.n0) ** (-self.alpha)


def _nnls_at(n: np.ndarray, y: np.ndarray, n0: float, alpha: float) -> PowerLaw:
    design = np.column_stack([np.ones_like(n), (n / n0) ** (-alpha)])
    coef, residual = nnls(design, y)
    return PowerLaw(float(coef[0]), float(coef[1]), float(alpha), n0, float(residual**2))


def _grid_sse(n: np.ndarray, y: np.ndarray, n0: float, alphas: np.ndarray) -> np.ndarray:
    """Smallest squared error over E, A >= 0 at each alpha (the 2-parameter NNLS in closed form:
    the unconstrained solution if feasible, else the better of the two boundaries)."""
    x = (n[None, :] / n0) ** (-alphas[:, None])  # (G, m)
    xm, ym = x.mean(1, keepdims=True), y.mean()
    var = ((x - xm) ** 2).sum(1)
    a_free = np.where(var > 0, ((x - xm) * (y - ym)).sum(1) / np.where(var > 0, var, 1), 0.0)
    e_free = ym - a_free * xm[:, 0]
    a_zero_e = np.maximum(0.0, (x * y).sum(1) / (x * x).sum(1))
    candidates = [
        np.where((a_free >= 0) & (e_free >= 0), ((e_free[:, None] + a_free[:, None] * x - y) ** 2).sum(1), np.inf),
        ((a_zero_e[:, None] * x - y) ** 2).sum(1),
        np.full(len(alphas), ((max(ym, 0.0) - y) ** 2).sum()),
    ]
    return np.min(candidates, axis=0)


def fit_power_law(n: Sequence[float], y: Sequence[float], alphas: np.ndarray = ALPHA_GRID,
                  refine: bool = True) -> PowerLaw:
    """Grid over alpha with NNLS for (E, A), then a bounded 1-D refinement around the best."""
    n, y = np.asarray(n, dtype=float), np.asarray(y, dtype=float)
    n0 = float(n.min())
    i = int(np.argmin(_grid_sse(n, y, n0, alphas)))
    best = _nnls_at(n, y, n0, float(alphas[i]))
    if refine and 0 < i < len(alphas) - 1:
        found = minimize_scalar(lambda a: _nnls_at(n, y, n0, a).sse, bounds=(alphas[i - 1], alphas[i + 1]),
                                method="bounded", options={"xatol": 1e-4})
        refined = _nnls_at(n, y, n0, float(found.x))
        if refined.sse <= best.sse:
            return refined
    return best


def loglinear_slope(n: Sequence[float], y: Sequence[float]) -> float:
    """Least-squares change of y per doubling of n."""
    x = np.log2(np.asarray(n, dtype=float))
    if np.ptp(x) == 0:
        return float("nan")
    return float(np.polyfit(x, np.asarray(y, dtype=float), 1)[0])


def _interval(values: np.ndarray, level: float = 0.95) -> List[float]:
    finite = values[np.isfinite(values)]
    if not len(finite):
        return [float("nan"), float("nan")]
    tail = 100 * (1 - level) / 2
    return [float(np.percentile(finite, tail)), float(np.percentile(finite, 100 - tail))]


def resample_means(groups: Sequence[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    return np.array([rng.choice(g, size=len(g), replace=True).mean() for g in groups])


@dataclass
class CurveFit:
    """One (backbone, arm) curve of `metric` (an error: lower is better) against N."""

    sizes: List[float]
    means: List[float]
    seeds: List[int]
    law: Optional[dict] = None
    alpha_ci: List[float] = field(default_factory=list)
    E_ci: List[float] = field(default_factory=list)
    slope_per_doubling: float = float("nan")
    slope_ci: List[float] = field(default_factory=list)
    holdout: Optional[dict] = None
    flags: List[str] = field(default_factory=list)

    @property
    def identified(self) -> bool:
        return self.law is not None and not self.flags

    def power_law(self) -> Optional[PowerLaw]:
        return PowerLaw(**self.law) if self.law else None

    def as_dict(self) -> dict:
        return asdict(self)


def fit_curve(sizes: Sequence[float], groups: Sequence[np.ndarray], resamples: int = 1000,
              seed: int = 0) -> CurveFit:
    """`groups[i]`: the per-seed values (an error metric) at size `sizes[i]`."""
    order = np.argsort(sizes)
    sizes = np.asarray(sizes, dtype=float)[order]
    groups = [np.asarray(groups[i], dtype=float) for i in order]
    means = np.array([g.mean() for g in groups])
    fit = CurveFit(sizes.tolist(), means.tolist(), [len(g) for g in groups])
    fit.slope_per_doubling = loglinear_slope(sizes, means)
    if len(sizes) < 2:
        fit.flags.append("a single size: no curve")
        return fit
    rng = np.random.default_rng(seed)
    boot_means = np.array([resample_means(groups, rng) for _ in range(resamples)])
    fit.slope_ci = _interval(np.array([loglinear_slope(sizes, m) for m in boot_means]))
    if len(sizes) < MIN_SIZES:
        fit.flags.append(f"{len(sizes)} sizes: a power law needs at least {MIN_SIZES}")
        return fit
    law = fit_power_law(sizes, means)
    fit.law = asdict(law)
    boot = [fit_power_law(sizes, m, refine=False) for m in boot_means]
    fit.alpha_ci = _interval(np.array([b.alpha for b in boot]))
    fit.E_ci = _interval(np.array([b.E for b in boot]))
    if law.alpha <= ALPHA_GRID[0] or law.alpha >= ALPHA_GRID[-1] or law.A <= 0:
        fit.flags.append("flat or without curvature: alpha not identified")
    elif fit.alpha_ci[1] - fit.alpha_ci[0] > (ALPHA_GRID[-1] - ALPHA_GRID[0]) / 2:
        fit.flags.append("too noisy: the bootstrap interval on alpha spans most of its range")
    if len(sizes) > MIN_SIZES:
        head = fit_power_law(sizes[:-1], means[:-1])
        predicted = float(head.predict(sizes[-1]))
        fit.holdout = {"size": float(sizes[-1]), "observed": float(means[-1]), "predicted": predicted,
                       "error": predicted - float(means[-1])}
    return fit


def bootstrap_band(fit: CurveFit, groups: Sequence[np.ndarray], grid: np.ndarray, resamples: int = 300,
                   seed: int = 1) -> np.ndarray:
    """(2, len(grid)): 95% band of the fitted curve's prediction, from the seed bootstrap."""
    rng = np.random.default_rng(seed)
    order = np.argsort(fit.sizes)
    sizes = np.asarray(fit.sizes)[order]
    preds = np.array([fit_power_law(sizes, resample_means(groups, rng), refine=False).predict(grid)
                      for _ in range(resamples)])
    return np.percentile(preds, [2.5, 97.5], axis=0)


def effective_size(se: PowerLaw, target_error: float) -> float:
    """The N at which the SE curve reaches `target_error` (inf if it never does)."""
    reducible = target_error - se.E
    if reducible <= 0 or se.A <= 0:
        return float("inf")
    return float(se.n0 * (se.A / reducible) ** (1.0 / se.alpha))


def gap_interval(me: np.ndarray, se: np.ndarray, resamples: int = 1000, seed: int = 2) -> Dict[str, object]:
    """Mean difference ME - SE of a metric at one size, with a 95% seed-bootstrap interval."""
    rng = np.random.default_rng(seed)
    diffs = np.array([rng.choice(me, len(me)).mean() - rng.choice(se, len(se)).mean() for _ in range(resamples)])
    return {"gap": float(me.mean() - se.mean()), "ci": _interval(diffs)}
