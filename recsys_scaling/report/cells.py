"""Cells of a backbone's runs — the seeds of one arm at one size — and the claims built on them.

The ME curve starts from the SE base at 1x (`arm_curves`): those two cells are the same runs,
so a contrast that uses both (the scaling gap) counts them once, with their weights added.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np
import pandas as pd

from .claims import Claim, decide
from .intervals import DF_METHOD, Levels, contrast, paired_contrast, slope_weights


@dataclass(frozen=True)
class Cell:
    arm: str  # the curve it is on
    job_arm: str  # the arm its jobs ran as (the ME curve's base cell: se)
    scale: int
    size: float  # mean x-axis value of its runs
    values: Dict[int, float]  # seed -> metric
    runs: frozenset

    @property
    def array(self) -> np.ndarray:
        return np.array(list(self.values.values()), dtype=float)


def arm_curves(runs: pd.DataFrame, shared_base: bool = True) -> Dict[str, pd.DataFrame]:
    """arm -> its finished runs; the ME curve's 1x point is the SE base (ME with one set is that
    model), unless ME ran a different 1x model of its own (K > 1 there, e.g. budget targets).
    shared_base=False: curves along another axis than size (data), where no cell is shared."""
    curves = {str(arm): curve.assign(job_arm=curve["arm"]) for arm, curve in runs.groupby("arm", sort=True)}
    se, me = curves.get("se"), curves.get("me")
    if se is None or me is None or not shared_base:
        return curves
    me = me[me["num_embeddings"].fillna(2) != 1]
    base = se[se["scale"] == 1]
    if len(base) and not (me["scale"] == 1).any():
        me = pd.concat([base.assign(arm="me"), me])
    curves["me"] = me
    return curves


def arm_cells(curve: pd.DataFrame, x: str, column: str) -> List[Cell]:
    """One cell per scale of an arm's curve (rows with a size and a value), sorted by size."""
    sizes = curve[x].to_numpy(dtype=float, na_value=np.nan)
    values = curve[column].to_numpy(dtype=float, na_value=np.nan)
    seeds = curve["seed"].to_numpy(dtype=float, na_value=np.nan)
    scales, run_ids = curve["scale"].to_numpy(dtype=float, na_value=np.nan), curve["run_id"].to_numpy()
    job_arms = (curve["job_arm"] if "job_arm" in curve else curve["arm"]).to_numpy()
    arm = str(curve["arm"].iloc[0]) if len(curve) else ""
    keep = np.isfinite(sizes) & np.isfinite(values) & np.isfinite(scales)
    cells = []
    for scale in np.unique(scales[keep]):
        rows = np.nonzero(keep & (scales == scale))[0]
        by_seed = {int(seeds[i]) if np.isfinite(seeds[i]) else -1 - int(i): float(values[i]) for i in rows}
        cells.append(Cell(arm, str(job_arms[rows[0]]), int(scale), float(sizes[rows].mean()), by_seed,
                          frozenset(run_ids[rows])))
    return sorted(cells, key=lambda c: c.size)


def _merged_contrast(terms: Sequence[tuple]):
    """contrast() over (cell, weight) terms, the same runs counted once (weights added)."""
    merged: Dict[frozenset, list] = {}
    for cell, weight in terms:
        merged.setdefault(cell.runs, [cell, 0.0])[1] += weight
    used = [(c, w) for c, w in merged.values() if w != 0.0]
    return contrast([c.array for c, _ in used], [w for _, w in used])


