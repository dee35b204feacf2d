"""The report's claims: each one a test with a calibrated interval, four ways to end, and how many
seeds would settle it when it is not settled.

Kinds of claim (each a contrast of per-cell seed means, see `intervals.py`):

* ``gap``: ME − SE test AUC at one scale (Welch's t; paired by seed on request);
* ``ia_gap``: ME − SE information abundance of the large fields at one scale (the collapse);
* ``trend``: AUC gained per doubling of size, per arm (the least-squares slope through the
  per-size means);
* ``top_trend``: AUC gained per doubling between an arm's two largest sizes ("SE saturates" is
  SE's top_trend = saturated);
* ``scaling_gap``: ME's gain per doubling minus SE's, over the scales both arms ran — the
  paper's question, "does ME scale better than SE?";
* ``series_gap`` / ``series_scaling_gap``: the same two contrasts between any two series of a
  report (`report --compare A:B`, see compare.py), A minus B, at every scale both ran.

Verdicts, with a practical margin M (AUC units; IA units for ia_gap):

* directional (``me_ahead`` / ``improving`` / ``me_scales_better`` and their opposites): the
  two-sided 95% interval excludes 0. When the equivalence test also passes, ``within_margin``
  is true ("ahead, by less than the margin");
* equivalent (``equivalent`` / ``saturated`` / ``same_scaling``): TOST at 5%, the 90% interval
  lies inside [−M, +M]. For a trend the margin bounds the *total* change over the measured range
  (slope × doublings spanned), for top_trend the step itself, for scaling_gap the difference of
  the two arms' total changes: a curve gaining M/2 per doubling over 3.3 doublings is not
  "saturated". A saturated trend whose fitted curve peaks inside the range is ``peaked`` instead;
* ``undecided``: neither — the data cannot tell; ``seeds_needed`` says how many seeds would;
* ``insufficient_seeds``: fewer than MIN_SEEDS seeds in some cell: no interval at all.

With sequential intervals (the adaptive seed loop) α is split over the planned looks.

Families. By default every verdict of a backbone is decided by Holm's step-down over that
backbone's claims (each claim's p-value: the smaller of its directional and its equivalence
p-value), so the chance that a backbone shows *any* false claim — a false direction or a false
equivalence — stays ≤ 5%. `family="report"` extends the family to every claim of the report
(Holm, or Benjamini–Hochberg, which bounds the expected share of false claims instead);
`family="claim"` reads each claim alone (5% each).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional

import numpy as np

from .intervals import (MAX_SEEDS_NEEDED, MIN_SEEDS, Contrast, Levels, decisive_margin, equivalent, seeds_needed,
                        t_interval, tost_p, two_sided_p)

PAIRINGS = ("welch", "seed")
FAMILIES = ("backbone", "report", "claim")  # the set of claims whose error rate is controlled
CORRECTIONS = ("holm", "bh")
PEAKED = "peaked"
INSUFFICIENT = "insufficient_seeds"
UNDECIDED = "undecided"
LEVEL = 0.95
PRACTICAL_SEEDS = 50  # more seeds per cell than this: say what else would decide a claim instead
ALTERNATIVE_SEEDS = 10  # ... in numbers at this many seeds per cell
# kind -> (positive, negative, equivalent) verdicts
VERDICTS: Dict[str, tuple] = {
    "gap": ("me_ahead", "me_behind", "equivalent"),
    "ia_gap": ("me_ahead", "me_behind", "equivalent"),
    "trend": ("improving", "worsening", "saturated"),
    "top_trend": ("improving", "worsening", "saturated"),
    "scaling_gap": ("me_scales_better", "se_scales_better", "same_scaling"),
    # two series compared (report --compare A:B): the first minus the second
    "series_gap": ("a_ahead", "a_behind", "equivalent"),
    "series_scaling_gap": ("a_scales_better", "b_scales_better", "same_scaling"),
}
ALL_VERDICTS = {v for triple in VERDICTS.values() for v in triple} | {UNDECIDED, INSUFFICIENT, PEAKED}


@dataclass
class Claim:
    kind: str
    arm: Optional[str]  # trend / top_trend: the arm; otherwise None
    scale: Optional[int]  # gap / ia_gap: the scale; otherwise None
    estimate: float
    low: Optional[float]
    high: Optional[float]
    n_me: Optional[int]  # seeds behind the claim (the fewest in any of its cells)
    n_se: Optional[int]
    method: str
    verdict: str
    p_value: Optional[float] = None  # directional, two-sided (scaled to the look's share of α when sequential)
    p_equivalence: Optional[float] = None  # TOST against ±margin/span (scaled as p_value)
    p_adjusted: Optional[float] = None  # the family's (Holm or BH), of min(p_value, p_equivalence)
    df: Optional[float] = None
    margin: Optional[float] = None
    within_margin: bool = False
    seeds_needed: Optional[int] = None
    span: float = 1.0  # doublings the equivalence margin is spread over (trends: the measured range)
    peak: Optional[float] = None  # peaked: the size where the fitted curve is best
    family: str = "claim"  # what the verdict's error rate is controlled over
    level: float = LEVEL  # the interval's confidence (lower with sequential looks)
    cells: tuple = ()  # (job arm, scale) of the cells it uses: where more seeds would go
    names: tuple = ()  # series_*: the two series compared, (A, B)
    metric: str = "AUC"  # the unit of its value: AUC, or "logloss reduction" (positive is better)
    where: str = ""  # gaps along another axis than size: e.g. "at 0.5 of the training rows"
    # seeds_needed past PRACTICAL_SEEDS: what else would decide it (fill_seeds_needed)
    alternatives: Optional[dict] = None
    contrast: Optional[Contrast] = field(default=None, repr=False, compare=False)
    # a gap whose arms ran the same seeds but was read unpaired: its per-seed differences
    paired: Optional[Contrast] = field(default=None, repr=False, compare=False)

    @property
    def decided(self) -> bool:
        return self.verdict not in (INSUFFICIENT, UNDECIDED)

    @property
    def directional(self) -> bool:
        return self.verdict in VERDICTS[self.kind][:2]

    @property
    def equivalence_margin(self) -> float:
        """The margin in the estimate's units: M spread over the claim's span."""
        return self.margin / self.span

    def as_dict(self) -> dict:
        """Plain values; a non-finite estimate (no trend from one size) becomes None."""
        values = {k: getattr(self, k) for k in self.__dataclass_fields__ if k not in ("contrast", "paired")}
        values["cells"] = [list(cell) for cell in self.cells]
        values["names"] = list(self.names)
        return {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in values.items()}


def decide(kind: str, c: Contrast, margin: float, levels: Levels, method: str, arm: Optional[str] = None,
           scale: Optional[int] = None, n_me: Optional[int] = None, n_se: Optional[int] = None,
           cells: tuple = (), span: float = 1.0, names: tuple = ()) -> Claim:
    """A claim from a contrast: interval, p-values and verdict at `levels`, read alone (the
    family's correction comes after, in `adjust_family`)."""
    claim = Claim(kind, arm, scale, c.estimate, None, None, n_me, n_se, method, INSUFFICIENT, margin=margin,
                  level=levels.confidence, cells=cells, contrast=c, span=float(span) if span > 0 else 1.0,
                  names=tuple(names))
    if c.fewest < MIN_SEEDS or not np.isfinite(c.estimate):
        return claim
    se, df = c.standard_error()
    claim.low, claim.high = t_interval(c.estimate, se, df, levels.confidence)
    claim.p_value = min(1.0, two_sided_p(c.estimate, se, df) * levels.p_scale)
    claim.p_equivalence = min(1.0, tost_p(c.estimate, se, df, claim.equivalence_margin) * levels.p_scale)
    claim.df = df
    claim.within_margin = equivalent(c.estimate, se, df, claim.equivalence_margin, levels)
    claim.verdict = _verdict(kind, claim.low, claim.high, claim.within_margin)
    return claim


def _verdict(kind: str, low: float, high: float, within_margin: bool) -> str:
    positive, negative, same = VERDICTS[kind]
    if low > 0:
        return positive
    if high < 0:
        return negative
    return same if within_margin else UNDECIDED


def _decide_at(claim: Claim, direction: bool, equivalence: bool) -> None:
    """The verdict once the family's correction says which of the claim's tests rejected."""
    positive, negative, same = VERDICTS[claim.kind]
    claim.within_margin = equivalence
    if direction:
        claim.verdict = positive if claim.estimate > 0 else negative
    else:
        claim.verdict = same if claim.within_margin else UNDECIDED


def _tested(claims) -> list:
    return sorted((c for c in claims if c.p_value is not None), key=lambda c: min(c.p_value, c.p_equivalence))


def holm_adjust(claims, alpha: float = 1 - LEVEL, family: str = "report") -> None:
    """Holm's step-down over the claims with an interval, in place. Each claim enters with the
    smaller of its directional and equivalence p-values (at most one of its two nulls can be
    true at once, bar a wrong direction); its verdict follows the step it reaches: a direction,
    equivalence (both: "ahead, by less than the margin"), or undecided."""
    tested = _tested(claims)
    m, running = len(tested), 0.0
    for rank, claim in enumerate(tested):
        multiplier = m - rank
        direction = max(running, min(1.0, multiplier * claim.p_value))
        equivalence = max(running, min(1.0, multiplier * claim.p_equivalence))
        running = min(direction, equivalence)
        claim.p_adjusted, claim.family = running, family
        claim.method += f", Holm over {m} claims ({family})"
        _decide_at(claim, direction < alpha, equivalence < alpha)


def bh_adjust(claims, alpha: float = 1 - LEVEL, family: str = "report") -> None:
    """Benjamini–Hochberg over the claims with an interval, in place: the expected share of
    false claims among those made stays ≤ alpha (a weaker promise than Holm's)."""
    tested = _tested(claims)
    m = len(tested)
    passing = [rank + 1 for rank, c in enumerate(tested) if min(c.p_value, c.p_equivalence) <= alpha * (rank + 1) / m]
    threshold = alpha * max(passing, default=0) / m if m else 0.0
    adjusted, lowest = [0.0] * m, 1.0
    for rank in range(m - 1, -1, -1):
        lowest = min(lowest, min(tested[rank].p_value, tested[rank].p_equivalence) * m / (rank + 1))
        adjusted[rank] = lowest
    for claim, p_adjusted in zip(tested, adjusted):
        claim.p_adjusted, claim.family = min(1.0, p_adjusted), family
        claim.method += f", Benjamini–Hochberg over {m} claims ({family})"
        _decide_at(claim, 0 < threshold and claim.p_value <= threshold,
                   0 < threshold and claim.p_equivalence <= threshold)


def adjust_family(groups, correction: str = "holm", family: str = "backbone") -> None:
    """Apply the family's correction to each group of claims (one group per family)."""
    if correction not in CORRECTIONS:
        raise ValueError(f"correction {correction!r}: choose from {CORRECTIONS}")
    if family == "claim":  # each claim read alone: its own test's verdict stands
        return
    for claims in groups:
        (holm_adjust if correction == "holm" else bh_adjust)(claims, family=family)


def fill_seeds_needed(claim: Claim, levels: Levels, fallback_variance: Optional[float], family_size: int = 1) -> None:
    """seeds_needed for an undecided or insufficient claim (None for a decided one), planned at
    the family's strictest level (α over its size: Holm's first step); past PRACTICAL_SEEDS, its
    alternatives too."""
    if claim.decided or claim.contrast is None:
        claim.seeds_needed = None
        return
    planned = Levels(levels.alpha / max(family_size, 1), levels.looks, levels.look)
    sequential = levels.looks > 1
    claim.seeds_needed = seeds_needed(claim.contrast, claim.equivalence_margin, planned,
                                      sequential_max=sequential, fallback_variance=fallback_variance)
    if claim.seeds_needed is not None and claim.seeds_needed > PRACTICAL_SEEDS:
        claim.alternatives = alternatives(claim, planned, sequential, fallback_variance)


def alternatives(claim: Claim, planned: Levels, sequential: bool, fallback_variance: Optional[float]) -> dict:
    """What would decide a claim that needs impractically many seeds, in numbers: the margin that
    ALTERNATIVE_SEEDS seeds per cell would decide (in the margin's units, over the claim's span),
    the factor by which the seed spread would have to shrink (more data, more epochs) for them to
    decide it at this margin, and the seeds a reading paired by seed would need (a gap whose arms
    ran the same seeds)."""
    width = decisive_margin(claim.contrast, ALTERNATIVE_SEEDS, planned, sequential, fallback_variance)
    margin = None if width is None else width * claim.span
    paired = None
    if claim.paired is not None and np.isfinite(claim.paired.estimate):
        paired = seeds_needed(claim.paired, claim.equivalence_margin, planned, sequential_max=sequential)
    return {"seeds": ALTERNATIVE_SEEDS, "margin": margin,
            "spread_factor": None if margin is None else margin / claim.margin, "paired_seeds": paired}


def seeds_text(n: Optional[int]) -> str:
    """'about 12 seeds per cell', '1000 or more seeds per cell', or why it is unknown."""
    if n is None:
        return "an unknown number of seeds (no seed spread measured yet)"
    return f"{MAX_SEEDS_NEEDED} or more seeds per cell" if n >= MAX_SEEDS_NEEDED else f"about {n} seeds per cell"


def _why_insufficient(claim: Claim) -> str:
    if claim.names:
        return f"{claim.n_me} seeds of {claim.names[0]} and {claim.n_se} of {claim.names[1]} ran; {MIN_SEEDS} each needed"
    if claim.kind in ("gap", "ia_gap", "scaling_gap"):
        return f"{claim.n_me} ME and {claim.n_se} SE seeds ran; {MIN_SEEDS} per arm needed"
    fewest = claim.n_me if claim.arm == "me" else claim.n_se
    return f"{fewest} seed{'s' if fewest != 1 else ''} at some size; {MIN_SEEDS} per size needed"


SUBJECT = {
    "gap": lambda c: f"ME vs SE {c.where or f'at {c.scale}x'}",
    "ia_gap": lambda c: f"large-field IA, ME vs SE at {c.scale}x",
    "trend": lambda c: f"{c.arm.upper()} trend",
    "top_trend": lambda c: f"{c.arm.upper()} at the top",
    "scaling_gap": lambda c: "ME vs SE scaling rate",
    "series_gap": lambda c: f"{c.names[0]} vs {c.names[1]} at {c.scale}x",
    "series_scaling_gap": lambda c: f"{c.names[0]} vs {c.names[1]} scaling rate",
}
WORDS = {
    ("gap", "me_ahead"): "ME is ahead of SE", ("gap", "me_behind"): "ME is behind SE",
    ("gap", "equivalent"): "ME and SE are equivalent (within the margin)",
    ("ia_gap", "me_ahead"): "ME's large-field embeddings are less collapsed than SE's",
    ("ia_gap", "me_behind"): "ME's large-field embeddings are more collapsed than SE's",
    ("ia_gap", "equivalent"): "ME's and SE's large-field IA are equivalent (within the margin)",
    ("trend", "improving"): "keeps improving", ("trend", "worsening"): "gets worse",
    ("trend", "saturated"): "is saturated (its total change over the measured range is within the margin)",
    ("top_trend", "improving"): "still improves between its two largest sizes",
    ("top_trend", "worsening"): "gets worse between its two largest sizes",
    ("top_trend", "saturated"): "saturates: between its two largest sizes it changes by less than the margin",
    ("scaling_gap", "me_scales_better"): "ME scales better than SE",
    ("scaling_gap", "se_scales_better"): "SE scales better than ME",
    ("scaling_gap", "same_scaling"): "ME and SE scale alike (their total gains over the range differ by less than "
                                     "the margin)",
    ("series_gap", "a_ahead"): "{a} is ahead of {b}", ("series_gap", "a_behind"): "{a} is behind {b}",
    ("series_gap", "equivalent"): "{a} and {b} are equivalent (within the margin)",
    ("series_scaling_gap", "a_scales_better"): "{a} scales better than {b}",
    ("series_scaling_gap", "b_scales_better"): "{b} scales better than {a}",
    ("series_scaling_gap", "same_scaling"): "{a} and {b} scale alike (their total gains over the range differ by "
                                            "less than the margin)",
}
UNITS = {"gap": "AUC", "ia_gap": "IA", "trend": "AUC per doubling", "top_trend": "AUC per doubling",
         "scaling_gap": "AUC per doubling (ME − SE)", "series_gap": "AUC", "series_scaling_gap": "AUC per doubling"}


def _interval_text(claim: Claim) -> str:
    digits = 2 if claim.kind == "ia_gap" else 4
    adjusted = f", family p = {claim.p_adjusted:.3f}" if claim.p_adjusted is not None else ""
    return f" ({100 * claim.level:.4g}% CI [{claim.low:+.{digits}f}, {claim.high:+.{digits}f}]{adjusted})"


def _peak_words(claim: Claim) -> str:
    where = "between its two largest sizes" if claim.kind == "top_trend" else "over the measured range"
    return (f"peaks near {claim.peak:.3g} and declines after (its fitted curve; {where} it changes by less than "
            "the margin in total)")


def mark_peak(claim: Claim, peak: Optional[float]) -> None:
    """A saturated trend whose fitted curve is best strictly inside the measured range peaks
    there: "saturated" would hide the decline."""
    if peak is not None and claim.verdict == VERDICTS[claim.kind][2] and claim.kind in ("trend", "top_trend"):
        claim.verdict, claim.peak = PEAKED, float(peak)


def claim_text(claim: Claim) -> str:
    """One short sentence for one claim."""
    digits = 2 if claim.kind == "ia_gap" else 4
    subject = SUBJECT[claim.kind](claim)
    if claim.verdict == INSUFFICIENT:
        needed = seeds_text(claim.seeds_needed)
        return f"{subject}: insufficient seeds ({_why_insufficient(claim)}; {needed} would decide it)"
    value = f"{claim.estimate:+.{digits}f} {UNITS[claim.kind].replace('AUC', claim.metric)}{_interval_text(claim)}"
    if claim.verdict == UNDECIDED:
        return f"{subject}: undecided, {value}; {seeds_text(claim.seeds_needed)} would decide it"
    words = _peak_words(claim) if claim.verdict == PEAKED else WORDS[(claim.kind, claim.verdict)]
    if claim.names:
        words = words.format(a=claim.names[0], b=claim.names[1])
    if claim.kind in ("trend", "top_trend"):
        words = f"{claim.arm.upper()} {words}"
    if claim.directional and claim.within_margin:
        words += f", by less than the margin ±{claim.margin:g}"
    return f"{words}: {value}"
