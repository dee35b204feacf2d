"""Calibration of the report's claims, each read alone (family="claim"), measured by simulation
through `analyse` (families and unequal noise: tests/test_noise.py).

Each trial is a tidy runs table (the columns runs.parquet has) with normal seed noise around a
known truth; many backbones per table make one `analyse` call yield many independent claims.
The measured rates are printed (visible in the test log)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys_scaling.report import analyse
from recsys_scaling.report.claims import ALL_VERDICTS, INSUFFICIENT, UNDECIDED, claim_text, holm_adjust
from recsys_scaling.report.intervals import Levels, contrast, seeds_needed

SCALES = (1, 2, 3, 4, 10)  # the paper's
SD = 0.002  # seed-to-seed sd of test AUC, as measured on the demo benchmark
MARGIN = 0.0005
BACKBONES_PER_TABLE = 50


def runs_table(rng, seeds, me_gain=0.0, se_slope=0.0, me_slope=0.0, backbones=BACKBONES_PER_TABLE, series="sim",
               seed_offset=0, sd=SD, me_sd=None, se_size_factor=1.0) -> pd.DataFrame:
    """SE at every scale, ME above 1x (its 1x is the SE base). True AUC = 0.70 + slope*log2(scale)
    (+ me_gain for ME); sizes are 1e5 x scale (x se_size_factor for SE)."""
    rows = []
    for b in range(backbones):
        for arm in ("se", "me"):
            for scale in SCALES:
                if arm == "me" and scale == 1:
                    continue
                slope = me_slope if arm == "me" else se_slope
                truth = 0.70 + slope * np.log2(scale) + (me_gain if arm == "me" else 0.0)
                noise = me_sd if arm == "me" and me_sd is not None else sd
                k, d = (1, 10 * scale) if arm == "se" else (scale, 10)
                for s in range(seeds):
                    seed = s + seed_offset
                    name = f"{series}-{b}-{arm}-{scale}-{seed}"
                    rows.append({
                        "run_id": name, "experiment_id": "0", "status": "FINISHED", "backbone": f"b{b:02d}",
                        "arm": arm, "scale": scale, "num_embeddings": k, "embed_dim": d, "seed": seed,
                        "series": series, "fingerprint": name, "start_time": 0,
                        "test_auc": truth + rng.normal(0, noise), "test_logloss": 0.5 + rng.normal(0, noise),
                        "params_total": 1e5 * scale * (se_size_factor if arm == "se" else 1.0),
                    })
    return pd.DataFrame(rows)


def claims_of(results, kind, arm=None, scale=None):
    return [c for r in results for c in r.claims
            if c.kind == kind and (arm is None or c.arm == arm) and (scale is None or c.scale == scale)]


def rate(claims, *verdicts):
    return sum(c.verdict in verdicts for c in claims) / len(claims)


def simulate(seeds, trials, kind, arm=None, scale=None, **truth):
    rng = np.random.default_rng(1000 * seeds + trials)
    claims = []
    for _ in range(trials):
        results = analyse(runs_table(rng, seeds, **truth), resamples=1, margin=MARGIN, fit=False, family="claim")
        claims += claims_of(results, kind, arm, scale)
    return claims


def report(label: str, value: float, capsys) -> None:
    with capsys.disabled():
        print(f"\n[calibration] {label}: {value:.3f}")


@pytest.mark.slow
@pytest.mark.parametrize("seeds", [3, 5])
def test_null_directional_claims_are_calibrated(seeds, capsys):
    rng = np.random.default_rng(seeds)
    found = {"gap": [], "trend": [], "top_trend": [], "scaling_gap": []}
    for _ in range(20):  # 1000 claims per kind (2000 for the per-arm trends)
        results = analyse(runs_table(rng, seeds), resamples=1, fit=False, family="claim")
        for kind in found:
            found[kind] += claims_of(results, kind, scale=max(SCALES) if kind == "gap" else None)
    directional = {"gap": ("me_ahead", "me_behind"), "trend": ("improving", "worsening"),
                   "top_trend": ("improving", "worsening"), "scaling_gap": ("me_scales_better", "se_scales_better")}
    for kind, claims in found.items():
        up, down = rate(claims, directional[kind][0]), rate(claims, directional[kind][1])
        report(f"null, {seeds} seeds, {len(claims)} {kind} claims: P(false {directional[kind][0]}) {up:.3f}, "
               f"P(false {directional[kind][1]})", down, capsys)
        assert up + down <= 0.065  # 5% nominal, ~0.7% Monte Carlo sd
        assert up <= 0.04 and down <= 0.04


@pytest.mark.slow
def test_too_few_seeds_make_no_claim_and_say_how_many_would(capsys):
    for seeds in (1, 2):
        claims = simulate(seeds, 1, "gap", me_gain=10 * SD, me_slope=5 * SD)
        claims += simulate(seeds, 1, "scaling_gap", me_gain=10 * SD, me_slope=5 * SD)
        assert {c.verdict for c in claims} == {INSUFFICIENT}
        assert all(c.low is None and c.high is None for c in claims)
    assert all(c.seeds_needed is not None and c.seeds_needed >= 3 for c in claims)  # 2 seeds: a spread is known
    one = analyse(runs_table(np.random.default_rng(0), 1, backbones=1), resamples=1, fit=False)[0]
    assert all(c.seeds_needed is None for c in one.claims)  # 1 seed: no spread anywhere
    assert "unknown number of seeds" in claim_text(one.gaps[0])
    report("1 and 2 seeds with a 10-sd true gap: share of claims that are insufficient_seeds", 1.0, capsys)


@pytest.mark.slow
def test_power_under_a_known_effect(capsys):
    gaps = simulate(5, 4, "gap", scale=max(SCALES), me_gain=5 * SD, me_slope=1 * SD)  # 200 claims
    trends = simulate(5, 4, "trend", arm="me", me_gain=5 * SD, me_slope=1 * SD)
    report("gap of 5 seed-sd, 5 seeds: P(me_ahead)", rate(gaps, "me_ahead"), capsys)
    report("ME trend of 1 seed-sd per doubling over 4 sizes, 5 seeds: P(improving)", rate(trends, "improving"), capsys)
    assert rate(gaps, "me_ahead") >= 0.8
    assert rate(trends, "improving") >= 0.8


@pytest.mark.slow
def test_equivalence_needs_precise_data(capsys):
    precise = simulate(5, 10, "gap", scale=max(SCALES), sd=1e-4)  # a true zero gap, Criteo-like seed sd
    noisy = simulate(3, 10, "gap", scale=max(SCALES), sd=3e-3)  # the same truth, the demo's seed sd
    report("true gap 0, sd 1e-4, 5 seeds: P(equivalent)", rate(precise, "equivalent"), capsys)
    report("true gap 0, sd 3e-3, 3 seeds: P(equivalent)", rate(noisy, "equivalent"), capsys)
    assert rate(precise, "equivalent") >= 0.8
    assert rate(noisy, "equivalent") <= 0.05
    assert rate(noisy, UNDECIDED) >= 0.9 and not any(c.verdict == "no_difference" for c in noisy)


@pytest.mark.slow
@pytest.mark.parametrize("seeds", [3, 5])
def test_equivalence_at_the_margin_is_calibrated(seeds, capsys):
    """A true gap exactly at the margin must be called equivalent at most 5% of the time (TOST)."""
    claims = simulate(seeds, 40, "gap", scale=max(SCALES), me_gain=MARGIN, sd=2e-4)  # 2000 claims
    report(f"true gap = margin, sd 2e-4, {seeds} seeds: P(equivalent)", rate(claims, "equivalent"), capsys)
    assert rate(claims, "equivalent") <= 0.065  # 5% nominal, ~0.5% Monte Carlo sd


@pytest.mark.slow
def test_a_flat_arm_measured_precisely_is_saturated(capsys):
    trends = simulate(5, 4, "trend", arm="se", sd=1e-4, me_slope=0.002)
    top = simulate(5, 4, "top_trend", arm="se", sd=1e-4, me_slope=0.002)
    improving = simulate(5, 4, "top_trend", arm="me", sd=1e-4, me_slope=0.002)
    report("flat SE, sd 1e-4, 5 seeds: P(trend saturated)", rate(trends, "saturated"), capsys)
    report("flat SE, sd 1e-4, 5 seeds: P(top_trend saturated)", rate(top, "saturated"), capsys)
    assert rate(trends, "saturated") >= 0.8 and rate(top, "saturated") >= 0.8
    assert rate(improving, "improving") >= 0.8  # ME's 0.002 per doubling at the top


@pytest.mark.slow
def test_scaling_gap_is_calibrated_and_finds_a_slope_difference(capsys):
    equal = simulate(3, 40, "scaling_gap", se_slope=0.004, me_slope=0.004, me_sd=2 * SD)  # unequal variances
    differ = simulate(5, 4, "scaling_gap", se_slope=0.0, me_slope=0.004, sd=1e-3)
    same = simulate(5, 4, "scaling_gap", se_slope=0.004, me_slope=0.004, sd=1e-4)
    report("equal slopes, 3 seeds, ME sd 2x SE's: P(directional scaling_gap)",
           rate(equal, "me_scales_better", "se_scales_better"), capsys)
    report("ME 0.004/doubling vs flat SE, sd 1e-3, 5 seeds: P(me_scales_better)", rate(differ, "me_scales_better"),
           capsys)
    assert rate(equal, "me_scales_better", "se_scales_better") <= 0.065
    assert rate(differ, "me_scales_better") >= 0.8
    assert rate(same, "same_scaling") >= 0.8


@pytest.mark.slow
def test_running_the_seeds_needed_decides_the_claim(capsys):
    """Run the seeds an undecided claim asks for, on fresh data with the same truth: it decides."""
    rng = np.random.default_rng(11)
    decided, trials = 0, 200
    for _ in range(trials):
        first = contrast([rng.normal(0.7, 1e-3, 3), rng.normal(0.7, 1e-3, 3)], [1, -1])
        n = seeds_needed(first, MARGIN, Levels())
        again = analyse(_one_gap_table(rng, n, 1e-3), resamples=1, margin=MARGIN, fit=False, family="claim")[0]
        decided += again.gaps[0].decided
    report("true gap 0, sd 1e-3: share decided after running seeds_needed seeds", decided / trials, capsys)
    assert decided / trials >= 0.8


def _one_gap_table(rng, seeds: int, sd: float) -> pd.DataFrame:
    table = runs_table(rng, seeds, backbones=1, sd=sd)
    return table[table["scale"].isin([1, 10])]


@pytest.mark.slow
def test_sequential_intervals_survive_repeated_looks(capsys):
    """Under a null, look after every added seed from 3 to 10 and stop at the first ME ahead /
    behind: sequential intervals keep that at most 5%; fixed ones do not."""
    rng = np.random.default_rng(12)
    stopped = {True: 0, False: 0}
    sequences = 0
    for _ in range(4):
        table = runs_table(rng, 10, backbones=125)
        table = table[table["scale"].isin([1, 10])]
        for sequential in (True, False):
            claimed = set()
            for n in range(3, 11):
                results = analyse(table[table["seed"] < n], resamples=1, fit=False, sequential=sequential,
                                  family="claim", max_seeds=10)
                claimed |= {r.backbone for r in results if r.gaps[0].directional}
            stopped[sequential] += len(claimed)
        sequences += 125
    report("null, looks at 3..10 seeds, stop at the first ahead/behind: P(false claim), fixed intervals",
           stopped[False] / sequences, capsys)
    report("... with sequential=True, max_seeds=10", stopped[True] / sequences, capsys)
    assert stopped[True] / sequences <= 0.05
    assert stopped[False] / sequences > stopped[True] / sequences


def test_paired_by_seed_when_asked_and_seeds_match():
    rng = np.random.default_rng(3)
    shared = rng.normal(0, 0.01, 5)  # a per-seed effect both arms share (the same shuffling)
    table = runs_table(rng, 5, backbones=1, sd=2e-4)
    table["test_auc"] += shared[table["seed"]] + np.where(table["arm"] == "me", 0.002, 0.0)
    welch = analyse(table, resamples=1, fit=False)[0].gaps[-1]
    paired = analyse(table, resamples=1, fit=False, pairing="seed")[0].gaps[-1]
    assert welch.verdict == UNDECIDED and paired.verdict == "me_ahead"
    assert paired.method.startswith("paired") and paired.df == 4
    table.loc[table["arm"] == "se", "seed"] += 10
    unpaired = analyse(table, resamples=1, fit=False, pairing="seed")[0].gaps[-1]
    assert "not paired" in unpaired.method


def test_holm_controls_the_family():
    rng = np.random.default_rng(4)
    table = runs_table(rng, 3, backbones=1, sd=1e-3, me_gain=0.004)
    plain = analyse(table, resamples=1, fit=False, family="claim")[0]
    holm = analyse(table, resamples=1, fit=False)[0]  # the default: Holm over the backbone's claims
    assert all(c.p_adjusted >= min(c.p_value, c.p_equivalence) for c in holm.claims if c.p_value is not None)
    assert sum(c.decided for c in holm.claims) <= sum(c.decided for c in plain.claims)
    assert all("Holm over" in c.method and c.family == "backbone" for c in holm.claims if c.p_value is not None)
    assert all(c.p_adjusted is None and c.family == "claim" for c in plain.claims)
    holm_adjust([])  # an empty family is fine


def test_sweeps_are_never_pooled_and_duplicates_count_once():
    rng = np.random.default_rng(5)
    a = runs_table(rng, 2, backbones=1, series="demo")
    b = runs_table(rng, 2, backbones=1, series="rerun", seed_offset=2)
    # alone, each sweep has 2 seeds: insufficient; pooled they would reach 4 and claim
    results = analyse(pd.concat([a, b, a.iloc[:5]]), resamples=1)  # a's first rows reported twice
    assert [(r.series, r.label) for r in results] == [("demo", "demo / b00"), ("rerun", "rerun / b00")]
    assert all(c.verdict == INSUFFICIENT for r in results for c in r.claims)
    assert all(c.n_me == 2 and c.n_se == 2 for r in results for c in r.gaps)


def test_me_curve_starts_from_the_se_base_and_the_scaling_gap_counts_it_once():
    rng = np.random.default_rng(6)
    result = analyse(runs_table(rng, 3, backbones=1, se_size_factor=1.3), resamples=1)[0]
    me_fit, se_fit = result.fits["auc"]["me"], result.fits["auc"]["se"]
    assert me_fit.sizes[0] == se_fit.sizes[0] and me_fit.means[0] == se_fit.means[0]
    assert [c.scale for c in result.gaps] == [2, 3, 4, 10]
    # the shared base cell enters the slope difference once, with the two weights added
    assert len(result.scaling_gap.contrast.counts) == 2 * len(SCALES) - 1
    same_sizes = runs_table(rng, 3, backbones=1)
    # on equal sizes the base's two weights cancel: the slope difference does not use it
    assert len(analyse(same_sizes, resamples=1)[0].scaling_gap.contrast.counts) == 2 * len(SCALES) - 2


def test_claims_are_machine_readable():
    rng = np.random.default_rng(7)
    results = analyse(runs_table(rng, 3, backbones=1), resamples=1, margin=0.001, ia_margin=0.5)
    claims = results[0].as_dict()["claims"]
    assert {"kind", "arm", "scale", "estimate", "low", "high", "n_me", "n_se", "method", "verdict", "within_margin",
            "seeds_needed", "margin", "level"} <= set(claims[0])
    assert {c["kind"] for c in claims} == {"gap", "trend", "top_trend", "scaling_gap"}
    assert {c["verdict"] for c in claims} <= ALL_VERDICTS
    assert all(c["margin"] == 0.001 for c in claims)
    assert all((c["seeds_needed"] is None) == (c["verdict"] not in (UNDECIDED, INSUFFICIENT)) for c in claims)
    assert results[0].verdict.startswith("b00: ME vs SE scaling rate")
    for word in ("no difference", "no_difference", "flat"):
        assert word not in results[0].verdict


def test_a_directional_claim_inside_the_margin_says_so():
    rng = np.random.default_rng(8)
    table = runs_table(rng, 5, backbones=1, sd=2e-5, me_gain=2e-4)
    gap = analyse(table, resamples=1, fit=False)[0].gaps[-1]
    assert gap.verdict == "me_ahead" and gap.within_margin
    assert "by less than the margin" in claim_text(gap)


def test_bad_margins_and_sequential_without_a_plan_are_refused():
    table = runs_table(np.random.default_rng(9), 3, backbones=1)
    with pytest.raises(ValueError, match="margins must be positive"):
        analyse(table, margin=0)
    with pytest.raises(ValueError, match="max_seeds"):
        analyse(table, sequential=True)


def _gap_table(rng, seeds: int, sd: float, me_sd: float, seed_sd: float = 0.0) -> pd.DataFrame:
    """ME against SE at 10x (and the 1x base) with a true gap of 0; `seed_sd`: an effect each seed
    has on both arms alike (what pairing by seed removes)."""
    table = runs_table(rng, seeds, backbones=1, sd=sd, me_sd=me_sd)
    table = table[table["scale"].isin([1, 10])].copy()
    effect = rng.normal(0, seed_sd, seeds) if seed_sd else np.zeros(seeds)
    table["test_auc"] += effect[table["seed"].to_numpy()]
    return table


def _gap(table: pd.DataFrame, margin: float = MARGIN, pairing: str = "welch"):
    return analyse(table, resamples=1, margin=margin, fit=False, family="claim", pairing=pairing)[0].gaps[0]


@pytest.mark.slow
def test_what_else_would_decide_an_impractical_claim_decides_it(capsys):
    """Past 50 seeds per cell the report says instead: the margin that 10 seeds per cell decide,
    the factor by which the seed spread must shrink for 10 seeds to decide it at this margin, and
    the seeds a reading paired by seed needs. Each, run on fresh data with the same truth (a true
    gap of 0; ME's spread twice SE's; for pairing, a seed effect shared by both arms), decides the
    claim at least 80% of the time."""
    rng = np.random.default_rng(21)
    trials, sd = 100, 2e-3
    decided = {"margin": 0, "spread": 0, "paired": 0}
    for _ in range(trials):
        first = _gap(_gap_table(rng, 3, sd, 2 * sd))
        while first.decided:  # a 3-seed read that happened to decide (a false direction): not the case here
            first = _gap(_gap_table(rng, 3, sd, 2 * sd))
        alt = first.alternatives
        assert first.seeds_needed > 50 and alt["seeds"] == 10 and alt["paired_seeds"] is not None
        decided["margin"] += _gap(_gap_table(rng, 10, sd, 2 * sd), margin=alt["margin"]).decided
        k = alt["spread_factor"]
        decided["spread"] += _gap(_gap_table(rng, 10, sd / k, 2 * sd / k)).decided
        shared = _gap(_gap_table(rng, 3, 2e-4, 2e-4, seed_sd=sd))
        while shared.decided:
            shared = _gap(_gap_table(rng, 3, 2e-4, 2e-4, seed_sd=sd))
        paired = shared.alternatives["paired_seeds"]
        assert paired < shared.seeds_needed, "pairing removes the shared seed effect"
        decided["paired"] += _gap(_gap_table(rng, paired, 2e-4, 2e-4, seed_sd=sd), pairing="seed").decided
    for way, count in decided.items():
        report(f"impractical claim: share decided by its alternative ({way})", count / trials, capsys)
        assert count / trials >= 0.8, way
