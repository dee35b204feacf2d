"""Calibration of the report's claims, measured by simulation through `analyse`.

Each trial is a tidy runs table (the columns runs.parquet has) with normal seed noise around a
known truth; many backbones per table make one `analyse` call yield many independent claims.
The measured rates are printed (visible in the test log)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys_scaling.report import analyse
from recsys_scaling.report.claims import INSUFFICIENT, gap_claim, holm_adjust, trend_claim

SCALES = (1, 2, 3, 4)
SD = 0.002  # seed-to-seed sd of test AUC, as measured on the demo benchmark
BACKBONES_PER_TABLE = 50


def runs_table(rng, seeds: int, me_gain=0.0, se_slope=0.0, me_slope=0.0, backbones=BACKBONES_PER_TABLE,
               series="sim", seed_offset=0) -> pd.DataFrame:
    """SE at every scale, ME above 1x (its 1x is the SE base). True AUC = 0.70 + slope*log2(scale)
    (+ me_gain for ME)."""
    rows = []
    for b in range(backbones):
        for arm in ("se", "me"):
            for scale in SCALES:
                if arm == "me" and scale == 1:
                    continue
                slope = me_slope if arm == "me" else se_slope
                truth = 0.70 + slope * np.log2(scale) + (me_gain if arm == "me" else 0.0)
                k, d = (1, 10 * scale) if arm == "se" else (scale, 10)
                for s in range(seeds):
                    seed = s + seed_offset
                    rows.append({
                        "run_id": f"{series}-{b}-{arm}-{scale}-{seed}", "experiment_id": "0", "status": "FINISHED",
                        "backbone": f"b{b:02d}", "arm": arm, "scale": scale, "num_embeddings": k, "embed_dim": d,
                        "seed": seed, "series": series, "fingerprint": f"{series}-{b}-{arm}-{scale}-{seed}",
                        "start_time": 0, "test_auc": truth + rng.normal(0, SD),
                        "test_logloss": 0.5 + rng.normal(0, SD), "params_total": 1e5 * scale * (1.3 if arm == "se" else 1.0),
                    })
    return pd.DataFrame(rows)


def claims_of(results, kind, arm=None, scale=None):
    return [c for r in results for c in r.claims
            if c.kind == kind and (arm is None or c.arm == arm) and (scale is None or c.scale == scale)]


def rates(claims, verdicts):
    return {v: sum(c.verdict == v for c in claims) / len(claims) for v in verdicts}


def simulate(seeds, trials, **truth):
    rng = np.random.default_rng(1000 * seeds + trials)
    gaps, me_trends, se_trends = [], [], []
    for _ in range(trials):
        results = analyse(runs_table(rng, seeds, **truth), resamples=1)
        gaps += claims_of(results, "gap", scale=max(SCALES))
        me_trends += claims_of(results, "trend", arm="me")
        se_trends += claims_of(results, "trend", arm="se")
    return gaps, me_trends, se_trends


@pytest.mark.slow
@pytest.mark.parametrize("seeds", [3, 5])
def test_null_gap_and_trend_claims_are_calibrated(seeds, capsys):
    gaps, me_trends, se_trends = simulate(seeds, trials=20)  # 1000 claims of each kind
    gap = rates(gaps, ["me_ahead", "me_behind"])
    trend = rates(se_trends + me_trends, ["improving", "worsening"])
    with capsys.disabled():
        print(f"\n[calibration] null, {seeds} seeds, {len(gaps)} gaps: P(ME ahead) {gap['me_ahead']:.3f}, "
              f"P(ME behind) {gap['me_behind']:.3f}; {len(se_trends) * 2} flat trends: P(improving) "
              f"{trend['improving']:.3f}, P(worsening) {trend['worsening']:.3f} (nominal 0.025 each)")
    assert gap["me_ahead"] + gap["me_behind"] <= 0.065  # 5% nominal, ~0.7% Monte Carlo sd
    assert gap["me_ahead"] <= 0.04 and gap["me_behind"] <= 0.04
    assert trend["improving"] + trend["worsening"] <= 0.065


@pytest.mark.slow
def test_too_few_seeds_make_no_claim(capsys):
    for seeds in (1, 2):
        gaps, me_trends, se_trends = simulate(seeds, trials=2, me_gain=10 * SD, me_slope=5 * SD)
        assert {c.verdict for c in gaps + me_trends + se_trends} == {INSUFFICIENT}
        assert all(c.low is None and c.high is None for c in gaps + me_trends)
    with capsys.disabled():
        print(f"\n[calibration] 1 and 2 seeds with a 10-sd true gap: every claim is {INSUFFICIENT}")


@pytest.mark.slow
def test_power_under_a_known_effect(capsys):
    gaps, me_trends, _ = simulate(5, trials=4, me_gain=5 * SD, me_slope=1 * SD)  # 200 claims each
    found_gap = rates(gaps, ["me_ahead"])["me_ahead"]
    found_trend = rates(me_trends, ["improving"])["improving"]
    gaps3, me_trends3, _ = simulate(3, trials=4, me_gain=5 * SD, me_slope=1 * SD)
    with capsys.disabled():
        print(f"\n[power] gap of 5 seed-sd: found {found_gap:.3f} with 5 seeds, "
              f"{rates(gaps3, ['me_ahead'])['me_ahead']:.3f} with 3; ME trend of 1 sd per doubling over "
              f"{len(SCALES)} sizes: found {found_trend:.3f} with 5 seeds, "
              f"{rates(me_trends3, ['improving'])['improving']:.3f} with 3")
    assert found_gap >= 0.8
    assert found_trend >= 0.8


def test_paired_by_seed_when_asked_and_seeds_match():
    rng = np.random.default_rng(3)
    shared = rng.normal(0, 0.01, 5)  # a per-seed effect both arms share (the same shuffling)
    me = {s: 0.70 + 0.002 + shared[s] + rng.normal(0, 2e-4) for s in range(5)}
    se = {s: 0.70 + shared[s] + rng.normal(0, 2e-4) for s in range(5)}
    welch, paired = gap_claim(me, se, 4, "welch"), gap_claim(me, se, 4, "seed")
    assert welch.verdict == "no_difference" and paired.verdict == "me_ahead"
    assert paired.method.startswith("paired") and paired.df == 4
    unpaired = gap_claim(me, {s + 10: v for s, v in se.items()}, 4, "seed")
    assert unpaired.method.startswith("welch") and "not paired" in unpaired.method


def test_pairing_through_analyse():
    rng = np.random.default_rng(4)
    table = runs_table(rng, 3, me_gain=0.0, backbones=2)
    for result in analyse(table, resamples=1, pairing="seed"):
        assert all(c.method.startswith("paired") for c in result.gaps)


def test_holm_controls_the_family():
    claims = [trend_claim("se", [1, 2, 4], [[0.7, 0.701, 0.699]] * 3)] + [
        gap_claim({0: 0.7 + d, 1: 0.701 + d, 2: 0.699 + d}, {0: 0.7, 1: 0.701, 2: 0.699}, 2) for d in (0.01, 0.0026)]
    before = [c.verdict for c in claims]
    holm_adjust(claims)
    assert before == ["flat", "me_ahead", "me_ahead"]
    assert [c.verdict for c in claims] == ["flat", "me_ahead", "no_difference"]
    assert all(c.p_adjusted >= c.p_value for c in claims)


def test_sweeps_are_never_pooled_and_duplicates_count_once():
    rng = np.random.default_rng(5)
    a = runs_table(rng, 2, backbones=1, series="demo")
    b = runs_table(rng, 2, backbones=1, series="rerun", seed_offset=2)
    # alone, each sweep has 2 seeds: insufficient; pooled they would reach 4 and claim
    results = analyse(pd.concat([a, b, a.iloc[:5]]), resamples=1)  # a's first rows reported twice
    assert [(r.series, r.label) for r in results] == [("demo", "demo / b00"), ("rerun", "rerun / b00")]
    assert all(c.verdict == INSUFFICIENT for r in results for c in r.claims)
    assert all(c.n_me == 2 and c.n_se == 2 for r in results for c in r.gaps)


def test_me_curve_starts_from_the_se_base():
    rng = np.random.default_rng(6)
    table = runs_table(rng, 3, backbones=1)
    result = analyse(table, resamples=1)[0]
    me_fit, se_fit = result.fits["auc"]["me"], result.fits["auc"]["se"]
    assert me_fit.sizes[0] == se_fit.sizes[0] and me_fit.means[0] == se_fit.means[0]
    assert [c.scale for c in result.gaps] == [2, 3, 4]


def test_claims_are_machine_readable():
    rng = np.random.default_rng(7)
    result = analyse(runs_table(rng, 3, backbones=1), resamples=1)[0]
    claims = result.as_dict()["claims"]
    assert {"kind", "arm", "scale", "estimate", "low", "high", "n_me", "n_se", "method", "verdict"} <= set(claims[0])
    assert {c["kind"] for c in claims} == {"gap", "trend"}
    assert all(c["verdict"] in {"me_ahead", "me_behind", "no_difference", "improving", "worsening", "flat",
                                INSUFFICIENT} for c in claims)
    assert result.verdict.startswith("b00: ")
