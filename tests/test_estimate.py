"""Estimates before a sweep runs: the arithmetic of the totals, and estimates that order real
jobs as their measured training times do (what does not depend on this machine's speed, or on
how busy it is; the accuracy in seconds is a benchmark: benchmarks/bench_estimates.py)."""
from __future__ import annotations

import json

import pytest
from scipy import stats

from recsys_scaling import tracking
from recsys_scaling.cli import main
from recsys_scaling.sweep.estimate import JobEstimate, SweepEstimate, makespan, memory_text


def test_makespan_packs_the_longest_first():
    assert makespan([4, 4, 4, 4], 2) == 8
    assert makespan([4, 4, 4, 4], 3) == 8
    assert makespan([10, 1, 1, 1], 2) == 10
    assert makespan([5, 4, 3, 3, 3], 1) == 18
    assert makespan([], 4) == 0


def test_a_calibration_cached_by_another_version_is_measured_again(tmp_path):
    from recsys_scaling.sweep.calibration import Calibration

    first = Calibration(2, "cpu", measure=False, folder=tmp_path)
    rate = first.machine().matmul_flops_per_second
    cached = json.loads(first.path.read_text())
    cached["machine_uncalibrated"] = {"job_overhead_seconds": 1.0, "a_field_of_another_version": 2.0}
    first.path.write_text(json.dumps(cached))
    again = Calibration(2, "cpu", measure=False, folder=tmp_path).machine()
    assert again.matmul_flops_per_second > 0 and again.matmul_flops_per_second != rate
    assert "a_field_of_another_version" not in json.loads(first.path.read_text())["machine_uncalibrated"]


def test_the_footer_says_the_wall_time_under_the_launcher():
    jobs = [JobEstimate(f"j{i}", 60.0, 2**30, 3) for i in range(4)]
    estimate = SweepEstimate(jobs, parallel=2, launcher="joblib ×2", worker_start=3.0, calibrated=True,
                             where="2 cores")
    assert estimate.compute == 240 and estimate.wall == 120 + 3
    assert estimate.footer() == ("4 jobs · estimated 2:03 on 2 cores (joblib ×2); 4:00 of compute; each job at most "
                                 "3 epochs (early stopping can end it sooner)")
    one = SweepEstimate(jobs[:1], parallel=1, launcher="one job at a time", worker_start=0.0, calibrated=False,
                        where="2 cores")
    assert one.wall == 60 and "from FLOPs, not calibrated" in one.footer()
    unknown = SweepEstimate([JobEstimate("j", None, None, 1)], 1, "one job at a time", 0.0, True, "2 cores")
    assert "time unknown until the data is prepared" in unknown.footer()
    assert memory_text(3 * 2**29) == "1.5 GiB" and memory_text(5 * 2**20) == "5 MiB" and memory_text(None) == "-"


# Costs far apart (dcnv2's cross weights grow as (F·d)²: a step at 1x, 3x, 6x and 10x takes about
# 1 : 2.4 : 6 : 14 here), so that a busy machine does not swap their order (timings are noisy;
# ranks this far apart are not).
GRID = ["model=dcnv2", "scale=1,3,6,10", "arm=se", "data=synthetic", "data.synthetic.rows=20000",
        "train.max_epochs=1", "train.progress=false", "hydra/launcher=basic"]


@pytest.mark.integration
def test_estimates_order_the_jobs_as_their_measured_times_do(workdir, store_uri, capsys):
    assert main(["sweep", "smoke", *GRID, f"tracking.uri={store_uri}", "--plan"]) == 0
    plan = capsys.readouterr().out
    assert "plan: 4 jobs · estimated " in plan and not (workdir / "mlflow.db").exists()
    assert main(["sweep", "smoke", *GRID, f"tracking.uri={store_uri}"]) == 0
    out = capsys.readouterr().out
    assert out.index("plan: 4 jobs") < out.index("finished") and "  estimated " in out
    store = tracking.Store(store_uri)
    parent = store.latest_sweep_parent("smoke").info.run_id
    jobs = store.run_json(parent, "estimate.json")["jobs"]
    runs = {r.info.run_name: r for r in store.child_runs(parent)}
    names = sorted(runs)
    # the training steps: what the calibration times, and what each run logs (train_seconds)
    estimated = {j["job"]: j["train_seconds"] for j in jobs}
    measured = {n: r.data.metrics["train_seconds"] for n, r in runs.items()}
    rho = stats.spearmanr([estimated[n] for n in names], [measured[n] for n in names]).statistic
    whole_estimates = {j["job"]: j["seconds"] for j in jobs}
    whole = stats.spearmanr([whole_estimates[n] for n in names],
                            [(runs[n].info.end_time - runs[n].info.start_time) / 1000 for n in names]).statistic
    print(f"\n[estimate] rank correlation of estimated and measured training times: {rho:.2f} (whole jobs: "
          f"{whole:.2f}); estimated {sum(estimated.values()):.1f} s of training, measured {sum(measured.values()):.1f} s")
    assert rho >= 0.7, (estimated, measured)
    assert main(["report", "smoke", "--tracking-uri", store_uri, "--resamples", "20"]) == 0
    times = json.loads((workdir / "reports" / "smoke" / "fits.json").read_text())["time"][parent]
    assert times["estimated_seconds"] > 0 and times["actual_seconds"] > 0
