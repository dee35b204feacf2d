"""Adaptive seeds: `sweep --until-decided` adds seeds only where claims are undecided, with
sequential intervals, through real sweeps into a real store."""
from __future__ import annotations

import json

import pytest

from recsys_scaling import tracking
from recsys_scaling.cli import main
from recsys_scaling.report.analysis import analyse
from recsys_scaling.report.collect import collect_runs
from recsys_scaling.sweep.adaptive import undecided_cells

GRID = ["data=synthetic_small", "scale=1,2", "seed=0,1,2", "train.max_epochs=1", "diagnostics.enabled=false",
        "model.hidden=16"]


def sweep_parents(store: tracking.Store, name: str):
    runs = store.client.search_runs([store.experiment_id], filter_string=f"tags.sweep = '{name}' and "
                                    f"tags.`{tracking.ROLE_TAG}` = 'sweep'", order_by=["attributes.start_time ASC"])
    return [r.info.run_id for r in runs]


def test_undecided_cells_are_the_cells_of_undecided_claims():
    class Claim:
        def __init__(self, decided, cells):
            self.decided, self.cells = decided, cells

    claims = [("dnn", [Claim(True, (("me", 2), ("se", 2))), Claim(False, (("se", 1), ("se", 2)))]),
              ("dcnv2", [Claim(False, (("me", 4),))])]
    assert undecided_cells(claims) == {("dnn", "se", 1), ("dnn", "se", 2), ("dcnv2", "me", 4)}


