"""What the MLflow UI shows of the tool's runs: the experiment's description, the saved
"scaling" view of its runs table, and the addresses the tool prints."""
from __future__ import annotations

import json
import os
from typing import Optional

ROLE_TAG = "recsys_scaling.role"
NOTE_TAG = "mlflow.note.content"  # the description MLflow's UI shows for an experiment or a run
DEFAULT_UI_PORT = 5000
VIEW_KEY = "scaling"
# A saved view of the runs table (MLflow's saved-view state, kept as an experiment tag): the job
# runs of every sweep as one flat table, with the columns to read a scaling grid by.
SCALING_VIEW = {
    "searchFilter": f"tags.`{ROLE_TAG}` = 'job'",
    # MLflow shows metrics, then params, then tags, whatever this order: two metrics keep the test
    # AUC on a 1400 px screen beside the run name (backbone-arm-scale-seed); sizes are params.
    "selectedColumns": ["tags.`backbone`", "tags.`arm`", "tags.`scale`", "tags.`seed`", "tags.`sweep`",
                        "params.`resolved.num_embeddings`", "params.`resolved.embed_dim`",
                        "params.`resolved.params_total`", "metrics.`test_auc`", "metrics.`ia_mean`"],
    "orderByKey": "tags.`backbone`",
    "orderByAsc": True,
}
EXPERIMENT_NOTE = """\
SE-vs-ME scaling sweeps recorded by recsys-scaling.

* Each sweep is a parent run `sweep-<name>` (its description holds the verdicts once
  `recsys-scaling report <name>` has run); its jobs are child runs named
  `<backbone>-<arm>-<scale>x-s<seed>`.
* Read them by backbone, arm and scale: pick the saved view "scaling" under Views (the address
  `recsys-scaling ui` prints opens it): every job run in one table with those columns.
* `tags.arm`: se = one embedding set of size scale*d0; me = `scale` sets of size d0.
"""


def ui_base_url(store_uri: str) -> str:
    """Where the MLflow UI for a store is: the server itself for an http(s) store, else
    $RECSYS_SCALING_UI_URL, else the address `recsys-scaling ui` serves by default."""
    if store_uri.startswith(("http://", "https://")):
        return store_uri.rstrip("/")
    return os.environ.get("RECSYS_SCALING_UI_URL", f"http://127.0.0.1:{DEFAULT_UI_PORT}").rstrip("/")


def experiment_url(ui_url: str, experiment_id: str) -> str:
    """The experiment's runs table in the machine-learning view, with the saved scaling view."""
    return (f"{ui_url.rstrip('/')}/#/experiments/{experiment_id}/runs"
            f"?viewStateShareKey={VIEW_KEY}&workflowType=machine_learning")


def run_url(ui_url: str, experiment_id: str, run_id: str) -> str:
    return f"{ui_url.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"


VIEW_TAG = f"mlflow.sharedViewState.{VIEW_KEY}"
# MLflow 3's saved-view envelope: listed under "Views" in the runs table, opened by the share key.
VIEW_VALUE = json.dumps({"name": "scaling: jobs by backbone / arm / scale", "createdAt": 1764374400000,
                         "updatedAt": 1764374400000, "state": json.dumps(SCALING_VIEW)})


def view_state(value: Optional[str]) -> dict:
    """The state inside a stored saved-view value ({} for a missing or foreign one)."""
    try:
        return dict(json.loads(json.loads(value)["state"]))
    except (TypeError, ValueError, KeyError):
        return {}




