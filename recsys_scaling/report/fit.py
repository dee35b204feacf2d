"""Scaling fits per arm: the candidate forms of `forms.py`, one chosen by held-out error, trusted
in practical terms, with seed-bootstrap intervals.

Fit the error, not the score (1 − AUC, or logloss), on the per-size seed means against
L = log2(N / N0). Selection: hold the largest size out (and, from 5 sizes on, each size in turn),
fit each form on the rest and predict the held-out mean; the score is the root-mean-square
error of those predictions. The simplest form whose score is within noise of the best one's
wins (noise: the root-mean-square standard error of the held-out means — differences below it
are seed noise, not shape). The runner-up is the best-scoring other form.

Trust: refit the chosen form without the largest size and predict it. The fit is trusted when
that prediction misses the observed mean by at most the report's practical margin, or by less
than its own 95% prediction interval (a seed bootstrap of the head fit and the observed mean),
whichever is wider. Only trusted fits are extrapolated, drawn with a band, or used for the
effective-size multiplier.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np

from .forms import Fitted, first_reaching, fit_form, usable_forms

MIN_SIZES = 3  # two sizes to fit on and one to check


def _interval(values: np.ndarray, level: float = 0.95) -> List[float]:
    finite = values[np.isfinite(values)]
    if not len(finite):
        return [float("nan"), float("nan")]
    tail = 100 * (1 - level) / 2
    return [float(np.percentile(finite, tail)), float(np.percentile(finite, 100 - tail))]


def resample_means(groups: Sequence[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    return np.array([rng.choice(g, size=len(g), replace=True).mean() for g in groups])


def _sorted_groups(sizes: Sequence[float], groups: Sequence[np.ndarray]):
    order = np.argsort(sizes)
    return np.asarray(sizes, dtype=float)[order], [np.asarray(groups[i], dtype=float) for i in order]


@dataclass
class CurveFit:
    """One (backbone, arm) curve of an error metric (lower is better) against size N."""

    sizes: List[float]
    means: List[float]
    seeds: List[int]
    margin: float = 0.0005
    form: Optional[str] = None
    equation: str = ""
    params: Dict[str, float] = field(default_factory=dict)
    params_ci: Dict[str, List[float]] = field(default_factory=dict)
    cv_error: Dict[str, float] = field(default_factory=dict)  # form -> held-out RMS error
    noise: Optional[float] = None  # RMS standard error of the held-out means
    runner_up: Optional[str] = None
    holdout: Optional[dict] = None  # the chosen form without the largest size
    runner_up_holdout_error: Optional[float] = None
    trusted: bool = False
    flags: List[str] = field(default_factory=list)

    @property
    def n0(self) -> float:
        return float(min(self.sizes))

    @property
    def holdout_error(self) -> Optional[float]:
        return None if self.holdout is None else self.holdout["error"]

    def log_size(self, n) -> np.ndarray:
        return np.log2(np.asarray(n, dtype=float) / self.n0)

    def fitted(self) -> Optional[Fitted]:
        return None if self.form is None else Fitted(self.form, self.params)

    def predict(self, n) -> np.ndarray:
        return self.fitted().at(self.log_size(n))

    def as_dict(self) -> dict:
        return {**asdict(self), "holdout_error": self.holdout_error}


def _standard_errors(groups: Sequence[np.ndarray]) -> np.ndarray:
    """Per-size standard error of the mean; a single seed borrows the pooled seed sd."""
    variances = np.array([g.var(ddof=1) if len(g) > 1 else np.nan for g in groups])
    pooled = np.nanmean(variances) if np.isfinite(variances).any() else 0.0
    variances = np.where(np.isfinite(variances), variances, pooled)
    return np.sqrt(variances / np.array([len(g) for g in groups]))


def _folds(count: int) -> List[int]:
    return list(range(count)) if count >= 5 else [count - 1]


def cross_validate(L: np.ndarray, means: np.ndarray, forms) -> Dict[str, float]:
    """form name -> RMS error of its held-out predictions."""
    scores = {}
    for form in forms:
        errors = []
        for i in _folds(len(L)):
            keep = np.arange(len(L)) != i
            errors.append(fit_form(form.name, L[keep], means[keep]).at(L[i:i + 1])[0] - means[i])
        scores[form.name] = float(np.sqrt(np.mean(np.square(errors))))
    return scores


def fit_curve(sizes: Sequence[float], groups: Sequence[np.ndarray], resamples: int = 1000, seed: int = 0,
              margin: float = 0.0005) -> CurveFit:
    """`groups[i]`: the per-seed values (an error metric) at size `sizes[i]`."""
    sizes, groups = _sorted_groups(sizes, groups)
    means = np.array([g.mean() for g in groups])
    fit = CurveFit(sizes.tolist(), means.tolist(), [len(g) for g in groups], margin=margin)
    if len(sizes) < MIN_SIZES:
        fit.flags.append("a single size: no curve" if len(sizes) < 2 else
                         f"{len(sizes)} sizes: no fit (at least {MIN_SIZES}: two to fit, one to check it)")
        return fit
    L = np.log2(sizes / sizes[0])
    forms = usable_forms(len(sizes))
    fit.cv_error = cross_validate(L, means, forms)
    errors = _standard_errors(groups)
    fit.noise = float(np.sqrt(np.mean(np.square(errors[_folds(len(L))]))))
    best = min(fit.cv_error.values())
    chosen = next(f for f in forms if fit.cv_error[f.name] <= best + fit.noise)
    others = sorted((score, f.name) for f in forms if f is not chosen for score in [fit.cv_error[f.name]])
    fit.form, fit.equation = chosen.name, chosen.equation
    fit.runner_up = others[0][1] if others else None
    fitted = fit_form(chosen.name, L, means)
    fit.params = dict(fitted.params)
    rng = np.random.default_rng(seed)
    boot_means = np.array([resample_means(groups, rng) for _ in range(max(resamples, 1))])
    boot = [fit_form(chosen.name, L, m, refine=False).params for m in boot_means]
    fit.params_ci = {k: _interval(np.array([b[k] for b in boot])) for k in fit.params}
    fit.holdout = _holdout(chosen.name, L, sizes, means, boot_means, margin)
    if fit.runner_up is not None:
        head = fit_form(fit.runner_up, L[:-1], means[:-1])
        fit.runner_up_holdout_error = float(head.at(L[-1:])[0] - means[-1])
    fit.trusted = fit.holdout["within"]
    if not fit.trusted:
        h = fit.holdout
        fit.flags.append(f"held-out miss: without the largest size the {chosen.name} fit predicts "
                         f"{1 - h['predicted']:.5f} AUC there, observed {1 - h['observed']:.5f}: off by "
                         f"{abs(h['error']):.5f}, more than the margin {margin:g} and outside its 95% prediction "
                         f"interval")
    return fit


def _holdout(form: str, L: np.ndarray, sizes: np.ndarray, means: np.ndarray, boot_means: np.ndarray,
             margin: float) -> dict:
    """Fit without the largest size, predict it; the interval of (predicted − observed) comes
    from the same seed bootstrap (head fit and observed mean both resampled)."""
    predicted = float(fit_form(form, L[:-1], means[:-1]).at(L[-1:])[0])
    errors = np.array([fit_form(form, L[:-1], m[:-1], refine=False).at(L[-1:])[0] - m[-1] for m in boot_means])
    interval = _interval(errors)
    error = predicted - float(means[-1])
    inside_interval = bool(interval[0] <= 0.0 <= interval[1])
    return {"size": float(sizes[-1]), "observed": float(means[-1]), "predicted": predicted, "error": error,
            "error_ci": interval, "within_margin": bool(abs(error) <= margin),
            "within_interval": inside_interval, "within": bool(abs(error) <= margin or inside_interval)}


def bootstrap_band(fit: CurveFit, groups: Sequence[np.ndarray], grid: np.ndarray, resamples: int = 300,
                   seed: int = 1) -> np.ndarray:
    """(2, len(grid)): 95% band of the chosen form's prediction over sizes `grid`."""
    rng = np.random.default_rng(seed)
    sizes, groups = _sorted_groups(fit.sizes, groups)
    L, at = np.log2(sizes / sizes[0]), np.log2(np.asarray(grid, dtype=float) / sizes[0])
    preds = np.array([fit_form(fit.form, L, resample_means(groups, rng), refine=False).at(at)
                      for _ in range(resamples)])
    return np.percentile(preds, [2.5, 97.5], axis=0)


