"""How a sweep that varies both model size and training data is cut into curves.

Along a size axis (total, embedding, dense, flops) or training compute, each arm's curve runs
over the model's scale at one training-data fraction: a sweep with several fractions gives one
curve set per fraction (" @ 0.25 data"). Along the data axis each arm's curve runs over the
training fractions at one model scale (" @ 2x"), its cells placed at their training rows; no
cell is shared between the arms there (at 1x, SE and ME are one model, reported as SE).
"""
from __future__ import annotations

from typing import Tuple

import pandas as pd


def slices(done: pd.DataFrame, x_axis: str) -> Tuple[pd.DataFrame, bool]:
    """The runs with a `slice` column (the label suffix of the curves they belong to), their
    `scale` made the position along the axis; and whether the ME curve shares SE's 1x base."""
    fractions = done["train_fraction"] if "train_fraction" in done else pd.Series(1.0, index=done.index)
    if x_axis != "data":
        varied = fractions.groupby(done["series"]).transform("nunique") > 1
        cut = fractions.map(lambda f: " @ all data" if f == 1 else f" @ {f:g} data")
        return done.assign(slice=cut.where(varied, "")), True
    if fractions.nunique() < 2 and not done.empty:
        raise ValueError("--x data: every run trained on the same rows; sweep data.train_fraction "
                         "(e.g. `recsys-scaling sweep data_scaling`) to put data on an axis")
    along = done[~((done["arm"] == "me") & (done["num_embeddings"].fillna(2) == 1))]
    scales = along["scale"].groupby(along["series"]).transform("nunique") > 1
    cut = along["scale"].map(lambda s: f" @ {int(s)}x").where(scales, "")
    position = along["train_fraction"].rank(method="dense").astype(int)
    return along.assign(slice=cut, scale=position), False
