"""The metrics a report can read: test AUC (higher is better), logloss and normalized entropy
(lower is better). Claims always read "better" as positive, fits always fit an error (lower is
better), and margins are in the metric's own units."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Metric:
    name: str
    column: str  # the runs table's column
    higher_is_better: bool
    label: str  # how values are named in texts and plots
    margin: float  # the default practical margin, in the metric's units
    error_label: str  # what its fits fit

    def score(self, values) -> np.ndarray:
        """Oriented so that larger is better (claims' sign)."""
        values = np.asarray(values, dtype=float)
        return values if self.higher_is_better else -values

    def error(self, values) -> np.ndarray:
        """Oriented so that smaller is better (fits' error): 1 − AUC, logloss, NE."""
        values = np.asarray(values, dtype=float)
        return 1.0 - values if self.higher_is_better else values

    @property
    def gain(self) -> str:
        """What a positive claim value is: AUC gained, or logloss reduced."""
        return self.label if self.higher_is_better else f"{self.label} reduction"


METRICS = {
    "auc": Metric("auc", "test_auc", True, "AUC", 0.0005, "1 − AUC"),
    "logloss": Metric("logloss", "test_logloss", False, "logloss", 0.0005, "logloss"),
    "ne": Metric("ne", "test_ne", False, "NE", 0.001, "NE"),
}


def metric_named(name: str) -> Metric:
    if name not in METRICS:
        raise ValueError(f"--metric {name!r}: choose from {', '.join(METRICS)}")
    return METRICS[name]


# --x: the size axes (a curve per arm along the model's scale) and the data and compute axes.
X_AXES = {"total": "params_total", "embedding": "params_embedding", "dense": "params_dense",
          "flops": "flops_per_example", "data": "train_rows", "compute": "train_flops"}
X_LABELS = {"total": "total parameters", "embedding": "embedding parameters", "dense": "dense parameters",
            "flops": "FLOPs per example", "data": "training rows", "compute": "training FLOPs"}
