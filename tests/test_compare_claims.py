"""Two series compared (`report A B --compare SWEEP/BACKBONE/ARM:SWEEP/BACKBONE/ARM`) under real
noise: calibrated with unequal seeds and spreads, and never across different data."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys_scaling.report import analyse
from recsys_scaling.report.compare import parse_comparison


# -- the comparison's claims under real noise ---------------------------------------------------
def _two_series(rng, a_slope: float, b_slope: float, pairs: int):
    """Series a (8 seeds, sd 2e-4) and b (4 seeds, sd 2e-4, 6e-4 at the top size) of `pairs`
    backbones each, both ME curves over scales 1, 2, 4, 10 at matched sizes."""
    from test_noise import SD, spec, table

    a = table(rng, spec(me_slope=a_slope, seeds=8), pairs, series="a")
    b = table(rng, spec(me_slope=b_slope, seeds=4, top_seeds=3, top_sd=3 * SD), pairs, series="b")
    return pd.concat([a, b]).assign(data_fingerprint="same data")


def _compared(seed: int, a_slope: float, b_slope: float, pairs: int = 150):
    runs = _two_series(np.random.default_rng(seed), a_slope, b_slope, pairs)
    specs = [parse_comparison(f"a/b{i:03d}/me:b/b{i:03d}/me") for i in range(pairs)]
    results = analyse(runs, resamples=1, fit=False, margin=5e-4, compare=specs)
    return [r for r in results if r.series == "comparison"]


@pytest.mark.slow
def test_comparisons_are_calibrated_under_unequal_seeds_and_spreads_and_keep_their_power():
    """Null: both series scale alike (0.3 M per doubling), b with half the seeds and 3x the spread
    at its top size; the chance that a comparison shows any false direction stays <= 5%. Power:
    a gains 3 M more per doubling than b."""
    null = [c for seed in range(3) for c in _compared(seed, 1.5e-4, 1.5e-4)]
    false = sum(any(claim.directional for claim in c.claims) for c in null) / len(null)
    planted = [c for seed in range(3, 5) for c in _compared(seed, 1.5e-3, 0.0)]
    power = sum(c.scaling_gap.verdict == "a_scales_better" for c in planted) / len(planted)
    wrong = sum(c.scaling_gap.verdict == "b_scales_better" for c in planted)
    print(f"comparison null: any false direction {false:.3f} ({len(null)} comparisons); power {power:.3f}")
    assert false <= 0.05 + 2.33 * (0.05 * 0.95 / len(null)) ** 0.5
    assert power >= 0.8 and wrong == 0


def test_series_on_different_data_are_never_compared():
    runs = _two_series(np.random.default_rng(0), 0.0, 0.0, 1)
    runs.loc[runs["series"] == "b", "data_fingerprint"] = "other data"
    result = analyse(runs, resamples=1, fit=False, compare=[parse_comparison("a/b000/me:b/b000/me")])[-1]
    assert result.claims == [] and "measured on different data" in result.verdict
    with pytest.raises(ValueError, match="no finished runs of a/b999/me; this report has a/b000/me"):
        analyse(runs, resamples=1, fit=False, compare=[parse_comparison("a/b999/me:b/b000/me")])
    with pytest.raises(ValueError, match="write A:B"):
        parse_comparison("custom/me")
