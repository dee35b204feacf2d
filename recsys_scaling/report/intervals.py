"""Intervals for the report's claims: linear contrasts of per-cell seed means.

Every claim estimates a contrast Σ w_j · mean_j over a few cells (a cell: the seeds of one
backbone × arm × size), with standard error sqrt(Σ w_j² s_j² / n_j) and Welch–Satterthwaite
degrees of freedom. The seed variance s_j² is pooled within a group of cells: for a gap each
cell is its own group (Welch's t: the arms may differ in spread — NFwFM's seed spread is ten
times DNN's); for a slope the cells of one arm form a group (the spread of one arm is taken as
the same at every size), which gives the interval the degrees of freedom of all the arm's
seeds instead of the two of a 3-seed cell — per-cell variances with 3 seeds made the slope
difference of two arms falsely "directional" 6% of the time instead of 5%. A slope is the
least-squares slope through the cell means, so the curvature of a curve is never counted as
noise.

Levels. A directional verdict needs the two-sided 1 − α interval to exclude 0. Equivalence is
two one-sided tests (TOST): the 1 − 2α interval inside [−margin, +margin] rejects |effect| ≥
margin at level α (α = 0.05: the 90% interval). With `looks` planned looks at the data (the
adaptive seed loop), α is split evenly across them (Bonferroni): whatever the looks are and
wherever the loop stops, the chance that any of them makes a false claim stays ≤ α.
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
    groups: Optional[np.ndarray] = None  # cells pooling one variance (default: each its own)
    paired_sd: Optional[float] = None  # set when the contrast is a mean of per-seed differences

    @property
    def fewest(self) -> int:
        return int(self.counts.min()) if len(self.counts) else 0

    def _group_ids(self) -> np.ndarray:
        return np.arange(len(self.counts)) if self.groups is None else self.groups

    def _pooled_variance(self, member: np.ndarray, fallback: Optional[float]) -> float:
        measured = member & np.isfinite(self.variances) & (self.counts > 1)
        if not measured.any():
            return float("nan") if fallback is None else fallback
        dof = self.counts[measured] - 1.0
        return float((dof * self.variances[measured]).sum() / dof.sum())

    def standard_error(self, counts: Optional[np.ndarray] = None,
                       fallback_variance: Optional[float] = None) -> tuple:
        """(standard error, degrees of freedom) at the observed or at hypothetical `counts`."""
        counts = self.counts if counts is None else counts
        if self.paired_sd is not None:
            n = float(counts.min())
            return self.paired_sd / np.sqrt(n), n - 1.0
        total, denominator = 0.0, 0.0
        groups = self._group_ids()
        for group in np.unique(groups):
            member = groups == group
            piece = self._pooled_variance(member, fallback_variance) * float(
                (self.weights[member] ** 2 / counts[member]).sum())
            total += piece
            denominator += piece**2 / max(float((counts[member] - 1.0).sum()), 1.0)
        if not np.isfinite(total):
            return float("nan"), float("nan")
        df = total**2 / denominator if denominator > 0 else float(counts.sum() - len(counts))
        return float(np.sqrt(total)), max(df, 1.0)


def contrast(cells: Sequence[np.ndarray], weights: Sequence[float], groups: Optional[Sequence] = None) -> Contrast:
    """Σ w_j · mean(cells[j]); cells with the same `groups` label pool their seed variance."""
    cells = [np.asarray(c, float) for c in cells]
    weights = np.asarray(weights, float)
    means = np.array([c.mean() if len(c) else np.nan for c in cells])
    variances = np.array([c.var(ddof=1) if len(c) > 1 else np.nan for c in cells])
    labels = None if groups is None else np.unique(np.asarray(groups), return_inverse=True)[1]
    return Contrast(float((weights * means).sum()), weights, variances, np.array([len(c) for c in cells], float),
                    labels)


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


@dataclass(frozen=True)
class Levels:
    """α per look: `looks` = 1 for a single report, the planned looks for adaptive seeds."""

    alpha: float = ALPHA
    looks: int = 1

    @property
    def per_look(self) -> float:
        return self.alpha / self.looks

    @property
    def confidence(self) -> float:
        return 1.0 - self.per_look

    @staticmethod
    def sequential(max_seeds: int, alpha: float = ALPHA) -> "Levels":
        """Looks at MIN_SEEDS, MIN_SEEDS + 1, ..., max_seeds seeds: one per adaptive round."""
        return Levels(alpha, max(1, int(max_seeds) - MIN_SEEDS + 1))


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


def equivalent(estimate: float, se: float, df: float, margin: float, levels: Levels) -> bool:
    """TOST at levels.per_look: the 1 − 2α interval lies inside [−margin, +margin]."""
    low, high = t_interval(estimate, se, df, 1.0 - 2.0 * levels.per_look)
    return bool(-margin < low and high < margin)


def seeds_needed(c: Contrast, margin: float, levels: Levels, sequential_max: bool = False,
                 fallback_variance: Optional[float] = None, cap: int = MAX_SEEDS_NEEDED) -> Optional[int]:
    """The fewest seeds per cell at which, at the observed seed spread, the interval's half-width
    is at most margin / 2: then it either excludes 0 or lies inside ±margin, so every outcome is
    decided. With `sequential_max`, the interval is the sequential one of a loop planned up to
    that many seeds. None when no seed spread is known; `cap` stands for "cap or more"."""
    se_now, _ = c.standard_error(fallback_variance=fallback_variance)
    if not np.isfinite(se_now):
        return None

    def decides(n: int) -> bool:
        se, df = c.standard_error(np.maximum(c.counts, float(n)), fallback_variance)
        level = (Levels.sequential(n, levels.alpha) if sequential_max else levels).confidence
        return t_interval(0.0, se, df, level)[1] <= margin / 2

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
