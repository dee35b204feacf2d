"""Runs the collapse diagnostics on a trained model's embedding sets and logs them."""
from __future__ import annotations

import json
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Dict, List

import numpy as np

from . import diagnostics
from .data import EncodedData


class CollapseProbe:
    """Picks each field's most frequent values once; measures the embedding table on demand."""

    def __init__(self, data: EncodedData, max_rows: int):
        counts = diagnostics.value_counts(data.X, data.splits["train"], data.field_dims)
        self.rows = diagnostics.most_frequent_rows(counts, max_rows)
        self.field_names, self.field_dims = data.field_names, data.field_dims

    def measure(self, embedding) -> List[diagnostics.FieldDiagnostics]:
        table = embedding.table.weight.detach().cpu().numpy()
        return diagnostics.embedding_diagnostics(table, embedding.num_sets, self.field_names,
                                                 self.field_dims, self.rows)

    def metrics(self, embedding) -> Dict[str, float]:
        return diagnostics.summary_metrics(self.measure(embedding))

    def log_final(self, embedding, run, title: str) -> Dict[str, float]:
        fields = self.measure(embedding)
        metrics = diagnostics.summary_metrics(fields)
        run.log_metrics(metrics)
        payload = {"summary": metrics, "fields": [asdict(f) for f in fields],
                   "max_rows_per_field": int(max(len(r) for r in self.rows)),
                   "note": "ia_effective = IA of the K sets concatenated; spectra of that table"}
        run.log_dict(json.loads(json.dumps(payload, default=_plain)), "diagnostics/collapse.json")
        with tempfile.TemporaryDirectory() as tmp:
            for path in diagnostics.plot_diagnostics(fields, Path(tmp), title):
                run.log_artifact(path, "diagnostics")
        return metrics


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(type(value))