def gap_claims(me: List[Cell], se: List[Cell], pairing: str, margin: float, levels: Levels,
               kind: str = "gap", first_scale: int = 2, names: tuple = ()) -> List[Claim]:
    """ME − SE at each scale ≥ first_scale that both arms ran (scale 1 is the shared base). With
    another `kind` and `names`, any two curves: the first minus the second."""
    se_at = {c.scale: c for c in se}
    claims = []
    for cell in me:
        partner = se_at.get(cell.scale)
        if cell.scale < first_scale or partner is None:
            continue
        paired = pairing == "seed" and set(cell.values) == set(partner.values)
        c = paired_contrast(cell.values, partner.values) if paired else contrast([cell.array, partner.array], [1, -1])
        method = ("paired t (by seed)" if paired else f"welch t, {DF_METHOD}" if pairing == "welch"
                  else f"welch t (arms ran different seeds: not paired), {DF_METHOD}")
        claim = decide(kind, c, margin, levels, method, scale=cell.scale, n_me=len(cell.values),
                       n_se=len(partner.values), cells=_keys([cell, partner]), names=names)
        if not paired and set(cell.values) == set(partner.values):
            claim.paired = paired_contrast(cell.values, partner.values)
        claims.append(claim)
    return claims


def _keys(cells: Sequence[Cell]) -> tuple:
    """The (arm its jobs ran as, scale) of each cell a claim uses: the jobs that would add seeds."""
    return tuple(sorted({(c.job_arm, c.scale) for c in cells}))


def _seeds(arm: str, cells: Sequence[Cell]) -> dict:
    fewest = min((len(c.values) for c in cells), default=0)
    return {"n_me": fewest} if arm == "me" else {"n_se": fewest}


def doublings(cells: Sequence[Cell]) -> float:
    """log2 of the largest size over the smallest: the range a trend's total change spans."""
    sizes = [c.size for c in cells]
    return float(np.log2(max(sizes) / min(sizes))) if sizes else 0.0


def trend_claim(arm: str, cells: List[Cell], margin: float, levels: Levels, top: bool = False) -> Claim:
    """AUC per doubling: the least-squares slope through all sizes (trend), or the step between
    the two largest sizes (top_trend). "Saturated" bounds the total change over the sizes used
    (slope × doublings spanned), not the change per doubling."""
    kind = "top_trend" if top else "trend"
    used = cells[-2:] if top else cells
    method = ("difference of the two largest sizes' means over log2 of their ratio" if top
              else "least-squares slope of the per-size means on log2(size)")
    if len(used) < 2:
        raise ValueError(f"{arm} {kind}: needs at least two sizes")
    weights = slope_weights([np.log2(c.size) for c in used])
    c = contrast([cell.array for cell in used], weights)
    return decide(kind, c, margin, levels, f"{method}, t with {DF_METHOD}", arm=arm, cells=_keys(used),
                  span=doublings(used), **_seeds(arm, used))


def scaling_gap_claim(me: List[Cell], se: List[Cell], margin: float, levels: Levels, kind: str = "scaling_gap",
                      names: tuple = ("ME", "SE")) -> Optional[Claim]:
    """ME's slope minus SE's, both over the scales both arms ran; None with fewer than 2. "Same
    scaling" bounds the difference of total changes over the wider arm's range. With another
    `kind` and `names`, any two curves: the first's slope minus the second's."""
    common = sorted({c.scale for c in me} & {c.scale for c in se})
    if len(common) < 2:
        return None
    me_used = [c for c in me if c.scale in common]
    se_used = [c for c in se if c.scale in common]
    terms = [*zip(me_used, slope_weights([np.log2(c.size) for c in me_used])),
             *zip(se_used, -slope_weights([np.log2(c.size) for c in se_used]))]
    shared = "shared base counted once" if kind == "scaling_gap" else "runs both curves use counted once"
    method = (f"{names[0]} slope − {names[1]} slope on log2(size) over scales {','.join(map(str, common))} "
              f"({shared}), t with {DF_METHOD}")
    return decide(kind, _merged_contrast(terms), margin, levels, method, cells=_keys(me_used + se_used),
                  n_me=_seeds("me", me_used)["n_me"], n_se=_seeds("se", se_used)["n_se"],
                  span=max(doublings(me_used), doublings(se_used)), names=names if kind != "scaling_gap" else ())


def pooled_variance(cells: Sequence[Cell]) -> Optional[float]:
    """The median seed variance over cells with 2+ seeds: the spread assumed where a cell has
    too few seeds to measure its own (for seeds_needed)."""
    variances = [c.array.var(ddof=1) for c in cells if len(c.values) > 1]
    return float(np.median(variances)) if variances else None
