"""The data axis: a seeded, nested subsample of the training split.

The training rows kept at fraction f are the first ceil(f * n) rows of one fixed permutation of
the training split (seeded by the data's split seed), so the rows at f are a subset of the rows
at any larger fraction, and every job at f trains on the same rows. Validation and test are
never subsampled: runs at every fraction are scored on the same rows. Nothing is copied: the
subsample is a list of row indices into the same cache.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from .cache import EncodedData

SUBSAMPLE_STREAM = 0x7261  # keeps the subsample's permutation apart from the split's (same seed)


def subsample_rows(train_rows: int, fraction: float) -> int:
    """How many training rows a fraction keeps: ceil(f * n), at least one."""
    if not 0 < fraction <= 1:
        raise ValueError(f"data.train_fraction={fraction}: must be in (0, 1]")
    return max(1, min(train_rows, math.ceil(fraction * train_rows - 1e-9)))


def nested_subsample(indices: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """The training row indices kept at `fraction` (sorted): a prefix of one seeded permutation."""
    keep = subsample_rows(len(indices), fraction)
    if keep == len(indices):
        return indices
    order = np.random.default_rng([seed, SUBSAMPLE_STREAM]).permutation(len(indices))
    return np.sort(indices[order[:keep]])


def with_train_fraction(data: EncodedData, fraction: float, seed: int) -> EncodedData:
    """The same dataset with its training split subsampled (validation and test untouched)."""
    if fraction == 1:
        return data
    splits = {**data.splits, "train": nested_subsample(data.splits["train"], fraction, seed)}
    return dataclasses.replace(data, splits=splits)


def positive_rate(data: EncodedData, split: str = "train") -> float:
    """The positive rate of one split (NE's reference: the entropy of always predicting it)."""
    rows = data.splits[split]
    return float(np.asarray(data.y[rows], dtype=np.float64).mean()) if len(rows) else float("nan")
