"""Compute-optimal shapes: for a budget, which (K sets × d width) is best.

Every finished run is a cell (K = num_embeddings, d = embed_dim) with a size on an axis
(embedding or total parameters, or FLOPs per example). An iso-budget line is the cells of one
budget: equal K·d on the embedding axis; within ±15% on the others.

Shapes are compared at *equal* budget, or a bigger cell would win for being bigger. On the
embedding axis the candidates share one K·d exactly. On the total and FLOPs axes their sizes
differ, so each candidate's AUC is moved to the budget along the backbone's size slope: the
least-squares slope of every cell's mean AUC on log2(size), fitted across all its budgets.
The adjustment is part of each comparison's contrast (the slope's own seed noise included),
and the method says the candidates' size spread.

* **Measured candidates.** For a budget B, the cells within ±15% of B (on the embedding axis,
  those with the K·d nearest B). The best is the highest (size-adjusted) mean test AUC. It is a
  *clear winner* only when it beats every other candidate in a one-sided
  Welch test, Holm-corrected across the comparisons; since the best was picked by the same data,
  each one-sided test is made at α/2 (with two candidates that is exactly a two-sided 5% test).
  Otherwise *no clear winner*, with the candidates it cannot be separated from. A candidate with
  fewer than 3 seeds makes it *insufficient seeds*. `p_best` (how often each candidate is the
  best over seed bootstraps) describes the uncertainty; it is not the decision rule.
* **A fitted surface** for budgets between or beyond the cells (`surface.py`): a few forms of
  1 − AUC over (K, d), chosen by the error on the largest budget's cells held out; the best
  shape on a budget's line is the surface's minimum, with a seed-bootstrap interval.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import List, Optional, Sequence

import numpy as np
import pandas as pd

from .claims import INSUFFICIENT
from .intervals import ALPHA, MIN_SEEDS, contrast, slope_weights, t_interval
from .surface import Surface, fit_surface

AXES = {"embedding": "params_embedding", "total": "params_total", "flops": "flops_per_example"}
WINDOW = 0.15  # candidates of a budget: within ±15% of it on the axis
# A fitted surface answers at most this factor beyond the measured budgets; further out, the
# form chosen on the grid says nothing reliable (a log-linear form passes AUC 1 soon enough)
MAX_EXTRAPOLATION = 2.0


@dataclass(frozen=True)
class ShapeCell:
    K: int
    d: int
    size: float  # mean axis value of its runs
    aucs: np.ndarray

    @property
    def seeds(self) -> int:
        return len(self.aucs)

    @property
    def mean(self) -> float:
        return float(self.aucs.mean())

    def interval(self) -> tuple:
        if self.seeds < 2:
            return (float("nan"), float("nan"))
        return t_interval(self.mean, float(self.aucs.std(ddof=1) / np.sqrt(self.seeds)), self.seeds - 1.0, 0.95)


def shape_cells(runs: pd.DataFrame, axis: str = "embedding") -> List[ShapeCell]:
    """One cell per (K, d) of the finished runs with an AUC and a size on `axis`."""
    if axis not in AXES:
        raise ValueError(f"axis {axis!r}: choose from {', '.join(AXES)}")
    column = AXES[axis]
    done = runs[(runs["status"] == "FINISHED") & runs["test_auc"].notna() & runs[column].notna()
                & runs["num_embeddings"].notna() & runs["embed_dim"].notna()]
    cells = []
    for (k, d), part in done.groupby(["num_embeddings", "embed_dim"], sort=True):
        cells.append(ShapeCell(int(k), int(d), float(part[column].mean()), part["test_auc"].to_numpy(float)))
    return cells


def candidates_at(cells: Sequence[ShapeCell], budget: float, axis: str = "embedding") -> List[ShapeCell]:
    """The cells of one budget: within ±15% of it; on the embedding axis only those sharing the
    K·d nearest the budget (exactly equal embedding parameters)."""
    near = [c for c in cells if abs(c.size - budget) <= WINDOW * budget]
    if axis != "embedding" or not near:
        return near
    nearest = min(near, key=lambda c: abs(c.size - budget))
    return [c for c in near if c.K * c.d == nearest.K * nearest.d]


@dataclass(frozen=True)
class SizeAdjustment:
    """AUC per doubling of size across a backbone's cells, as slope weights over those cells."""

    cells: List[ShapeCell]
    weights: np.ndarray  # slope = Σ weights · cell means

    @property
    def slope(self) -> float:
        return float(sum(w * c.mean for w, c in zip(self.weights, self.cells)))


