"""The report's claims: each one a test with a calibrated interval, or "insufficient seeds".

Three kinds of claim:

* ``gap``: ME − SE test AUC at one scale. A t interval on the difference of the seed means:
  Welch's (unequal variances, Welch–Satterthwaite degrees of freedom) by default, or paired by
  seed (a one-sample t interval on the per-seed differences) when asked for and both arms ran
  the same seeds — the seed fixes the shuffling in both arms, so pairing removes that noise.
* ``ia_gap``: ME − SE information abundance of the large fields at one scale (the collapse
  itself; higher is less collapsed), with the same test as ``gap``.
* ``trend``: test AUC gained per doubling of the model size, per arm. Ordinary least squares of
  the per-seed AUCs on log2(size), with the slope's t interval (n − 2 degrees of freedom).

All need at least MIN_SEEDS finished seeds (per arm, per size): with fewer, a t interval is
either undefined or so wide it says nothing, and a bootstrap of two values is far too narrow
(it claimed a difference under a null 16% of the time). Such a claim's verdict is
``insufficient_seeds``; it carries its estimate, no interval, and says how many seeds ran.

Holm's step-down correction across the claims of one report is optional (``holm=True``): the
verdicts then follow the Holm-adjusted p-values; each interval stays a per-claim 95% one.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Dict, Optional, Sequence

import numpy as np
from scipy import stats

MIN_SEEDS = 3
LEVEL = 0.95
PAIRINGS = ("welch", "seed")
INSUFFICIENT = "insufficient_seeds"


@dataclass
class Claim:
    kind: str  # "gap" | "ia_gap" | "trend"
    arm: Optional[str]  # trend: the arm; gap: None
    scale: Optional[int]  # gap: the scale; trend: None
    estimate: float
    low: Optional[float]
    high: Optional[float]
    n_me: Optional[int]  # seeds behind the claim (trend: the fewest at any size)
    n_se: Optional[int]
    method: str
    verdict: str
    p_value: Optional[float] = None
    p_adjusted: Optional[float] = None  # Holm, when asked for
    df: Optional[float] = None

    @property
    def decided(self) -> bool:
        return self.verdict != INSUFFICIENT

    def as_dict(self) -> dict:
        """Plain values; a non-finite estimate (no trend from one size) becomes None."""
        return {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in asdict(self).items()}


def _t_interval(estimate: float, se: float, df: float) -> tuple:
    """(low, high, two-sided p) of a t statistic; a zero standard error decides by the sign."""
    if se == 0.0:
        p = 1.0 if estimate == 0.0 else 0.0
        return estimate, estimate, p
    half = float(stats.t.ppf(0.5 + LEVEL / 2, df)) * se
    p = float(2 * stats.t.sf(abs(estimate) / se, df))
    return estimate - half, estimate + half, p


def _gap_verdict(low: float, high: float) -> str:
    return "me_ahead" if low > 0 else "me_behind" if high < 0 else "no_difference"


def _trend_verdict(low: float, high: float) -> str:
    return "improving" if low > 0 else "worsening" if high < 0 else "flat"


def gap_claim(me: Dict[int, float], se: Dict[int, float], scale: int, pairing: str = "welch",
              kind: str = "gap") -> Claim:
    """ME − SE at one scale; `me` / `se` map seed -> the metric (test AUC for kind "gap", large-
    field IA for "ia_gap") of the finished runs."""
    if pairing not in PAIRINGS:
        raise ValueError(f"pairing={pairing!r}: choose from {PAIRINGS}")
    a, b = np.array(list(me.values()), float), np.array(list(se.values()), float)
    estimate = float(a.mean() - b.mean()) if len(a) and len(b) else float("nan")
    if min(len(a), len(b)) < MIN_SEEDS:
        return Claim(kind, None, scale, estimate, None, None, len(a), len(b), pairing, INSUFFICIENT)
    if pairing == "seed" and set(me) == set(se):
        diffs = np.array([me[s] - se[s] for s in sorted(me)])
        se_diff, df, method = float(diffs.std(ddof=1) / np.sqrt(len(diffs))), len(diffs) - 1.0, "paired t (by seed)"
    else:
        va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
        se_diff = float(np.sqrt(va + vb))
        denominator = va**2 / (len(a) - 1) + vb**2 / (len(b) - 1)
        df = float((va + vb) ** 2 / denominator) if denominator > 0 else float(len(a) + len(b) - 2)
        method = "welch t" if pairing == "welch" else "welch t (arms ran different seeds: not paired)"
    low, high, p = _t_interval(estimate, se_diff, df)
    return Claim(kind, None, scale, estimate, low, high, len(a), len(b), method, _gap_verdict(low, high),
                 p_value=p, df=df)


def trend_claim(arm: str, sizes: Sequence[float], groups: Sequence[Sequence[float]]) -> Claim:
    """AUC gained per doubling of size, least squares over the per-seed points of one arm.
    `groups[i]`: the test AUCs of the finished seeds at `sizes[i]`."""
    counts = [len(g) for g in groups]
    fewest = min(counts) if counts else 0
    x = np.concatenate([np.full(len(g), np.log2(s)) for s, g in zip(sizes, groups)]) if counts else np.array([])
    y = np.concatenate([np.asarray(g, float) for g in groups]) if counts else np.array([])
    n_me, n_se = (fewest, None) if arm == "me" else (None, fewest)
    method = "least squares on log2(size), t interval"
    if len(sizes) < 2 or np.ptp(x) == 0:
        return Claim("trend", arm, None, float("nan"), None, None, n_me, n_se, method + " (one size: no trend)",
                     INSUFFICIENT)
    xc = x - x.mean()
    slope = float((xc * (y - y.mean())).sum() / (xc**2).sum())
    if fewest < MIN_SEEDS:
        return Claim("trend", arm, None, slope, None, None, n_me, n_se, method, INSUFFICIENT)
    residuals = y - y.mean() - slope * xc
    df = len(y) - 2.0
    se_slope = float(np.sqrt((residuals**2).sum() / df / (xc**2).sum()))
    low, high, p = _t_interval(slope, se_slope, df)
    return Claim("trend", arm, None, slope, low, high, n_me, n_se, method, _trend_verdict(low, high),
                 p_value=p, df=df)


def holm_adjust(claims: Sequence[Claim], alpha: float = 1 - LEVEL) -> None:
    """Holm's step-down adjustment across the decided claims, in place: p_adjusted, and a
    verdict that follows it (the sign of the estimate picks the direction)."""
    decided = sorted((c for c in claims if c.decided and c.p_value is not None), key=lambda c: c.p_value)
    m, running = len(decided), 0.0
    for rank, claim in enumerate(decided):
        running = max(running, min(1.0, (m - rank) * claim.p_value))
        claim.p_adjusted = running
        claim.method += f", Holm-adjusted over {m} claims"
        if running >= alpha:
            claim.verdict = "flat" if claim.kind == "trend" else "no_difference"
        elif claim.kind != "trend":
            claim.verdict = "me_ahead" if claim.estimate > 0 else "me_behind"
        else:
            claim.verdict = "improving" if claim.estimate > 0 else "worsening"


def seeds_needed_text(claim: Claim) -> str:
    """Why a claim is undecided, in words."""
    if claim.kind != "trend":
        return f"{claim.n_me} ME and {claim.n_se} SE seeds ran; {MIN_SEEDS} per arm needed"
    fewest = claim.n_me if claim.arm == "me" else claim.n_se
    if not np.isfinite(claim.estimate):
        return "a single size: no trend to measure"
    return f"{fewest} seed{'s' if fewest != 1 else ''} at some size; {MIN_SEEDS} per size needed"


def claim_text(claim: Claim) -> str:
    """One short sentence for one claim."""
    digits = 2 if claim.kind == "ia_gap" else 4
    ci = ("" if claim.low is None else f" (95% CI [{claim.low:+.{digits}f}, {claim.high:+.{digits}f}]"
          + (f", Holm p = {claim.p_adjusted:.3f}" if claim.p_adjusted is not None else "") + ")")
    if claim.kind == "ia_gap":
        where = f"at {claim.scale}x"
        if claim.verdict == INSUFFICIENT:
            return f"large-field IA, ME vs SE {where}: insufficient seeds ({seeds_needed_text(claim)})"
        words = {"me_ahead": "ME's large-field embeddings are less collapsed than SE's",
                 "me_behind": "ME's large-field embeddings are more collapsed than SE's",
                 "no_difference": "no difference in large-field IA between ME and SE"}[claim.verdict]
        return f"{words} {where}: IA {claim.estimate:+.2f}{ci}"
    if claim.kind == "gap":
        where = f"at {claim.scale}x"
        if claim.verdict == INSUFFICIENT:
            return f"ME vs SE {where}: insufficient seeds ({seeds_needed_text(claim)})"
        words = {"me_ahead": "ME is ahead of SE", "me_behind": "ME is behind SE",
                 "no_difference": "no difference between ME and SE"}[claim.verdict]
        return f"{words} {where}: {claim.estimate:+.4f} AUC{ci}"
    arm = claim.arm.upper()
    if claim.verdict == INSUFFICIENT:
        return f"{arm} trend: insufficient seeds ({seeds_needed_text(claim)})"
    words = {"improving": "keeps improving", "worsening": "gets worse", "flat": "is flat within noise"}[claim.verdict]
    return f"{arm} {words}: {claim.estimate:+.4f} AUC per doubling{ci}"
