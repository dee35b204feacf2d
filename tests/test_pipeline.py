"""End to end through the real components: Hydra app, MLflow sqlite store, multirun, report."""
from __future__ import annotations

import pytest

import json
import logging

import pandas as pd
from mlflow.tracking import MlflowClient

from recsys_scaling import tracking
from recsys_scaling.cli import main

from conftest import ROOT, sweep_counts

TINY = ["data=synthetic_small", "train.max_epochs=3", "train.progress=false"]


def only_run(uri: str, **tags):
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("recsys-scaling")
    filters = " and ".join(f"tags.{k} = '{v}'" for k, v in tags.items())
    return client.search_runs([experiment.experiment_id], filter_string=filters)


@pytest.mark.integration
def test_train_run_is_tracked_completely(store_uri):
    assert main(["train", *TINY, "model=dcnv2", "arm=me", "scale=2", "seed=3", f"tracking.uri={store_uri}"]) == 0
    runs = only_run(store_uri, backbone="dcnv2")
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "dcnv2-me-2x-s3"
    assert {k: run.data.tags[k] for k in ("backbone", "arm", "scale", "num_embeddings", "embed_dim", "seed",
                                           "sweep")} == {"backbone": "dcnv2", "arm": "me", "scale": "2",
                                                         "num_embeddings": "2", "embed_dim": "10",
                                                         "seed": "3", "sweep": "adhoc"}
    params = run.data.params
    assert params["model.backbone"] == "dcnv2" and params["train.lr"] == "0.001"
    assert params["data.synthetic.rows"] == "20000"
    metrics = run.data.metrics
    assert metrics["test_auc"] > 0.6, "the planted signal must be learnable"
    assert 0 < metrics["test_logloss"] < 0.69
    assert metrics["params_total"] == metrics["params_embedding"] + metrics["params_dense"]
    assert metrics["params_embedding"] == (3 + 4 + 8 + 20 + 50 + 200 + 1000 + 3000) * 2 * 10
    client = MlflowClient(store_uri)
    history = client.get_metric_history(run.info.run_id, "valid_auc")
    assert [m.step for m in history] == list(range(int(metrics["epochs_run"])))
    assert len(client.get_metric_history(run.info.run_id, "train_logloss")) == len(history)
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert "config.yaml" in artifacts
    assert 1.0 <= metrics["ia_set_mean"] <= 10.0 and 1.0 <= metrics["ia_mean"] <= 20.0
    assert 0.0 < metrics["principal_angle_mean_deg"] <= 90.0
    diagnostics = {a.path for a in client.list_artifacts(run.info.run_id, "diagnostics")}
    assert diagnostics == {"diagnostics/collapse.json", "diagnostics/ia_per_field.png", "diagnostics/spectra.png"}


@pytest.mark.integration
def test_default_store_is_mlflow_db_in_the_working_directory(workdir):
    assert main(["train", *TINY, "train.max_epochs=1"]) == 0
    assert (workdir / "mlflow.db").is_file()
    assert len(only_run(f"sqlite:///{workdir / 'mlflow.db'}")) == 1


@pytest.mark.integration
def test_environment_variable_selects_the_store(workdir, monkeypatch):
    uri = f"sqlite:///{workdir / 'elsewhere.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    assert main(["train", *TINY, "train.max_epochs=1"]) == 0
    assert not (workdir / "mlflow.db").exists()
    assert len(only_run(uri)) == 1


@pytest.mark.integration
def test_same_seed_same_result(store_uri):
    for _ in range(2):
        assert main(["train", *TINY, "train.max_epochs=1", "seed=5", f"tracking.uri={store_uri}"]) == 0
    a, b = only_run(store_uri, seed="5")
    assert a.data.metrics["test_auc"] == b.data.metrics["test_auc"]


@pytest.mark.integration
def test_failing_training_marks_the_run_failed(store_uri):
    assert main(["train", *TINY, "train.lr=1e30", "train.max_epochs=2", f"tracking.uri={store_uri}",
                 "model=dcnv2", "scale=4"]) == 1
    (run,) = only_run(store_uri)
    assert run.info.status == "FAILED"
    assert "NonFiniteLossError" in run.data.tags["error"]