def size_adjustment(cells: Sequence[ShapeCell]) -> Optional[SizeAdjustment]:
    """The least-squares slope of cell means on log2(size), over the cells with a seed spread
    (None with fewer than 3 such cells or a single size)."""
    cells = [c for c in cells if c.seeds >= 2]
    sizes = np.log2([c.size for c in cells])
    if len(cells) < 3 or np.ptp(sizes) <= 0:
        return None
    return SizeAdjustment(list(cells), slope_weights(sizes))


def budget_lines(cells: Sequence[ShapeCell], axis: str = "embedding") -> List[List[ShapeCell]]:
    """Groups of cells of one budget, ≥ 2 cells each: equal K·d on the embedding axis (equal
    embedding parameters, exactly); on the other axes, each within ±15% of the group's middle."""
    if axis == "embedding":
        groups: dict = {}
        for cell in cells:
            groups.setdefault(cell.K * cell.d, []).append(cell)
        return [sorted(line, key=lambda c: c.K) for _, line in sorted(groups.items()) if len(line) >= 2]
    lines, current = [], []
    for cell in sorted(cells, key=lambda c: c.size):
        if current and cell.size > current[0].size * (1 + 2 * WINDOW):
            lines.append(current)
            current = []
        current.append(cell)
    lines.append(current)
    return [line for line in lines if len(line) >= 2]


def _shift(cell: ShapeCell, budget: Optional[float], adjustment: Optional[SizeAdjustment]) -> float:
    """log2(size / budget): how far the cell sits from the budget, in doublings."""
    return 0.0 if adjustment is None or budget is None else float(np.log2(cell.size / budget))


def _adjusted_difference(best: ShapeCell, other: ShapeCell, budget, adjustment):
    """(best − other) at the budget as one contrast: the two cells' means, minus the slope
    contrast times their difference in log-size."""
    terms = {id(best): [best, 1.0], id(other): [other, -1.0]}
    gap = _shift(best, budget, adjustment) - _shift(other, budget, adjustment)
    if adjustment is not None and gap != 0.0:
        for cell, w in zip(adjustment.cells, adjustment.weights):
            terms.setdefault(id(cell), [cell, 0.0])[1] -= gap * w
    used = [(c, w) for c, w in terms.values() if w != 0.0]
    return contrast([c.aucs for c, _ in used], [w for _, w in used])


def compare(cands: Sequence[ShapeCell], resamples: int = 1000, seed: int = 0, budget: Optional[float] = None,
            adjustment: Optional[SizeAdjustment] = None) -> dict:
    """The measured decision among a budget's candidates (see the module docstring); with an
    adjustment, each AUC is moved along the size slope to `budget` first."""
    slope = adjustment.slope if adjustment is not None else 0.0
    adjusted = {id(c): c.mean - slope * _shift(c, budget, adjustment) for c in cands}
    ranked = sorted(cands, key=lambda c: adjusted[id(c)], reverse=True)
    best = ranked[0]
    p_best = _p_best(ranked, resamples, seed, [adjusted[id(c)] - c.mean for c in ranked])
    rows = [_row(c, p_best[i]) | {"adjusted_auc": adjusted[id(c)]} for i, c in enumerate(ranked)]
    sizes = [c.size for c in ranked]
    spread = {"size_spread": float(max(sizes) / min(sizes) - 1.0), "size_slope": slope if adjustment else None}
    if any(c.seeds < MIN_SEEDS for c in ranked):
        return {"verdict": INSUFFICIENT, "best": rows[0], "candidates": rows, "not_separated": [], **spread}
    tests = []
    for other in ranked[1:]:
        c = _adjusted_difference(best, other, budget, adjustment)
        se, df = c.standard_error()
        tests.append((_one_sided_p(c.estimate, se, df), other))
    not_separated = _holm_not_rejected(tests, ALPHA / 2)
    verdict = "clear_winner" if len(ranked) > 1 and not not_separated else "no_clear_winner"
    return {"verdict": verdict, "best": rows[0], "candidates": rows,
            "not_separated": [f"K={c.K} x d={c.d}" for c in not_separated], **spread}


