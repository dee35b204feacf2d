"""The console stays short: verdict lines of at most 120 characters (the report page has them in
full), the launcher's per-job lines and INFO out of the default console."""
from __future__ import annotations

import subprocess

import pytest

from recsys_scaling.report.claims import Claim
from recsys_scaling.report.headlines import HEADLINE_WIDTH, clip, headline


def claim(kind, verdict, estimate=0.0123, **kw):
    return Claim(kind=kind, arm=kw.pop("arm", None), scale=kw.pop("scale", None), estimate=estimate, low=-0.01,
                 high=0.03, n_me=3, n_se=3, method="welch", verdict=verdict, **kw)


def test_a_verdict_line_is_short_and_says_how_many_claims_only_the_report_shows():
    claims = [claim("scaling_gap", "me_scales_better"), claim("gap", "undecided", scale=4),
              claim("top_trend", "saturated", arm="se"), claim("top_trend", "improving", arm="me"),
              claim("ia_gap", "insufficient_seeds", scale=4)]
    line = headline("dcnv2 @ data 1a2b3c4d", claims)
    assert len(line) <= HEADLINE_WIDTH, line
    assert line.startswith("dcnv2 @ data 1a2b3c4d: ME vs SE scaling rate: ME better +0.0123; ME vs SE at 4x: undecided")
    assert line.endswith("in the report)")
    assert headline("dnn", claims[:1]) == "dnn: ME vs SE scaling rate: ME better +0.0123"
    pair = claim("series_scaling_gap", "a_scales_better", names=("mine", "dnn"))
    assert headline("mine vs dnn", [pair]) == "mine vs dnn: mine vs dnn scaling rate: mine better +0.0123"
    assert len(headline("x" * 300, claims)) <= HEADLINE_WIDTH
    assert clip("y" * 200).endswith("…") and len(clip("y" * 200)) == HEADLINE_WIDTH


@pytest.mark.integration
def test_a_sweep_console_is_progress_and_the_table_and_v_brings_the_rest(workdir):
    from test_faults import CLI, TINY, env_for

    sweep = [*CLI, "sweep", "smoke", "data=synthetic_small", *TINY]
    quiet = subprocess.run(sweep, cwd=workdir, env=env_for(workdir), capture_output=True, text=True, timeout=300)
    assert quiet.returncode == 0, quiet.stderr[-3000:]
    lines = [line for line in quiet.stderr.splitlines() if line.strip()]
    assert lines and all(line.startswith("sweep smoke: ") for line in lines), lines  # progress, as itself
    assert len(lines) == 3, "the 'to run' line and one per job"
    assert "job 2/2 finished: " in lines[-1]
    assert "sweep smoke: done" in quiet.stdout
    job_logs = list((workdir / "multirun" / "smoke").glob("*/*/app.log"))
    assert len(job_logs) == 2 and "test AUC" in job_logs[0].read_text(), "INFO is in the jobs' log files"
    loud = subprocess.run([*sweep, "--force", "-v"], cwd=workdir, env=env_for(workdir), capture_output=True,
                          text=True, timeout=300)
    assert loud.returncode == 0 and "#0 : " in loud.stderr and "recsys_scaling.train: epoch 0" in loud.stderr
