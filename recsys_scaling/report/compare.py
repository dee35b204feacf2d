"""Two series of one report compared: does a user's model scale better than a baseline?

A series is `[SWEEP/]BACKBONE/ARM` — e.g. `mine/custom/me` against `demo/dcnv2/me`. The claims are
the SE-vs-ME ones with the two series in place of the arms: the test AUC gap A − B at every scale
both ran (each scale is a matched embedding budget: SE d = s·d0, ME K = s sets of d0), and the
scaling-rate gap, A's AUC per doubling of the size axis minus B's over those scales. They carry
the same intervals, equivalence margins and family correction (a comparison is one family under
`family=backbone`). Series measured on different data are never compared.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

import pandas as pd

from .cells import arm_cells, arm_curves, gap_claims, scaling_gap_claim
from .claims import Claim
from .intervals import Levels

SPEC_HELP = "write A:B with each series as [SWEEP/]BACKBONE/ARM, e.g. custom/me:dcnv2/me or mine/custom/me:demo/dnn/me"


@dataclass(frozen=True)
class SeriesSpec:
    backbone: str
    arm: str
    sweep: Optional[str] = None

    @classmethod
    def parse(cls, text: str) -> "SeriesSpec":
        parts = [p.strip() for p in str(text).split("/")]
        if len(parts) not in (2, 3) or not all(parts) or parts[-1] not in ("se", "me"):
            raise ValueError(f"--compare series {text!r}: {SPEC_HELP}")
        return cls(parts[-2], parts[-1], parts[0] if len(parts) == 3 else None)

    @property
    def label(self) -> str:
        return "/".join(p for p in (self.sweep, self.backbone, self.arm) if p)


def parse_comparison(text: str) -> Tuple[SeriesSpec, SeriesSpec]:
    first, sep, second = str(text).partition(":")
    if not sep:
        raise ValueError(f"--compare {text!r}: {SPEC_HELP}")
    return SeriesSpec.parse(first), SeriesSpec.parse(second)


@dataclass
class Comparison:
    """A − B claims of two series (`series_gap` per scale, `series_scaling_gap`), or why none."""

    a: SeriesSpec
    b: SeriesSpec
    claims: List[Claim] = field(default_factory=list)
    sweeps: Tuple[str, ...] = ()  # where more seeds would go
    note: str = ""  # why the series were not compared
    verdict: str = ""
    points: dict = field(default_factory=dict)  # series label -> [(scale, size, mean, sd, n)], for the plot
    fits: dict = field(default_factory=dict)  # none: the backbones' own fits are in their rows
    effective_multiplier: list = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.a.label} vs {self.b.label}"

    @property
    def backbone(self) -> str:
        return self.label

    @property
    def series(self) -> str:
        return "comparison"

    @property
    def gaps(self) -> List[Claim]:
        return [c for c in self.claims if c.kind == "series_gap"]

    @property
    def scaling_gap(self) -> Optional[Claim]:
        return next((c for c in self.claims if c.kind == "series_scaling_gap"), None)

    def lead_claims(self) -> List[Claim]:
        """The scaling rate first, then the gap at the largest common scale."""
        return [c for c in (self.scaling_gap, self.gaps[-1] if self.gaps else None) if c is not None]

    def seeds_to_decide(self) -> Optional[int]:
        needed = [c.seeds_needed for c in self.lead_claims() if not c.decided and c.seeds_needed is not None]
        return max(needed) if needed else None

    def as_dict(self) -> dict:
        return {"a": self.a.label, "b": self.b.label, "note": self.note, "verdict": self.verdict,
                "claims": [c.as_dict() for c in self.claims]}


def series_runs(done: pd.DataFrame, spec: SeriesSpec) -> pd.DataFrame:
    """The runs on the spec's curve (the ME curve starts at its SE base), from one sweep. A spec
    without a sweep must be unambiguous."""
    rows = done[done["backbone"].astype(str) == spec.backbone]
    if spec.sweep is not None:
        rows = rows[rows["series"].astype(str).str.split(" @ data ").str[0] == spec.sweep]
    available = sorted({f"{s}/{b}/{a}" for s, b, a in zip(done["series"], done["backbone"], done["arm"])})
    if rows.empty:
        raise ValueError(f"--compare: no finished runs of {spec.label}; this report has {', '.join(available)}")
    if rows["series"].nunique() > 1:
        raise ValueError(f"--compare: {spec.label} is in several series ({', '.join(sorted(rows['series'].unique()))});"
                         " name the sweep, e.g. SWEEP/BACKBONE/ARM")
    curve = arm_curves(rows).get(spec.arm)
    if curve is None or curve.empty:
        raise ValueError(f"--compare: no finished runs of {spec.label}; this report has {', '.join(available)}")
    return curve


def _data(curve: pd.DataFrame) -> frozenset:
    """The data fingerprints of a curve's runs ("unknown": recorded before runs carried one); an
    empty set for a table without the column (built by hand: the caller vouches for its data)."""
    if "data_fingerprint" not in curve:
        return frozenset()
    return frozenset(curve["data_fingerprint"].fillna("unknown").astype(str))


def compare(done: pd.DataFrame, a: SeriesSpec, b: SeriesSpec, x: str, pairing: str, margin: float,
            levels: Levels) -> Comparison:
    """The comparison of two series of `done` (analysis._finished's table) on size column `x`."""
    curve_a, curve_b = series_runs(done, a), series_runs(done, b)
    sweeps = tuple(dict.fromkeys(str(c["series"].iloc[0]).split(" @ data ")[0] for c in (curve_a, curve_b)))
    result = Comparison(a, b, sweeps=sweeps)
    data_a, data_b = _data(curve_a), _data(curve_b)
    if data_a != data_b or "unknown" in data_a:
        result.note = (f"{a.label} and {b.label} were measured on different data (data fingerprints "
                       f"{', '.join(sorted(d[:8] for d in data_a))} and {', '.join(sorted(d[:8] for d in data_b))}); "
                       "runs on different data are never compared")
        return result
    cells_a, cells_b = arm_cells(curve_a, x, "score"), arm_cells(curve_b, x, "score")
    result.points = {spec.label: [(c.scale, c.size, float(c.array.mean()),
                                   float(c.array.std(ddof=1)) if len(c.values) > 1 else 0.0, len(c.values))
                                  for c in cells] for spec, cells in ((a, cells_a), (b, cells_b))}
    names = (a.label, b.label)
    scaling = scaling_gap_claim(cells_a, cells_b, margin, levels, kind="series_scaling_gap", names=names)
    result.claims = ([scaling] if scaling is not None else []) + gap_claims(
        cells_a, cells_b, pairing, margin, levels, kind="series_gap", first_scale=1, names=names)
    if not result.claims:
        result.note = (f"{a.label} and {b.label} share no scale: scales {sorted(c.scale for c in cells_a)} against "
                       f"{sorted(c.scale for c in cells_b)}")
    return result


def comparisons(done: pd.DataFrame, specs: Sequence[Tuple[SeriesSpec, SeriesSpec]], x: str, pairing: str,
                margin: float, levels: Levels) -> List[Comparison]:
    return [compare(done, a, b, x, pairing, margin, levels) for a, b in specs]