def _one_sided_p(estimate: float, se: float, df: float) -> float:
    from scipy import special

    if se == 0.0:
        return 0.0 if estimate > 0 else 1.0
    return float(special.stdtr(df, -estimate / se))


def _holm_not_rejected(tests: Sequence[tuple], alpha: float) -> List[ShapeCell]:
    """The comparisons Holm's step-down procedure does not reject (all after the first failure)."""
    ordered = sorted(tests, key=lambda t: t[0])
    m = len(ordered)
    for rank, (p, _) in enumerate(ordered):
        if p > alpha / (m - rank):
            return [cell for _, cell in ordered[rank:]]
    return []


def _p_best(cells: Sequence[ShapeCell], resamples: int, seed: int, offsets: Sequence[float]) -> List[float]:
    rng = np.random.default_rng(seed)
    wins = np.zeros(len(cells))
    for _ in range(max(resamples, 1)):
        means = [rng.choice(c.aucs, size=c.seeds).mean() + offset for c, offset in zip(cells, offsets)]
        wins[int(np.argmax(means))] += 1
    return (wins / max(resamples, 1)).tolist()


def _row(cell: ShapeCell, p_best: float) -> dict:
    low, high = cell.interval()
    return {"K": cell.K, "d": cell.d, "size": cell.size, "seeds": cell.seeds, "auc": cell.mean,
            "low": None if np.isnan(low) else low, "high": None if np.isnan(high) else high, "p_best": p_best}


@dataclass
class Frontier:
    """The frontier of one (series, backbone): its lines, their decisions, the fitted surface."""

    backbone: str
    series: str
    axis: str
    cells: List[ShapeCell]
    lines: List[dict] = field(default_factory=list)  # per budget line: budget, compare() result
    surface: Optional[Surface] = None
    optimum: List[dict] = field(default_factory=list)  # fitted best shape per budget, with intervals

    def as_dict(self) -> dict:
        return {"backbone": self.backbone, "series": self.series, "axis": self.axis,
                "cells": [_row(c, float("nan")) | {"p_best": None} for c in self.cells], "lines": self.lines,
                "surface": self.surface.as_dict() if self.surface else None, "optimum": self.optimum}


def frontier(runs: pd.DataFrame, axis: str = "embedding", resamples: int = 1000) -> List[Frontier]:
    """The frontier of every (series, backbone) of a runs table that has ≥ 2 cells on some line."""
    results = []
    series = runs["series"] if "series" in runs else pd.Series([""] * len(runs), index=runs.index)
    for (name, backbone), part in runs.assign(series=series.fillna("")).groupby(["series", "backbone"], sort=True):
        cells = shape_cells(part, axis)
        lines = budget_lines(cells, axis)
        if not lines:
            continue
        result = Frontier(str(backbone), str(name), axis, cells)
        adjustment = size_adjustment(cells) if axis != "embedding" else None
        for line in lines:
            budget = float(np.median([c.size for c in line]))
            result.lines.append({"budget": budget, **compare(line, resamples, budget=budget, adjustment=adjustment)})
        result.surface = fit_surface(cells, resamples=min(resamples, 200))
        if result.surface is not None:
            sizes = [c.size for c in cells]
            grid = np.geomspace(min(sizes), 4 * max(sizes), 12)
            result.optimum = [result.surface.best_shape(b, cells) for b in grid]
        results.append(result)
    return results