@pytest.mark.integration
def test_sweep_then_report(store_uri, workdir, capsys, caplog):
    caplog.set_level(logging.INFO)
    code = main(["sweep", "smoke", f"tracking.uri={store_uri}", "data=synthetic_small", "train.max_epochs=3"])
    out, err = capsys.readouterr()
    assert code == 0
    assert sweep_counts(out) == {"finished": 2, "skipped": 0, "failed": 0}
    assert "slowest job" in out and "total time" in out and "recsys-scaling report smoke" in out
    # Hydra's job logging takes the log over in-process: the progress lines are on stderr
    progress = [line for line in (err + caplog.text).splitlines() if "sweep smoke: job " in line and "ETA" in line]
    assert "ETA" not in out
    assert [line.split("sweep smoke: job ")[1].split(" ")[0] for line in progress] == ["1/2", "2/2"], err[-3000:]
    store = tracking.Store(store_uri)
    parent = store.latest_sweep_parent("smoke")
    assert parent.info.status == "FINISHED"
    children = store.child_runs(parent.info.run_id)
    assert sorted(r.info.run_name for r in children) == ["dnn-me-2x-s0", "dnn-se-2x-s0"]
    assert all(r.data.tags["sweep"] == "smoke" for r in children)
    # MLflow: the resolved shape and counts are params; the parent has the grid, a description, a source
    me = next(r for r in children if r.info.run_name == "dnn-me-2x-s0")
    assert (me.data.params["resolved.num_embeddings"], me.data.params["resolved.embed_dim"]) == ("2", "10")
    assert int(me.data.params["resolved.params_total"]) == int(me.data.metrics["params_total"])
    assert {k: parent.data.params[k] for k in ("model", "scale", "arm")} == {"model": "dnn", "scale": "2",
                                                                               "arm": "se,me"}
    assert parent.data.params["train.max_epochs"] == "3"
    assert parent.data.tags["mlflow.source.name"].startswith("recsys-scaling sweep")
    assert "2 jobs" in parent.data.tags["mlflow.note.content"]
    experiment = store.client.get_experiment(store.experiment_id)
    assert "sweep-<name>" in experiment.tags["mlflow.note.content"]
    view = json.loads(json.loads(experiment.tags["mlflow.sharedViewState.scaling"])["state"])
    assert "metrics.`test_auc`" in view["selectedColumns"] and "tags.`backbone`" in view["selectedColumns"]
    assert view["searchFilter"] == "tags.`recsys_scaling.role` = 'job'"
    runs_url = f"http://127.0.0.1:5000/#/experiments/{store.experiment_id}/runs?viewStateShareKey=scaling&" \
               "workflowType=machine_learning"
    assert runs_url in out

    assert main(["report", "smoke", "--tracking-uri", store_uri]) == 0
    out = capsys.readouterr().out
    report_dir = workdir / "reports" / "smoke"
    assert str(report_dir / "index.html") in out and runs_url in out
    note = store.client.get_run(parent.info.run_id).data.tags["mlflow.note.content"]
    assert str(report_dir / "index.html") in note and "| backbone | ME − SE at the largest scale | ME vs SE scaling rate" in note and "| dnn |" in note
    page = (report_dir / "index.html").read_text()
    assert page.index('<table class="v">') < page.index("<img")  # the verdict table comes first
    assert f"#/experiments/{store.experiment_id}/runs/{parent.info.run_id}" in page
    fits = json.loads((report_dir / "fits.json").read_text())
    assert [b["backbone"] for b in fits["backbones"]] == ["dnn"] and fits["missing_jobs"] == []
    assert "dnn:" in fits["backbones"][0]["verdict"]
    assert {p.name for p in report_dir.glob("*.svg")} >= {"scaling_grid.svg", "scaling_dnn.svg", "spectra.svg"}
    assert len(pd.read_parquet(report_dir / "runs.parquet")) == 2
    png = (report_dir / "auc_vs_params.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    summary = pd.read_csv(report_dir / "summary.csv")
    assert sorted(zip(summary["backbone"], summary["arm"], summary["scale"])) == [("dnn", "me", 2), ("dnn", "se", 2)]
    assert (summary["test_auc_mean"] > 0.55).all()
    assert (summary["ia_mean"] > 1.0).all()
    assert (report_dir / "ia_vs_scale.png").is_file()
    runs = pd.read_csv(report_dir / "runs.csv")
    assert len(runs) == 2 and set(runs["status"]) == {"FINISHED"}
    assert "dnn-se-2x-s0" in (report_dir / "index.html").read_text()
    logged = {a.path for a in MlflowClient(store_uri).list_artifacts(parent.info.run_id, "report")}
    assert "report/auc_vs_params.png" in logged and "report/index.html" in logged


@pytest.mark.integration
def test_shared_base_claims_and_verdict_table(store_uri, workdir, capsys):
    """ME 1x is the SE base: trained once; the report's claims come with calibrated intervals."""
    code = main(["sweep", "smoke", f"tracking.uri={store_uri}", "data=synthetic_small", "scale=1,2",
                 "seed=0,1,2", "train.max_epochs=1"])
    out = capsys.readouterr().out
    assert code == 0 and "(9 jobs," in out and sweep_counts(out)["finished"] == 9
    parent = tracking.Store(store_uri).latest_sweep_parent("smoke")
    names = sorted(r.info.run_name for r in tracking.Store(store_uri).child_runs(parent.info.run_id))
    assert not [n for n in names if n.startswith("dnn-me-1x")] and len(names) == 9
    assert main(["report", "smoke", "--tracking-uri", store_uri, "--resamples", "50", "--pairing", "seed",
                 "--family", "report"]) == 0
    fits = json.loads((workdir / "reports" / "smoke" / "fits.json").read_text())
    assert fits["missing_jobs"] == [] and fits["margin"] == 0.0005 and fits["sequential"] is False
    assert {k: fits["claims_method"][k] for k in ("pairing", "family", "correction", "level")} == {
        "pairing": "seed", "family": "report", "correction": "holm", "level": 0.95}
    gap = next(c for c in fits["claims"] if c["kind"] == "gap")
    assert gap["scale"] == 2 and gap["n_me"] == 3 and gap["n_se"] == 3 and gap["low"] < gap["high"]
    assert gap["method"].startswith("paired") and "Holm over" in gap["method"] and gap["family"] == "report"
    assert gap["verdict"] in {"me_ahead", "me_behind", "equivalent", "undecided"}
    if gap["verdict"] == "undecided":
        assert gap["seeds_needed"] >= 4
    scaling = next(c for c in fits["claims"] if c["kind"] == "scaling_gap")
    assert sorted(map(tuple, scaling["cells"])) == [("me", 2), ("se", 1), ("se", 2)]
    me_fit = fits["backbones"][0]["fits"]["auc"]["me"]
    se_fit = fits["backbones"][0]["fits"]["auc"]["se"]
    assert me_fit["sizes"][0] == se_fit["sizes"][0] and me_fit["means"][0] == se_fit["means"][0]
    page = (workdir / "reports" / "smoke" / "index.html").read_text()
    assert page.index('<table class="v">') < page.index("<h2>")  # the verdict table comes first
    assert "decided together over every claim of this report (Holm" in page  # the family, in words


@pytest.mark.integration
def test_sweep_with_a_failing_job_goes_on_and_reports_it(store_uri, workdir, capsys):
    # the second job's learning rate makes its loss NaN
    code = main(["sweep", "smoke", f"tracking.uri={store_uri}", "data=synthetic_small",
                 "arm=se", "train.lr=0.001,1e30", "train.max_epochs=2"])
    out = capsys.readouterr().out
    assert code == 1
    assert "failed" in out
    parent = tracking.Store(store_uri).latest_sweep_parent("smoke")
    assert parent.info.status == "FAILED"
    statuses = [r.info.status for r in tracking.Store(store_uri).child_runs(parent.info.run_id)]
    assert sorted(statuses) == ["FAILED", "FINISHED"]
    assert main(["report", "smoke", "--tracking-uri", store_uri]) == 0
    page = (workdir / "reports" / "smoke" / "index.html").read_text()
    assert "Jobs not finished (1)" in page and "NonFiniteLossError" in page


def test_unknown_sweep_is_a_clear_error(workdir, capsys):
    assert main(["sweep", "no_such_sweep"]) == 2
    err = capsys.readouterr().err
    assert "no_such_sweep" in err and "demo" in err


def test_report_of_unknown_sweep_is_a_clear_error(store_uri, workdir, capsys):
    assert main(["report", "nothing", "--tracking-uri", store_uri]) == 2
    assert "no such sqlite file" in capsys.readouterr().err
    assert not (workdir / "mlflow.db").exists()  # reading a store never creates one
    tracking.Store(store_uri).experiment_id
    assert main(["report", "nothing", "--tracking-uri", store_uri]) == 2
    assert "no sweep named 'nothing'" in capsys.readouterr().err


@pytest.mark.integration
def test_notebook_runs_against_a_tiny_sweep(store_uri, workdir, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    assert main(["sweep", "smoke", f"tracking.uri={store_uri}", "data=synthetic_small", "train.max_epochs=1",
                 "scale=1,2,4", "arm=se"]) == 0
    monkeypatch.setenv("SWEEP", "smoke")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store_uri)
    monkeypatch.setenv("RESAMPLES", "50")
    notebook = nbformat.read(ROOT / "notebooks" / "scaling_report.ipynb", as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(workdir)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "3 runs, 3 finished" in text and "dnn:" in text
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 2


def test_train_help_lists_the_config_groups(capsys):
    assert main(["train", "--help"]) == 0
    out = capsys.readouterr().out
    assert "model: custom, dcnv2, dnn*, finalmlp, hetero_moe, ipnn" in out and "tracking: local*, server" in out
    assert "schema" not in out and "train.max_epochs=100" in out
    assert len(out.splitlines()) < 30
