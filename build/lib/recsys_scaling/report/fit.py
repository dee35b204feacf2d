"""Scaling-law fits with seed-bootstrap uncertainty.

Fit the error, not the score: y(N) = E + A * N^(-alpha) with y = 1 - AUC (or logloss), E >= 0,
A >= 0. Robust estimator: for every alpha on a grid, (E, A) by non-negative least squares on
the per-size means; the alpha with the smallest squared error wins. N is scaled by its
smallest value first, so A is the reducible error at the smallest model.

Uncertainty: bootstrap over seeds within each size (resample each size's seed results with
replacement, refit). A law is fitted only with at least 4 sizes: 3 points determine E, A and
alpha exactly, so a 3-size "fit" interpolates and says nothing about alpha. A fitted curve is
flagged (not trusted: drawn without band or extrapolation, no effective size read off it) when
alpha sits on the edge of its grid (no curvature), when its bootstrap interval spans more than
a factor NOISY_ALPHA_RATIO, or when the fit without the largest size mispredicts that size
outside the prediction's bootstrap interval.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import List, Optional, Sequence

import numpy as np
from scipy.optimize import minimize_scalar, nnls

ALPHA_GRID = np.geomspace(0.02, 3.0, 160)
MIN_SIZES = 4  # alpha is reported only from this many sizes on
NOISY_ALPHA_RATIO = 4.0


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
    holdout: Optional[dict] = None
    flags: List[str] = field(default_factory=list)

    @property
    def identified(self) -> bool:
        return self.law is not None and not self.flags

    def power_law(self) -> Optional[PowerLaw]:
        return PowerLaw(**self.law) if self.law else None

    def as_dict(self) -> dict:
        return asdict(self)


def _sorted_groups(sizes: Sequence[float], groups: Sequence[np.ndarray]):
    order = np.argsort(sizes)
    return np.asarray(sizes, dtype=float)[order], [np.asarray(groups[i], dtype=float) for i in order]


def fit_curve(sizes: Sequence[float], groups: Sequence[np.ndarray], resamples: int = 1000,
              seed: int = 0) -> CurveFit:
    """`groups[i]`: the per-seed values (an error metric) at size `sizes[i]`."""
    sizes, groups = _sorted_groups(sizes, groups)
    means = np.array([g.mean() for g in groups])
    fit = CurveFit(sizes.tolist(), means.tolist(), [len(g) for g in groups])
    if len(sizes) < MIN_SIZES:
        fit.flags.append(
            "a single size: no curve" if len(sizes) < 2 else
            f"{len(sizes)} sizes: a power law needs at least {MIN_SIZES} "
            + ("(3 points are interpolated exactly by E, A and alpha)" if len(sizes) == 3 else ""))
        return fit
    rng = np.random.default_rng(seed)
    boot_means = np.array([resample_means(groups, rng) for _ in range(max(resamples, 1))])
    law = fit_power_law(sizes, means)
    fit.law = asdict(law)
    boot = [fit_power_law(sizes, m, refine=False) for m in boot_means]
    fit.alpha_ci = _interval(np.array([b.alpha for b in boot]))
    fit.E_ci = _interval(np.array([b.E for b in boot]))
    low, high = fit.alpha_ci
    if law.alpha <= ALPHA_GRID[0] or law.alpha >= ALPHA_GRID[-1] or law.A <= 0:
        fit.flags.append("flat or without curvature: alpha not identified")
    elif not low > 0 or high / low > NOISY_ALPHA_RATIO:
        fit.flags.append(f"too noisy: alpha's 95% interval [{low:.2g}, {high:.2g}] spans more than a factor "
                         f"{NOISY_ALPHA_RATIO:g}")
    fit.holdout = _holdout(sizes, means, boot_means)
    if fit.holdout["missed"]:
        fit.flags.append(f"held-out miss: without the largest size the fit predicts {fit.holdout['predicted']:.4f} "
                         f"there, observed {fit.holdout['observed']:.4f}, outside the prediction's 95% interval")
    return fit


def _holdout(sizes: np.ndarray, means: np.ndarray, boot_means: np.ndarray) -> dict:
    """Fit without the largest size, predict it; the interval of (predicted - observed) comes
    from the same seed bootstrap (both the head fit and the observed mean resampled)."""
    head = fit_power_law(sizes[:-1], means[:-1])
    predicted = float(head.predict(sizes[-1]))
    errors = np.array([fit_power_law(sizes[:-1], m[:-1], refine=False).predict(sizes[-1]) - m[-1]
                       for m in boot_means])
    interval = _interval(errors)
    return {"size": float(sizes[-1]), "observed": float(means[-1]), "predicted": predicted,
            "error": predicted - float(means[-1]), "error_ci": interval,
            "missed": bool(not interval[0] <= 0.0 <= interval[1])}


def bootstrap_band(fit: CurveFit, groups: Sequence[np.ndarray], grid: np.ndarray, resamples: int = 300,
                   seed: int = 1) -> np.ndarray:
    """(2, len(grid)): 95% band of the fitted curve's prediction, from the seed bootstrap."""
    rng = np.random.default_rng(seed)
    sizes, groups = _sorted_groups(fit.sizes, groups)
    preds = np.array([fit_power_law(sizes, resample_means(groups, rng), refine=False).predict(grid)
                      for _ in range(resamples)])
    return np.percentile(preds, [2.5, 97.5], axis=0)


def effective_size(se: PowerLaw, target_error: float) -> float:
    """The N at which the SE curve reaches `target_error` (inf if it never does)."""
    reducible = target_error - se.E
    if reducible <= 0 or se.A <= 0:
        return float("inf")
    return float(se.n0 * (se.A / reducible) ** (1.0 / se.alpha))


def effective_size_multiplier(se_sizes: Sequence[float], se_groups: Sequence[np.ndarray], me_size: float,
                              me_group: np.ndarray, resamples: int = 1000, seed: int = 3) -> dict:
    """SE size needed to reach ME's error at `me_size`, over `me_size`, with a seed-bootstrap
    interval (SE curve and ME mean resampled together). `reached` is false when SE's fitted
    curve never gets there (its floor E is above ME's error); `extrapolated` when the size
    needed lies beyond the largest SE size measured. An unbounded interval end is None."""
    se_sizes, se_groups = _sorted_groups(se_sizes, se_groups)
    me_group = np.asarray(me_group, dtype=float)
    law = fit_power_law(se_sizes, [g.mean() for g in se_groups])
    needed = effective_size(law, float(me_group.mean()))
    rng = np.random.default_rng(seed)
    boot = np.array([effective_size(fit_power_law(se_sizes, resample_means(se_groups, rng), refine=False),
                                    float(rng.choice(me_group, len(me_group)).mean()))
                     for _ in range(max(resamples, 1))]) / me_size
    # inf sorts last; no interpolation, so an unreached end stays inf instead of turning NaN
    low, high = np.percentile(boot, 2.5, method="lower"), np.percentile(boot, 97.5, method="higher")
    finite = np.isfinite(needed)
    return {"me_size": float(me_size), "me_auc": 1.0 - float(me_group.mean()), "reached": bool(finite),
            "se_size_needed": float(needed) if finite else None,
            "multiplier": float(needed / me_size) if finite else None,
            "multiplier_ci": [float(low) if np.isfinite(low) else None, float(high) if np.isfinite(high) else None],
            "extrapolated": bool(not finite or needed > se_sizes[-1])}