def advise(runs: pd.DataFrame, budget: float, axis: str = "embedding", backbone: Optional[str] = None,
           resamples: int = 1000) -> dict:
    """The best shape for `budget` on `axis`: measured candidates when there are any (a
    calibrated decision), else the fitted surface's best shape (interpolated, or extrapolated
    beyond the measured budgets). Returns {budget, axis, K, d, predicted_auc, low, high, p_best,
    verdict, candidates, extrapolated, method}."""
    if not (math.isfinite(budget) and budget > 0):
        raise ValueError(f"budget {budget:g}: must be a positive, finite number")
    part = _one_backbone(runs, backbone)
    cells = shape_cells(part, axis)
    if not cells:
        raise LookupError("no finished runs with a shape (num_embeddings, embed_dim) and a size on that axis")
    sizes = [c.size for c in cells]
    extrapolated = not min(sizes) * (1 - WINDOW) <= budget <= max(sizes) * (1 + WINDOW)
    if not min(sizes) / MAX_EXTRAPOLATION <= budget <= max(sizes) * MAX_EXTRAPOLATION:
        return {"budget": budget, "axis": axis, "K": None, "d": None, "predicted_auc": None, "low": None,
                "high": None, "p_best": None, "verdict": "extrapolated", "candidates": [], "not_separated": [],
                "extrapolated": True,
                "method": f"extrapolated: no recommendation; the measured budgets span {min(sizes):.3g}..{max(sizes):.3g}, "
                          f"and a fitted surface answers at most {MAX_EXTRAPOLATION:g}x beyond them: measure a cell "
                          "nearer this budget first"}
    cands = candidates_at(cells, budget, axis)
    if cands:
        adjustment = size_adjustment(cells) if axis != "embedding" and len(cands) > 1 else None
        decision = compare(cands, resamples, budget=budget, adjustment=adjustment)
        best = decision["best"]
        return {"budget": budget, "axis": axis, "K": best["K"], "d": best["d"], "predicted_auc": best["auc"],
                "low": best["low"], "high": best["high"], "p_best": best["p_best"], "verdict": decision["verdict"],
                "candidates": decision["candidates"], "not_separated": decision["not_separated"],
                "extrapolated": False, "size_spread": decision["size_spread"],
                "size_slope": decision["size_slope"], "method": _method(axis, decision, adjustment)}
    surface = fit_surface(cells, resamples=min(resamples, 200))
    if surface is None:
        raise LookupError(f"no measured cell within ±{WINDOW:.0%} of {budget:g}, and too few cells to fit a surface "
                          f"({len(cells)}; at least 4 with 2 budgets are needed)")
    best = surface.best_shape(budget, cells)
    where = "extrapolated beyond" if extrapolated else "interpolated between"
    return {"budget": budget, "axis": axis, "K": best["K"], "d": best["d"], "predicted_auc": best["auc"],
            "low": best["low"], "high": best["high"], "p_best": best["p_best"], "verdict": "fitted",
            "candidates": [], "not_separated": [], "extrapolated": extrapolated,
            "method": f"{surface.form} surface fitted to {len(cells)} cells, {where} the measured budgets "
                      f"({min(sizes):.3g}..{max(sizes):.3g}); held-out error {surface.holdout_error:.4f} AUC"}


def _method(axis: str, decision: dict, adjustment: Optional[SizeAdjustment]) -> str:
    spread = f"candidates' sizes span {decision['size_spread']:.1%}"
    if axis == "embedding":
        where = f"measured cells with the same K·d (equal embedding parameters; {spread})"
    elif adjustment is None:
        where = f"measured cells within ±{WINDOW:.0%} of the budget, not size-adjusted (no size slope: too few sizes; {spread})"
    else:
        where = (f"measured cells within ±{WINDOW:.0%} of the budget, each moved to it along the size slope "
                 f"({adjustment.slope:+.4f} AUC per doubling, fitted over {len(adjustment.cells)} cells; {spread})")
    return f"{where}; one-sided Welch tests of the best against each other candidate at α/2, Holm-corrected"


def _one_backbone(runs: pd.DataFrame, backbone: Optional[str]) -> pd.DataFrame:
    found = sorted(runs["backbone"].dropna().unique())
    if backbone is None:
        if len(found) > 1:
            raise ValueError(f"the runs hold several backbones ({', '.join(found)}): pick one with --backbone")
        return runs
    if backbone not in found:
        raise LookupError(f"backbone {backbone!r}: not in these runs ({', '.join(found) or 'none'})")
    return runs[runs["backbone"] == backbone]