def _needed_size(fitted: Fitted, n0: float, target: float) -> float:
    return float(n0 * 2.0 ** first_reaching(fitted, target))


def _never_note(se_fit: CurveFit) -> str:
    """Why SE's curve never gets to ME's error, in words."""
    p = se_fit.params
    if se_fit.form == "peaked" and p["c"] > 0 and p["b"] < 0:
        turn = se_fit.n0 * 2.0 ** (-p["b"] / (2 * p["c"]))
        return f"SE never reaches ME at any size: its fitted curve is best near {turn:.3g} and declines after"
    if se_fit.form in ("constant", "log-linear", "peaked"):
        return f"SE never reaches ME at any size: its fitted curve ({se_fit.form}) does not improve enough"
    return "SE never reaches ME at any size: its fitted floor is above ME's AUC"


def effective_size_multiplier(se_fit: CurveFit, se_groups: Sequence[np.ndarray], me_size: float,
                              me_group: np.ndarray, resamples: int = 1000, seed: int = 3) -> dict:
    """SE size needed (on SE's chosen, trusted form) to reach ME's error at `me_size`, over
    `me_size`, with a seed-bootstrap interval (SE curve and ME mean resampled together).
    `reached` is false when SE's fitted curve never gets there; `extrapolated` when the size
    needed lies beyond the largest SE size measured. An unbounded interval end is None."""
    sizes, se_groups = _sorted_groups(se_fit.sizes, se_groups)
    me_group = np.asarray(me_group, dtype=float)
    L = np.log2(sizes / sizes[0])
    needed = _needed_size(se_fit.fitted(), sizes[0], float(me_group.mean()))
    rng = np.random.default_rng(seed)
    boot = np.array([_needed_size(fit_form(se_fit.form, L, resample_means(se_groups, rng), refine=False), sizes[0],
                                  float(rng.choice(me_group, len(me_group)).mean()))
                     for _ in range(max(resamples, 1))]) / me_size
    # inf sorts last; no interpolation, so an unreached end stays inf instead of turning NaN
    low, high = np.percentile(boot, 2.5, method="lower"), np.percentile(boot, 97.5, method="higher")
    finite = bool(np.isfinite(needed))
    return {"me_size": float(me_size), "me_auc": 1.0 - float(me_group.mean()), "se_form": se_fit.form,
            "reached": finite, "se_size_needed": needed if finite else None,
            "multiplier": float(needed / me_size) if finite else None,
            "multiplier_ci": [float(low) if np.isfinite(low) else None, float(high) if np.isfinite(high) else None],
            "extrapolated": bool(not finite or needed > sizes[-1]),
            "note": "" if finite else _never_note(se_fit)}


__all__ = ["CurveFit", "bootstrap_band", "effective_size_multiplier", "fit_curve", "resample_means"]
