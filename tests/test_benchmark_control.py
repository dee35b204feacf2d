"""The embedded benchmark's negative control (test_getting_started.py has the positive one): the
control's report makes no ME-ahead/behind claim on AUC. A file of its own, so that the two
minutes-long controls run on different test workers (`--dist loadfile`)."""
from __future__ import annotations

import pytest

from recsys_scaling.cli import main

from test_getting_started import GRID, report_claims


@pytest.mark.slow
def test_control_makes_no_auc_claim(store_uri, workdir):
    assert main(["sweep", "control", f"tracking.uri={store_uri}", *GRID]) == 0
    claims = report_claims("control", store_uri, workdir)
    gaps = [c for c in claims if c["kind"] == "gap"]
    assert gaps and all(c["verdict"] in {"undecided", "equivalent", "insufficient_seeds"} for c in gaps), gaps
