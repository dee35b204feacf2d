"""Closed choices of the job config. Composition rejects any other value, naming the key and the
allowed values; members are strings, so code and fingerprints see plain "se", "total", ..."""
from __future__ import annotations

from enum import StrEnum
from typing import Any


class Arm(StrEnum):
    se = "se"  # one embedding set of size scale * d0
    me = "me"  # `scale` sets of size d0


class Precision(StrEnum):
    fp32 = "fp32"  # the paper's numerics
    tf32 = "tf32"  # fp32 storage, TF32 matmuls (Ampere+ GPUs; no effect on CPU)
    bf16 = "bf16"  # bf16 autocast of the towers; embeddings, loss and optimizer state stay fp32


class Aggregation(StrEnum):
    mean = "mean"
    gate = "gate"


class DataKind(StrEnum):
    synthetic = "synthetic"
    criteo = "criteo"
    avazu = "avazu"
    csv = "csv"


class VocabScope(StrEnum):
    all = "all"
    train = "train"


class NumericRule(StrEnum):
    criteo_log = "criteo_log"
    log2 = "log2"
    identity = "identity"


class BudgetMatch(StrEnum):
    embedding = "embedding"
    total = "total"


class BudgetSolve(StrEnum):
    se_dim = "se_dim"
    me_dim = "me_dim"


class SplitBy(StrEnum):
    random = "random"  # a seeded 8:1:1 draw over every row (data.split)
    time = "time"  # earlier files (or partition values) train; the last one is halved into valid and test


def choice(kind: type, value: Any, key: str) -> StrEnum:
    """`value` as a member of the choice `kind`; a ValueError naming the key and the allowed values
    otherwise (for configs built in Python, which composition did not check)."""
    try:
        return kind(value)
    except ValueError:
        raise ValueError(f"{key}={value!r}: choose from {', '.join(kind)}") from None
