"""Candidate shapes of a scaling curve, fitted to an error metric (1 − AUC, or logloss) against
L = log2(N / N0), N0 the smallest size measured.

Real recommender curves improve, saturate, and often get worse again (the paper's Table 1:
SE DNN, xDeepFM and FinalMLP decline past 4x). One saturating power law cannot describe that,
so each arm is fitted with four forms, from the simplest:

* ``constant``  y = c                        — saturated: size does not matter;
* ``log-linear`` y = a + b·L                 — a steady gain (or loss) per doubling;
* ``power law``  y = E + A·2^(−α·L), E, A ≥ 0 — diminishing gains towards a floor E;
* ``peaked``     y = a + b·L + c·L², c ≥ 0   — improves, saturates, then declines.

The peaked form is a parabola in log-size (convex in the error). It has three parameters, as
many as the power law, so it can be held out and checked on five sizes; a power law plus a
linear term would need four and interpolate four points exactly, leaving nothing to check.

Linear parameters come from least squares (non-negative where the form says so); the power
law's α from a grid with NNLS for (E, A) at each α, then a bounded 1-D refinement.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Sequence

import numpy as np
from scipy.optimize import minimize_scalar, nnls

ALPHA_GRID = np.geomspace(0.02, 3.0, 160)


CURVES: Dict[str, Callable[[Dict[str, float], np.ndarray], np.ndarray]] = {
    "constant": lambda p, L: np.full(np.shape(L), p["c"]),
    "log-linear": lambda p, L: p["a"] + p["b"] * L,
    "power law": lambda p, L: p["E"] + p["A"] * 2.0 ** (-p["alpha"] * L),
    "peaked": lambda p, L: p["a"] + p["b"] * L + p["c"] * L**2,
}


@dataclass(frozen=True)
class Fitted:
    form: str
    params: Dict[str, float]

    def at(self, log_sizes) -> np.ndarray:
        """The fitted error at L = log2(N / N0)."""
        return CURVES[self.form](self.params, np.asarray(log_sizes, dtype=float))


@dataclass(frozen=True)
class Form:
    name: str
    parameters: int
    equation: str
    fit: Callable[[np.ndarray, np.ndarray], Fitted]


def _constant(L: np.ndarray, y: np.ndarray) -> Fitted:
    return Fitted("constant", {"c": float(np.mean(y))})


def _log_linear(L: np.ndarray, y: np.ndarray) -> Fitted:
    b, a = np.polyfit(L, y, 1)
    return Fitted("log-linear", {"a": float(a), "b": float(b)})


def _peaked(L: np.ndarray, y: np.ndarray) -> Fitted:
    c, b, a = np.polyfit(L, y, 2)
    if c < 0:  # a concave error (accelerating gains) is not this form: its boundary is a line
        b, a = np.polyfit(L, y, 1)
        c = 0.0
    return Fitted("peaked", {"a": float(a), "b": float(b), "c": float(c)})


def _grid_sse(L: np.ndarray, y: np.ndarray, alphas: np.ndarray) -> np.ndarray:
    """Smallest squared error over E, A >= 0 at each alpha (the 2-parameter NNLS in closed form:
    the unconstrained solution if feasible, else the better of the boundaries)."""
    x = 2.0 ** (-alphas[:, None] * L[None, :])  # (G, m)
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


def _power_at(L: np.ndarray, y: np.ndarray, alpha: float) -> tuple:
    design = np.column_stack([np.ones_like(L), 2.0 ** (-alpha * L)])
    (E, A), residual = nnls(design, y)
    return float(E), float(A), float(residual**2)


def power_law(L: np.ndarray, y: np.ndarray, refine: bool = True) -> Fitted:
    i = int(np.argmin(_grid_sse(L, y, ALPHA_GRID)))
    alpha = float(ALPHA_GRID[i])
    E, A, sse = _power_at(L, y, alpha)
    if refine and 0 < i < len(ALPHA_GRID) - 1:
        found = minimize_scalar(lambda a: _power_at(L, y, a)[2], bounds=(ALPHA_GRID[i - 1], ALPHA_GRID[i + 1]),
                                method="bounded", options={"xatol": 1e-4})
        refined = _power_at(L, y, float(found.x))
        if refined[2] <= sse:
            alpha, (E, A, sse) = float(found.x), refined
    return Fitted("power law", {"E": E, "A": A, "alpha": alpha})


FORMS: List[Form] = [
    Form("constant", 1, "1−AUC = c", _constant),
    Form("log-linear", 2, "1−AUC = a + b·log₂(N/N₀)", _log_linear),
    Form("power law", 3, "1−AUC = E + A·(N/N₀)^(−α)", power_law),
    Form("peaked", 3, "1−AUC = a + b·L + c·L², c ≥ 0", _peaked),
]
BY_NAME = {form.name: form for form in FORMS}


def usable_forms(sizes: int) -> List[Form]:
    """Forms that can be fitted and still leave a size to hold out."""
    return [form for form in FORMS if form.parameters <= sizes - 1]


def first_reaching(fitted: Fitted, target: float, start: float = 0.0, stop: float = 60.0) -> float:
    """The smallest L >= start at which the fitted error is at most `target` (inf if none up to
    `stop`, 2^60 times the smallest size): a scan on a fine grid, refined by bisection."""
    grid = np.linspace(start, stop, 6001)
    below = np.nonzero(fitted.at(grid) <= target)[0]
    if not len(below):
        return float("inf")
    j = int(below[0])
    if j == 0:
        return float(start)
    low, high = grid[j - 1], grid[j]
    for _ in range(50):
        mid = 0.5 * (low + high)
        if fitted.at(np.array([mid]))[0] <= target:
            high = mid
        else:
            low = mid
    return float(high)


def fit_form(name: str, log_sizes: Sequence[float], values: Sequence[float], refine: bool = True) -> Fitted:
    L, y = np.asarray(log_sizes, dtype=float), np.asarray(values, dtype=float)
    if name == "power law":
        return power_law(L, y, refine=refine)
    return BY_NAME[name].fit(L, y)
