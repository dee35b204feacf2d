"""Printed commands keep the launch's settings (faults round four, 3): the sweep's closing
`report:` line and the report's `next:` lines carry the launch's overrides and store, quoted for
the shell, and run as printed; a relaunch on other data says so before it starts."""
from __future__ import annotations

import logging
import shlex

import pytest

from recsys_scaling.cli import main
from recsys_scaling.sweep.launch import Launch

from conftest import sweep_counts

FAST = ["data=synthetic_small", "train.max_epochs=1", "model.hidden=16", "diagnostics.enabled=false"]


def _printed(out: str, prefix: str) -> list:
    return [line.split(prefix, 1)[1].strip() for line in out.splitlines() if prefix in line]


@pytest.mark.integration
def test_printed_commands_carry_the_overrides_and_the_store(tmp_path, workdir, capsys, caplog):
    store = f"sqlite:///{tmp_path / 'elsewhere' / 'runs.db'}"
    (tmp_path / "elsewhere").mkdir()
    assert main(["sweep", "smoke", *FAST, "seed=0,1", f"tracking.uri={store}", "tracking.experiment=mine"]) == 0
    out = capsys.readouterr().out
    assert sweep_counts(out) == {"finished": 4, "skipped": 0, "failed": 0}
    (report,) = _printed(out, "report:  ")
    assert report == f"recsys-scaling report smoke --tracking-uri {store} --experiment mine"
    assert main(shlex.split(report)[1:]) == 0, "the printed report command reads this sweep's store"
    out = capsys.readouterr().out
    nexts = _printed(out, "next: ")
    assert nexts, out
    step = nexts[0]
    if "no practical way" in step:  # too many seeds: what else would decide it, in this store, with numbers
        assert f"recsys-scaling report smoke --tracking-uri {store} --experiment mine --margin " in step
        command = step.split("then run 10 seeds per cell (", 1)[1].split(") and read them with", 1)[0]
    else:
        command = step.split("would decide every open claim: ", 1)[1].split("   or   ")[0]
    words = shlex.split(command)
    assert words[:3] == ["recsys-scaling", "sweep", "smoke"]
    assert {"data=synthetic_small", "model.hidden=16", f"tracking.uri={store}", "tracking.experiment=mine"} <= set(words)
    assert any(w.startswith("seed=range(0,") for w in words) and "seed=0,1" not in words
    # as printed (its seeds: the two already run): every job is found finished, so the command
    # trains on the same data in the same store
    seeds = [w for w in words if w.startswith("seed=")]
    assert main([*(w if w not in seeds else "seed=0,1" for w in words[1:])]) == 0
    assert sweep_counts(capsys.readouterr().out) == {"finished": 0, "skipped": 4, "failed": 0}
    # a relaunch on other data under the same name says so before it starts
    caplog.set_level(logging.WARNING)
    assert main(["sweep", "smoke", *FAST, "seed=0", "data.synthetic.rows=3000", f"tracking.uri={store}",
                 "tracking.experiment=mine"]) == 0
    said = [line for line in (capsys.readouterr().err + caplog.text).splitlines() if "trains on other data" in line]
    assert said and "reports show its runs as a series of their own" in said[0]


def test_a_launch_without_settings_prints_the_plain_commands():
    launch = Launch(["data=csv", "data.path=/my data/clicks.csv", "seed=0,1", "sweep.resume=false"])
    assert launch.sweep_command("mine", extra=["seed=5"]) == \
        "recsys-scaling sweep mine data=csv 'data.path=/my data/clicks.csv' seed=5"
    assert launch.report_command("mine") == "recsys-scaling report mine"