@pytest.mark.integration
def test_until_decided_adds_seeds_only_behind_undecided_claims(store_uri, workdir, capsys):
    code = main(["sweep", "smoke", f"tracking.uri={store_uri}", *GRID, "--until-decided", "--max-seeds", "4",
                 "--margin", "0.002"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "sequential intervals planned up to 4 seeds per cell" in out and "round  seeds/cell" in out
    store = tracking.Store(store_uri)
    parents = sweep_parents(store, "smoke")
    assert 1 <= len(parents) <= 2  # round 0, and round 1 unless round 0 decided everything
    settings = store.sweep_settings(parents[0])
    assert settings["max_seeds"] == 4 and settings["margin"] == 0.002
    runs, _ = collect_runs(store, [parents[0]])
    round0 = analyse(runs, resamples=1, fit=False, sequential=True, max_seeds=4, margin=0.002)
    undecided = undecided_cells([(r.backbone, r.claims) for r in round0])
    if len(parents) == 2:
        added = store.child_runs(parents[1])
        assert added and all(r.data.tags["seed"] == "3" for r in added)
        assert {(r.data.tags["backbone"], r.data.tags["arm"], int(r.data.tags["scale"])) for r in added} <= undecided
    else:
        assert not undecided
    fits = json.loads((workdir / "reports" / "smoke" / "fits.json").read_text())
    assert fits["sequential"] is True and fits["max_seeds"] == 4 and fits["margin"] == 0.002
    look = fits["claims_method"]["look"]  # 2 looks (3 and 4 seeds), spending α·(k/2)²: 1/4 of α, then 3/4
    assert look == len(parents) and all(c["level"] == pytest.approx(1 - 0.05 * (2 * look - 1) / 4)
                                        for c in fits["claims"])
    page = (workdir / "reports" / "smoke" / "index.html").read_text()
    assert "Sequential intervals" in page
    # the same command again: every job finished before, nothing is trained, the same rounds
    assert main(["sweep", "smoke", f"tracking.uri={store_uri}", *GRID, "--until-decided", "--max-seeds", "4",
                 "--margin", "0.002"]) == 0
    again = capsys.readouterr().out
    rows = [line.split() for line in again.splitlines() if line.strip()[:1].isdigit() and len(line.split()) == 7]
    assert rows and all(row[3] == "0" for row in rows), again  # jobs run: 0 in every round
    # The plan is the sweep's: an ordinary relaunch keeps its report sequential ...
    assert main(["sweep", "smoke", f"tracking.uri={store_uri}", *GRID]) == 0
    assert main(["report", "smoke", "--tracking-uri", store_uri, "--resamples", "20"]) == 0
    fits = json.loads((workdir / "reports" / "smoke" / "fits.json").read_text())
    assert fits["sequential"] is True and fits["max_seeds"] == 4
    # ... and neither a larger plan nor a report over fewer looks may spend its 5% again
    launched = len(sweep_parents(store, "smoke"))
    capsys.readouterr()
    assert main(["sweep", "smoke", f"tracking.uri={store_uri}", *GRID, "--until-decided", "--max-seeds", "6",
                 "--margin", "0.002"]) == 2
    assert "planned its sequential intervals up to 4 seeds per cell" in capsys.readouterr().err
    assert len(sweep_parents(store, "smoke")) == launched
    assert main(["report", "smoke", "--tracking-uri", store_uri, "--max-seeds", "3"]) == 2
    assert "planned up to 4 per cell" in capsys.readouterr().err
    # reading it at a fixed level after its adaptive looks says what that gives up
    assert main(["report", "smoke", "--tracking-uri", store_uri, "--resamples", "20", "--no-sequential"]) == 0
    if len(parents) == 2:  # the adaptive looks were on other data (3 seeds, then 4 somewhere)
        notes = json.loads((workdir / "reports" / "smoke" / "fits.json").read_text())["notes"]
        assert any("--no-sequential after 1 adaptive look gives up the plan's guarantee" in n for n in notes), notes
    # a smaller --max-seeds stops sooner under the same plan
    assert main(["sweep", "smoke", f"tracking.uri={store_uri}", *GRID, "--until-decided", "--max-seeds", "3",
                 "--margin", "0.002"]) == 0
    out = capsys.readouterr().out
    assert "stay planned for 4 seeds per cell" in out
    assert store.sweep_settings(sweep_parents(store, "smoke")[-1])["max_seeds"] == 4


def _runs(ids):
    import pandas as pd

    return pd.DataFrame({"run_id": ids, "status": "FINISHED"})


def test_every_look_at_a_sweep_is_recorded_and_counted(store_uri):
    """Looks live on the sweep's parent runs in the real store: the same data read twice is one
    look; a fixed look on other data before an adaptive plan, or adaptive looks before a fixed
    read, are said."""
    from recsys_scaling.report import looks

    store = tracking.Store(store_uri)
    parent = store.create_sweep_parent("mine", None, ["a"])
    three, four = _runs(["r1", "r2", "r3"]), _runs(["r1", "r2", "r3", "r4"])
    assert looks.look_notes(store, ["mine"], three, sequential=False) == []  # the first look: nothing to say
    looks.record(store, [parent], three, sequential=False, look=1)
    looks.record(store, [parent], three, sequential=False, look=1)  # read again: the same look
    assert list(store.looks_seen("mine").values()) == ["fixed"]
    assert looks.look_notes(store, ["mine"], three, sequential=False) == []
    again = looks.look_notes(store, ["mine"], four, sequential=False)  # seeds added, read again at 5%
    assert again and "up to 10% over the 2 looks" in again[0]
    planned = looks.look_notes(store, ["mine"], four, sequential=True)  # then an adaptive plan
    assert planned and "bounded by 10%, not 5%" in planned[0]
    other = store.create_sweep_parent("other", None, ["a"])
    looks.record(store, [other], three, sequential=True, look=1)
    assert store.looks_seen("other") == {looks.signature(three): "sequential@1"}
    assert "--no-sequential after 1 adaptive look" in looks.look_notes(store, ["other"], four, sequential=False)[0]
    twice = looks.look_notes(store, ["other"], four, sequential=True, look=1)  # look 1 again, on other data
    assert twice and "spent twice" in twice[0]
    assert looks.look_notes(store, ["other"], four, sequential=True, look=2) == []


def test_until_decided_refuses_a_plan_below_the_grid(workdir, capsys):
    assert main(["sweep", "smoke", "seed=0,1,2,3", "--until-decided", "--max-seeds", "3"]) == 2
    assert "already runs 4 seeds" in capsys.readouterr().err
    assert main(["sweep", "smoke", "--margin", "0.01"]) == 2
    assert not (workdir / "mlflow.db").exists()


def test_cells_with_more_seeds_than_the_plan_are_noted():
    import pandas as pd

    from recsys_scaling.report.build import ClaimOptions, beyond_plan_notes

    runs = pd.DataFrame({"series": "s", "backbone": "dnn", "arm": "se", "scale": 1, "seed": range(5),
                         "status": "FINISHED"})
    assert "5 seeds, more than the 4" in beyond_plan_notes(runs, ClaimOptions(sequential=True, max_seeds=4))[0]
    assert not beyond_plan_notes(runs, ClaimOptions(sequential=True, max_seeds=5))
    assert not beyond_plan_notes(runs, ClaimOptions(sequential=False, max_seeds=4))


def test_next_step_commands_keep_to_the_seed_plan():
    from recsys_scaling.report.render import seed_command

    fixed = seed_command("demo", 8)
    assert "recsys-scaling sweep demo 'seed=range(0,8)'" in fixed and "--until-decided --max-seeds 8" in fixed
    assert seed_command("demo", 5, seed_plan=6) == "recsys-scaling sweep demo --until-decided --max-seeds 6"
    beyond = seed_command("demo", 33, seed_plan=6)
    assert "beyond this sweep's plan of 6 seeds" in beyond
    assert "sweep demo --until-decided --max-seeds 33 tracking.experiment=demo-more seed=100,101,102" in beyond
    for seeds in (492, 1000):  # no command that asks for --yes: what else would decide it
        impractical = seed_command("demo", seeds)
        assert "seed=range" not in impractical and "no practical way to decide it" in impractical
        assert "recsys-scaling report demo --margin M" in impractical and "--pairing seed" in impractical
