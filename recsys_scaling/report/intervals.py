"""Intervals for the report's claims: linear contrasts of per-cell seed means.

Every claim estimates a contrast Σ w_j · mean_j over a few cells (a cell: the seeds of one
backbone × arm × size), with standard error sqrt(Σ w_j² s_j² / n_j). Each cell has its own seed
variance s_j²: real curves are not equally noisy at every size (in the paper's Table 1 the seed
sds of one Criteo arm run from 2e-5 to 22e-5), and a slope weighs its end sizes most, so pooling
one variance per arm understates the error exactly where the noise is.

Degrees of freedom. Welch–Satterthwaite's ν̂ alone is liberal with 3-seed cells (6.5–7.7% at a
nominal 5% when a small noisy cell meets larger ones: ν̂ is itself noisy, and large where the
noisy cell's variance came out small). The rule used here shrinks it towards Hsu's bound:

    ν = max(ν₀, ν̂ · ν₀ / (ν₀ + c)),   c = 2 − n_min / n_max,

ν₀ = n_min − 1, n_min and n_max the fewest and most seeds among the contrast's cells. A t with
ν₀ degrees of freedom is conservative for any variance ratio (Hsu; Mickey & Brown), so ν never
drops below it. The shrink is strongest where Welch is most liberal (a 3-seed cell beside
8- or 30-seed cells) and milder for cells of equal size. Simulated over two-cell gaps and
four-size slopes with 3 to 30 seeds and variance ratios 1 to 10, the worst size was 5.0%
(Welch–Satterthwaite alone: 7.7%); tests/test_noise.py measures the report's cases.

Levels. A directional verdict needs the two-sided 1 − α interval to exclude 0. Equivalence is
two one-sided tests (TOST): the 1 − 2α interval inside [−margin, +margin] rejects |effect| ≥
margin at level α (α = 0.05: the 90% interval). With `looks` planned looks at the data (the
adaptive seed loop, one look per added seed), look k spends α·((k/K)² − ((k−1)/K)²): an
α-spending function of the power family (ρ = 2, between Pocock's even split and O'Brien–
Fleming's). The shares add up to α and each look is tested at its own share, so by the union
bound the chance that any look makes a false claim stays ≤ α whatever the looks are, wherever
the loop stops and whichever cells it added seeds to. The even split (ρ = 1) it replaces left
late looks — where the hard claims get decided — at α/K; in simulation of the loop (3 to 10
seeds, claims of 0.3 M per doubling) ρ = 2 decided 95% of the claims against 88%, with fewer
seeds, and kept a null backbone's false-claim rate at 4%.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

import numpy as np
from scipy import special

ALPHA = 0.05
MIN_SEEDS = 3
MAX_SEEDS_NEEDED = 1000


@dataclass(frozen=True)
class Contrast:
    """Σ w·mean over cells, with the per-cell pieces needed for its interval."""

    estimate: float
    weights: np.ndarray  # w_j
    variances: np.ndarray  # s_j², the seed variance of cell j (NaN with fewer than 2 seeds)
    counts: np.ndarray  # n_j
    paired_sd: Optional[float] = None  # set when the contrast is a mean of per-seed differences

    @property
    def fewest(self) -> int:
        return int(self.counts.min()) if len(self.counts) else 0

    def standard_error(self, counts: Optional[np.ndarray] = None,
                       fallback_variance: Optional[float] = None, variances: Optional[np.ndarray] = None) -> tuple:
        """(standard error, degrees of freedom) at the observed or at hypothetical `counts` (and,
        for planning, hypothetical `variances`); a cell without a measured variance takes
        `fallback_variance`."""
        counts = self.counts if counts is None else counts
        if self.paired_sd is not None:
            n = float(counts.min())
            return self.paired_sd / np.sqrt(n), n - 1.0
        variances = self.variances if variances is None else variances
        if fallback_variance is not None:
            variances = np.where(np.isfinite(variances) & (self.counts > 1), variances, fallback_variance)
        pieces = self.weights**2 * variances / counts
        total = float(pieces.sum())
        if not np.isfinite(total):
            return float("nan"), float("nan")
        return float(np.sqrt(total)), small_sample_df(pieces, counts)


def small_sample_df(pieces: np.ndarray, counts: np.ndarray) -> float:
    """The degrees of freedom of Σ pieces_j (pieces_j = w_j² s_j² / n_j): Satterthwaite's, shrunk
    by ν₀ / (ν₀ + 2 − n_min/n_max) and never below ν₀ = n_min − 1 (see the module's note)."""
    dof = np.maximum(counts - 1.0, 1.0)
    nu0 = float(dof.min())
    denominator = float((pieces**2 / dof).sum())
    satterthwaite = float(pieces.sum()) ** 2 / denominator if denominator > 0 else float(dof.sum())
    shrink = nu0 / (nu0 + 2.0 - float(counts.min() / counts.max()))
    return max(nu0, satterthwaite * shrink)


DF_METHOD = "per-cell variances, Satterthwaite df shrunk for small cells (never below the fewest seeds − 1)"


def contrast(cells: Sequence[np.ndarray], weights: Sequence[float]) -> Contrast:
    """Σ w_j · mean(cells[j]), each cell with its own seed variance."""
    cells = [np.asarray(c, float) for c in cells]
    weights = np.asarray(weights, float)
    means = np.array([c.mean() if len(c) else np.nan for c in cells])
    variances = np.array([c.var(ddof=1) if len(c) > 1 else np.nan for c in cells])
    return Contrast(float((weights * means).sum()), weights, variances, np.array([len(c) for c in cells], float))


def paired_contrast(me: Mapping[int, float], se: Mapping[int, float]) -> Contrast:
    """ME − SE as the mean of per-seed differences (both arms ran the same seeds)."""
    diffs = np.array([me[s] - se[s] for s in sorted(me)])
    sd = float(diffs.std(ddof=1)) if len(diffs) > 1 else float("nan")
    return Contrast(float(diffs.mean()), np.array([1.0]), np.array([sd**2]), np.array([len(diffs)], float),
                    paired_sd=sd)


def slope_weights(log_sizes: Sequence[float]) -> np.ndarray:
    """Weights that turn cell means into their least-squares slope on log2(size)."""
    x = np.asarray(log_sizes, float)
    centred = x - x.mean()
    return centred / (centred**2).sum()


def spending_share(look: int, looks: int) -> float:
    """The share of α spent at look `look` (1-based) of `looks` planned: the increments of the
    spending function α·(k/K)², so late looks, where the undecided claims get decided, spend
    more (look k of K: (2k − 1)/K²)."""
    return (look**2 - (look - 1) ** 2) / looks**2


@dataclass(frozen=True)
class Levels:
    """The level of one look: `looks` = 1 for a single report; for adaptive seeds the planned
    looks, of which this is number `look` (its share of α: `spending_share`)."""

    alpha: float = ALPHA
    looks: int = 1
    look: int = 1

    @property
    def per_look(self) -> float:
        return self.alpha * spending_share(min(max(self.look, 1), self.looks), self.looks)

    @property
    def p_scale(self) -> float:
        """What a p-value is multiplied by so that comparing it with alpha tests at per_look."""
        return self.alpha / self.per_look

    @property
    def confidence(self) -> float:
        return 1.0 - self.per_look

    @staticmethod
    def sequential(max_seeds: int, alpha: float = ALPHA, seeds_seen: Optional[int] = None) -> "Levels":
        """Looks at MIN_SEEDS, MIN_SEEDS + 1, ..., max_seeds seeds: one per adaptive round. With
        `seeds_seen` (the most seeds any cell has), the look that many seeds is."""
        looks = max(1, int(max_seeds) - MIN_SEEDS + 1)
        look = 1 if seeds_seen is None else int(seeds_seen) - MIN_SEEDS + 1
        return Levels(alpha, looks, min(max(look, 1), looks))


def t_interval(estimate: float, se: float, df: float, level: float) -> tuple:
    """(low, high) of a two-sided t interval; a zero standard error gives the point."""
    if se == 0.0 or not np.isfinite(se):
        return (estimate, estimate) if se == 0.0 else (float("nan"), float("nan"))
    half = float(special.stdtrit(df, 0.5 + level / 2)) * se  # the t quantile, without scipy.stats' overhead
    return estimate - half, estimate + half


def two_sided_p(estimate: float, se: float, df: float) -> float:
    if se == 0.0:
        return 1.0 if estimate == 0.0 else 0.0
    return float(2 * special.stdtr(df, -abs(estimate) / se))


def tost_p(estimate: float, se: float, df: float, margin: float) -> float:
    """The p-value of two one-sided tests against |effect| ≥ margin (the larger of the two)."""
    if se == 0.0 or not np.isfinite(se):
        return 0.0 if abs(estimate) < margin else 1.0
    below = special.stdtr(df, (estimate - margin) / se)  # H: effect ≥ +margin
    above = special.stdtr(df, -(estimate + margin) / se)  # H: effect ≤ −margin
    return float(max(below, above))


def equivalent(estimate: float, se: float, df: float, margin: float, levels: Levels) -> bool:
    """TOST at levels.per_look: the 1 − 2α interval lies inside [−margin, +margin]."""
    low, high = t_interval(estimate, se, df, 1.0 - 2.0 * levels.per_look)
    return bool(-margin < low and high < margin)


PLANNING_CONFIDENCE = 0.8  # seeds_needed plans on this upper confidence bound of each cell's spread


def upper_variances(c: Contrast, confidence: float = PLANNING_CONFIDENCE) -> np.ndarray:
    """Each cell's one-sided upper confidence bound of its seed variance, s²(n−1)/χ²_{1−conf}(n−1):
    a 3-seed variance is too uncertain to plan on as it is (half the time the truth is larger)."""
    dof = np.maximum(c.counts - 1.0, 1.0)
    return c.variances * dof / special.chdtri(dof, confidence)


def _planned(c: Contrast) -> tuple:
    """(the contrast with a paired spread at its upper bound, each cell's upper-bound variance):
    what seeds_needed and decisive_margin plan on."""
    planned = c.variances if c.paired_sd is not None else upper_variances(c)
    if c.paired_sd is not None:
        dof = max(c.fewest - 1.0, 1.0)
        c = Contrast(c.estimate, c.weights, c.variances, c.counts,
                     paired_sd=c.paired_sd * float(np.sqrt(dof / special.chdtri(dof, PLANNING_CONFIDENCE))))
    return c, planned


def _planned_half_width(c: Contrast, planned: np.ndarray, n: int, levels: Levels, sequential_max: bool,
                        fallback_variance: Optional[float]) -> float:
    se, df = c.standard_error(np.maximum(c.counts, float(n)), fallback_variance, planned)
    level = (Levels.sequential(n, levels.alpha, seeds_seen=n) if sequential_max else levels).confidence
    return t_interval(0.0, se, df, level)[1]


def decisive_margin(c: Contrast, seeds: int, levels: Levels, sequential_max: bool = False,
                    fallback_variance: Optional[float] = None) -> Optional[float]:
    """The smallest margin that `seeds` seeds per cell would decide whatever the outcome (twice
    the planned half-width there): seeds_needed read the other way round."""
    if not np.isfinite(c.standard_error(fallback_variance=fallback_variance)[0]):
        return None
    c, planned = _planned(c)
    return 2.0 * _planned_half_width(c, planned, seeds, levels, sequential_max, fallback_variance)


def seeds_needed(c: Contrast, margin: float, levels: Levels, sequential_max: bool = False,
                 fallback_variance: Optional[float] = None, cap: int = MAX_SEEDS_NEEDED) -> Optional[int]:
    """The fewest seeds per cell at which the interval's half-width is at most margin / 2: then
    it either excludes 0 or lies inside ±margin, so every outcome is decided. The spread planned
    on is each cell's 80% upper confidence bound (a cell without one takes `fallback_variance`),
    the level is `levels` (pass the family-wise one). With `sequential_max`, the interval is the
    sequential one of a loop planned up to that many seeds. None when no seed spread is known;
    `cap` stands for "cap or more"."""
    se_now, _ = c.standard_error(fallback_variance=fallback_variance)
    if not np.isfinite(se_now):
        return None
    c, planned = _planned(c)

    def decides(n: int) -> bool:
        return _planned_half_width(c, planned, n, levels, sequential_max, fallback_variance) <= margin / 2

    low, high = max(MIN_SEEDS, c.fewest + 1), cap
    if not decides(high):
        return cap
    while low < high:  # the half-width shrinks as n grows: bisect for the first n that decides
        mid = (low + high) // 2
        if decides(mid):
            high = mid
        else:
            low = mid + 1
    return low
