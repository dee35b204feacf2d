"""Scaling fits per arm: the candidate forms of `forms.py`, one chosen by held-out error and
checked on a size that did not choose it, with parametric (t-based) intervals.

Fit the error, not the score (1 − AUC, or logloss), on the per-size seed means against
L = log2(N / N0). Selection: hold a size out, fit each form on the rest and predict the held-out
mean; the score is the root-mean-square error of those predictions (from 5 sizes on, each size
in turn). The simplest form whose score is within noise of the best one's wins (noise: the
root-mean-square standard error of the held-out means). The runner-up is the best-scoring
other form.

Trust is an equivalence statement that noise cannot buy. With 4 or more sizes the whole
procedure — choosing the form, then fitting it — is run again on every size but the largest,
and its fit is asked to predict the largest, which thus never helped choose what predicts it.
The fit is trusted when the 90% interval of (prediction − observed mean) lies inside ±margin
(and, when the largest size changed the form chosen, the reported form passes the same check)
(TOST at 5%; the prediction is linearised in the per-size means, each size with its own seed
variance and the small-sample degrees of freedom of `intervals.py`). Noisy data give a wide
interval and so *no* trust. With 3 sizes, or fewer than 3 seeds at some size, the check is
"not checkable". Only trusted fits are extrapolated, drawn with a band, or used for the
effective-size multiplier.

Resampling: a cell's mean is drawn as mean + s/√n · t(n−1) (a parametric draw: resampling 3
seeds has only 10 distinct means and understates the spread). The multiplier's interval
repeats the form's selection in every draw, so the uncertainty of the choice is carried.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np

from .forms import Fitted, first_reaching, fit_form, usable_forms
from .intervals import MIN_SEEDS, Contrast, t_interval

MIN_SIZES = 3  # two sizes to fit on and one to check
CHECKABLE_SIZES = 4  # the form chosen on all but the largest, which then checks it
TRUST_LEVEL = 0.90  # TOST at 5%: the 90% interval of the held-out error inside ±margin


def _interval(values: np.ndarray, level: float = 0.95) -> List[float]:
    finite = values[np.isfinite(values)]
    if not len(finite):
        return [float("nan"), float("nan")]
    tail = 100 * (1 - level) / 2
    return [float(np.percentile(finite, tail)), float(np.percentile(finite, 100 - tail))]


def resample_means(groups: Sequence[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """One parametric draw of the per-size means: mean + s/√n · t(n − 1); a single seed borrows
    the pooled spread (with a normal draw)."""
    groups = [np.asarray(g, dtype=float) for g in groups]
    errors = _standard_errors(groups)
    dof = np.array([max(len(g) - 1, 0) for g in groups], dtype=float)
    draws = np.where(dof > 0, rng.standard_t(np.maximum(dof, 1.0)), rng.standard_normal(len(groups)))
    return np.array([g.mean() for g in groups]) + errors * draws


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
    trust: str = "no fit"  # "trusted", "not trusted" or "not checkable: why"
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

    def interior_best(self) -> Optional[float]:
        """The size where a peaked fit's error is lowest, when that lies strictly inside the
        measured range (None for every other form or a vertex outside)."""
        if self.form != "peaked" or self.params.get("c", 0.0) <= 0:
            return None
        vertex = -self.params["b"] / (2 * self.params["c"])
        top = float(self.log_size(max(self.sizes)))
        return self.n0 * 2.0**vertex if 0.0 < vertex < top else None

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


def select_form(L: np.ndarray, means: np.ndarray, errors: np.ndarray) -> tuple:
    """(chosen form, runner-up name or None, cv scores, noise) by held-out error on these sizes."""
    forms = usable_forms(len(L))
    scores = cross_validate(L, means, forms)
    noise = float(np.sqrt(np.mean(np.square(errors[_folds(len(L))]))))
    best = min(scores.values())
    chosen = next(f for f in forms if scores[f.name] <= best + noise)
    others = sorted((scores[f.name], f.name) for f in forms if f is not chosen)
    return chosen, (others[0][1] if others else None), scores, noise


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
    errors = _standard_errors(groups)
    checkable = len(sizes) >= CHECKABLE_SIZES
    chosen, fit.runner_up, fit.cv_error, fit.noise = select_form(L, means, errors)
    fit.form, fit.equation = chosen.name, chosen.equation
    fit.params = dict(fit_form(chosen.name, L, means).params)
    rng = np.random.default_rng(seed)
    draws = [fit_form(chosen.name, L, resample_means(groups, rng), refine=False).params for _ in range(max(resamples, 1))]
    fit.params_ci = {k: _interval(np.array([d[k] for d in draws])) for k in fit.params}
    if fit.runner_up is not None and checkable:
        fit.runner_up_holdout_error = float(fit_form(fit.runner_up, L[:-1], means[:-1]).at(L[-1:])[0] - means[-1])
    if not checkable:
        fit.trust = f"not checkable: {len(sizes)} sizes (the form is chosen on all of them; {CHECKABLE_SIZES} needed)"
    elif min(fit.seeds) < MIN_SEEDS:
        fit.trust = f"not checkable: {min(fit.seeds)} seed(s) at some size ({MIN_SEEDS} needed for an interval)"
    if fit.trust.startswith("not checkable"):
        fit.flags.append(fit.trust)
        return fit
    head_form = select_form(L[:-1], means[:-1], errors[:-1])[0].name
    fit.holdout = holdout_check(head_form, L, sizes, groups, margin)
    # When the largest size changed the form chosen, the reported form must pass the same check too.
    own = fit.holdout if head_form == chosen.name else holdout_check(chosen.name, L, sizes, groups, margin)
    fit.trusted = fit.holdout["within"] and own["within"]
    fit.trust = "trusted" if fit.trusted else "not trusted"
    if not own["within"]:
        fit.flags.append(f"the largest size changes the chosen form ({head_form} without it), and the "
                         f"{chosen.name} form fitted without it misses it: 90% interval [{own['error_ci'][0]:+.5f}, "
                         f"{own['error_ci'][1]:+.5f}], not inside ±{margin:g}")
    if not fit.holdout["within"]:
        h = fit.holdout
        fit.flags.append(f"held-out check: chosen and fitted without the largest size, the {head_form} form predicts "
                         f"{1 - h['predicted']:.5f} AUC there, observed {1 - h['observed']:.5f}; the 90% interval "
                         f"of the miss [{h['error_ci'][0]:+.5f}, {h['error_ci'][1]:+.5f}] is not inside ±{margin:g}")
    return fit


def _prediction_weights(form: str, L: np.ndarray, means: np.ndarray, errors: np.ndarray) -> np.ndarray:
    """d prediction(L[-1]) / d means[:-1] of the fit on the head: exact for the linear forms, a
    central difference of one hundredth of a standard error for the power law."""
    def predict(head_means):
        return float(fit_form(form, L[:-1], head_means).at(L[-1:])[0])
    steps = np.maximum(errors[:-1] * 0.01, 1e-9)
    gradient = []
    for j, step in enumerate(steps):
        bump = np.zeros(len(steps))
        bump[j] = step
        gradient.append((predict(means[:-1] + bump) - predict(means[:-1] - bump)) / (2 * step))
    return np.array(gradient)


def holdout_check(form: str, L: np.ndarray, sizes: np.ndarray, groups: Sequence[np.ndarray], margin: float) -> dict:
    """Fit the form without the largest size and predict it: the miss with a t interval from the
    per-size seed variances (the prediction linearised in the head's means); `within` when the
    90% interval lies inside ±margin."""
    means = np.array([g.mean() for g in groups])
    errors = _standard_errors(groups)
    predicted = float(fit_form(form, L[:-1], means[:-1]).at(L[-1:])[0])
    weights = np.append(_prediction_weights(form, L, means, errors), -1.0)
    counts = np.array([len(g) for g in groups], float)
    variances = np.array([np.asarray(g, float).var(ddof=1) for g in groups])
    error = predicted - float(means[-1])
    se, df = Contrast(error, weights, variances, counts).standard_error()
    low, high = t_interval(error, se, df, TRUST_LEVEL)
    return {"form": form, "size": float(sizes[-1]), "observed": float(means[-1]), "predicted": predicted, "error": error,
            "error_ci": [low, high], "level": TRUST_LEVEL, "within": bool(-margin < low and high < margin)}


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


def _selected_and_fitted(L: np.ndarray, means: np.ndarray, errors: np.ndarray) -> Fitted:
    """The fit the report would make of these means: the form chosen as fit_curve chooses it,
    fitted on every size."""
    return fit_form(select_form(L, means, errors)[0].name, L, means, refine=False)


def effective_size_multiplier(se_fit: CurveFit, se_groups: Sequence[np.ndarray], me_size: float,
                              me_group: np.ndarray, resamples: int = 1000, seed: int = 3) -> dict:
    """SE size needed (on SE's chosen, trusted form) to reach ME's error at `me_size`, over
    `me_size`, with a parametric interval: in each draw SE's means and ME's mean are drawn, and
    SE's form is chosen again, so the interval carries the choice of form too. `reached` is
    false when SE's fitted curve never gets there; `extrapolated` when the size needed lies
    beyond the largest SE size measured. An unbounded interval end is None."""
    sizes, se_groups = _sorted_groups(se_fit.sizes, se_groups)
    me_group = np.asarray(me_group, dtype=float)
    L = np.log2(sizes / sizes[0])
    errors = _standard_errors(se_groups)
    needed = _needed_size(se_fit.fitted(), sizes[0], float(me_group.mean()))
    rng = np.random.default_rng(seed)
    boot = np.array([_needed_size(_selected_and_fitted(L, resample_means(se_groups, rng), errors), sizes[0],
                                  float(resample_means([me_group], rng)[0]))
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
