"""A fitted surface of 1 − AUC over (K sets, d width), for budgets the grid did not measure.

Forms, on k = log2 K and log_d = log2 d (the error y = 1 − AUC):

* ``additive``     y = a + b·k + c·log_d — each doubling of K or of d is worth a fixed amount;
* ``interaction``  y = a + b·k + c·log_d + e·k·log_d — what a doubling of K is worth depends on d;
* ``power law``    y = E + A·K^(−β) + B·d^(−γ), E, A, B ≥ 0 — diminishing returns in both,
  a shared floor (the Chinchilla-style separable form, with sets and width for parameters and
  data).

The form with the smallest error on the largest budget's cells, held out, wins (the simplest
within noise of the best). A budget on an axis is turned into (K, d) pairs through a
least-squares fit of log2(size) on k and log_d (exact on the embedding axis, where size =
Σ vocabulary × K × d). Intervals resample the seeds within each cell.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
from scipy.optimize import nnls

EXPONENTS = np.geomspace(0.05, 3.0, 24)
K_CHOICES = np.array([1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32, 48, 64])
SHAPE_REACH = 2  # a recommended K or d is at most this factor beyond the measured ones


def _additive(k, log_d):
    return np.column_stack([np.ones_like(k), k, log_d])


def _interaction(k, log_d):
    return np.column_stack([np.ones_like(k), k, log_d, k * log_d])


def _linear_fit(design: Callable) -> Callable:
    def fit(k, log_d, y):
        coef, *_ = np.linalg.lstsq(design(k, log_d), y, rcond=None)
        return lambda kk, log_dd: design(np.atleast_1d(kk), np.atleast_1d(log_dd)) @ coef

    return fit


def _power(k, log_d, y):
    K, d = 2.0**k, 2.0**log_d
    best = None
    for beta in EXPONENTS:
        for gamma in EXPONENTS:
            design = np.column_stack([np.ones_like(K), K**-beta, d**-gamma])
            coef, residual = nnls(design, y)
            if best is None or residual < best[0]:
                best = (residual, beta, gamma, coef)
    _, beta, gamma, (E, A, B) = best
    return lambda kk, log_dd: (E + A * (2.0 ** np.atleast_1d(kk)) ** -beta
                               + B * (2.0 ** np.atleast_1d(log_dd)) ** -gamma)


@dataclass(frozen=True)
class Form:
    name: str
    parameters: int
    equation: str
    fit: Callable


FORMS = [
    Form("additive", 3, "1−AUC = a + b·log2 K + c·log2 d", _linear_fit(_additive)),
    Form("interaction", 4, "1−AUC = a + b·log2 K + c·log2 d + e·log2 K·log2 d", _linear_fit(_interaction)),
    Form("power law", 5, "1−AUC = E + A·K^(−β) + B·d^(−γ)", _power),
]


@dataclass
class Surface:
    form: str
    equation: str
    holdout_error: float  # RMS error (AUC) on the largest budget's cells, fitted without them
    errors: Dict[str, float]  # form -> that error
    predict: Callable = field(repr=False)  # (k, log_d) -> error
    boot: List[Callable] = field(default_factory=list, repr=False)
    axis_coef: np.ndarray = field(default=None, repr=False)  # log2 size = u + v k + w log_d

    def as_dict(self) -> dict:
        return {"form": self.form, "equation": self.equation, "holdout_error": self.holdout_error,
                "errors": self.errors, "axis_model": [float(v) for v in self.axis_coef]}

    def shapes_for(self, budget: float, cells: Sequence) -> List[tuple]:
        """(K, d) pairs on the budget's line near the measured grid: each K of a ladder up to
        SHAPE_REACH x the largest measured, d from the axis model, rounded, within SHAPE_REACH of
        the measured widths (a shape far outside the grid is the form's guess, not the data's)."""
        u, v, w = self.axis_coef
        top = SHAPE_REACH * max(c.K for c in cells)
        narrowest, widest = min(c.d for c in cells) / SHAPE_REACH, max(c.d for c in cells) * SHAPE_REACH
        ks = sorted({*K_CHOICES[K_CHOICES <= top].tolist(), *(c.K for c in cells)})
        pairs = []
        for K in ks:
            d = 2.0 ** ((np.log2(budget) - u - v * np.log2(K)) / w) if w else float("nan")
            if not (np.isfinite(d) and d >= 0.5 and narrowest <= d <= widest):
                continue
            d_int = max(1, int(round(d)))
            size = 2.0 ** (u + v * np.log2(K) + w * np.log2(d_int))
            if abs(size - budget) <= 0.15 * budget:  # rounding d must keep the shape on this budget
                pairs.append((int(K), d_int))
        return sorted(set(pairs))

    def best_shape(self, budget: float, cells: Sequence) -> dict:
        """The fitted best (K, d) for a budget, its AUC with a 95% bootstrap interval, how often
        the bootstrap fits chose the same shape (p_best) and the range of K they chose."""
        pairs = self.shapes_for(budget, cells)
        if not pairs:
            return {"budget": float(budget), "K": None, "d": None, "auc": None, "low": None, "high": None,
                    "p_best": None, "K_interval": [None, None]}
        k = np.log2([p[0] for p in pairs])
        log_d = np.log2([p[1] for p in pairs])
        i = int(np.argmin(self.predict(k, log_d)))
        picks, values = [], []
        for fitted in self.boot:
            errors = fitted(k, log_d)
            picks.append(int(np.argmin(errors)))
            values.append(_auc(errors[i]))
        K, d = pairs[i]
        low, high = (np.percentile(values, [2.5, 97.5]).tolist() if values else [None, None])
        chosen_K = [pairs[j][0] for j in picks]
        auc = _auc(self.predict(k[i:i + 1], log_d[i:i + 1])[0])
        return {"budget": float(budget), "K": K, "d": d, "auc": auc,
                "low": low, "high": high, "p_best": (picks.count(i) / len(picks)) if picks else None,
                "K_interval": ([int(np.percentile(chosen_K, 2.5)), int(np.percentile(chosen_K, 97.5))]
                               if chosen_K else [None, None])}


def _auc(error: float) -> float:
    """AUC from a predicted error, kept in [0, 1] (a linear form's error can cross 0)."""
    return float(np.clip(1.0 - float(error), 0.0, 1.0))


def _axis_model(cells) -> np.ndarray:
    design = np.column_stack([np.ones(len(cells)), np.log2([c.K for c in cells]), np.log2([c.d for c in cells])])
    coef, *_ = np.linalg.lstsq(design, np.log2([c.size for c in cells]), rcond=None)
    if not (np.isfinite(coef).all() and coef[2] > 0):  # d alone never varied: size grows with K·d
        coef = np.array([float(np.mean(np.log2([c.size / (c.K * c.d) for c in cells]))), 1.0, 1.0])
    return coef


def fit_surface(cells: Sequence, resamples: int = 200, seed: int = 0) -> Optional[Surface]:
    """The held-out-best form over the cells; None with fewer than 4 cells or a single budget."""
    if len(cells) < 4 or len({round(np.log2(c.size), 6) for c in cells}) < 2:
        return None
    k = np.log2([c.K for c in cells])
    log_d = np.log2([c.d for c in cells])
    y = 1.0 - np.array([c.mean for c in cells])
    largest = np.array([c.size >= max(x.size for x in cells) / 1.15 for c in cells])
    errors, noise = {}, _noise(cells, largest)
    for form in FORMS:
        if (~largest).sum() < form.parameters:  # an exact fit still predicts the held-out cells
            continue
        fitted = form.fit(k[~largest], log_d[~largest], y[~largest])
        errors[form.name] = float(np.sqrt(np.mean((fitted(k[largest], log_d[largest]) - y[largest]) ** 2)))
    if not errors:
        return None
    best = min(errors.values())
    form = next(f for f in FORMS if f.name in errors and errors[f.name] <= best + noise)
    rng = np.random.default_rng(seed)
    boot = []
    for _ in range(max(resamples, 1)):
        resampled = 1.0 - np.array([rng.choice(c.aucs, size=len(c.aucs)).mean() for c in cells])
        boot.append(form.fit(k, log_d, resampled))
    return Surface(form.name, form.equation, errors[form.name], errors, form.fit(k, log_d, y), boot, _axis_model(cells))


def _noise(cells, held_out: np.ndarray) -> float:
    """RMS standard error of the held-out cells' means (a single seed borrows the median spread)."""
    spreads = [c.aucs.std(ddof=1) for c in cells if len(c.aucs) > 1]
    fallback = float(np.median(spreads)) if spreads else 0.0
    ses = [(c.aucs.std(ddof=1) if len(c.aucs) > 1 else fallback) / np.sqrt(len(c.aucs))
           for c, out in zip(cells, held_out) if out]
    return float(np.sqrt(np.mean(np.square(ses)))) if ses else 0.0
