"""Synthetic CTR data from a planted teacher, written straight into the cache format.

The teacher
-----------
* Field f has ``c_f`` values drawn with Zipf frequencies p(rank r) ∝ (r + 1)^(-s); value ids
  are a seeded permutation of the ranks, so an id says nothing about its frequency.
* Every value v of field f has a first-order weight u_f(v) ~ N(0, 1) and a rank-``r`` teacher
  embedding t_f(v) with independent N(0, s_k^2) coordinates, s_k ∝ k^(-spectrum_decay)
  (k = 1..r) and Σ s_k^2 = 1. With a decay, the teacher's interaction spectrum falls off, so
  each extra dimension of a student is worth a diminishing but real amount.
* Interacting pairs P: with ``low_high_pairs`` every (low, high) pair — fields with fewer than
  ``low_cardinality`` values against fields with at least ``high_cardinality`` — the pattern Guo
  et al. blame for embedding collapse: a low-cardinality partner with c values reads at most c
  directions of a large field's embedding, so many partners together need many directions.
  Plus a seeded fraction ``pair_density`` of the remaining pairs; each pair has a weight
  w_ij ~ N(0, 1). ``low_high_pairs: false`` drops the forced pairs (a negative control).
* z1 = Σ_f u_f(x_f), z2 = Σ_(i,j)∈P w_ij <t_i(x_i), t_j(x_j)>; each is standardised with
  statistics from a fixed calibration sample (so the labels of row n do not depend on how many
  rows are requested) and the logit is b + first_order_scale·z1 + interaction_scale·z2, with b
  solved so that the mean click probability is ``positive_rate``.
* y ~ Bernoulli(sigmoid(logit)).

Oracles (``meta.json`` → ``oracle``, shown by ``data info`` and the report): on the test split,
the AUC of the true logit (the Bayes AUC) and of the teacher truncated to its first w
coordinates (w = 10, 20, 40: what a student of embedding width w could at best hold, up to
the first-order terms). They show the headroom a wider model can win.

Rows are generated in fixed-size chunks, each from its own seeded stream, so memory stays
O(chunk) for any row count and row n is the same whatever the total.
"""
from __future__ import annotations

import logging
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np
from scipy.special import expit

from ..metrics import roc_auc
from .cache import CacheWriter, EncodedData, open_or_build, seeded_split

GENERATOR_VERSION = 3
ORACLE_WIDTHS = (10, 20, 40)
CHUNK_ROWS = 1 << 17
CALIBRATION_ROWS = 1 << 16
log = logging.getLogger(__name__)


@dataclass
class Teacher:
    cdfs: List[np.ndarray]
    id_of_rank: List[np.ndarray]
    first_order: List[np.ndarray]
    embeddings: List[np.ndarray]
    pairs: List[Tuple[int, int]]
    pair_weights: np.ndarray
    z_stats: Tuple[float, float, float, float]  # mean/std of z1, mean/std of z2
    bias: float
    first_order_scale: float
    interaction_scale: float

    def sample_fields(self, key: Sequence[int], rows: int) -> np.ndarray:
        """`rows` rows; field f uses its own stream keyed (*key, f), so a shorter draw is a prefix."""
        X = np.empty((rows, len(self.cdfs)), dtype=np.int32)
        for f, (cdf, ids) in enumerate(zip(self.cdfs, self.id_of_rank)):
            uniform = np.random.default_rng([*key, f]).random(rows)
            ranks = np.searchsorted(cdf, uniform, side="right")
            X[:, f] = ids[np.minimum(ranks, len(ids) - 1)]
        return X

    def raw_scores(self, X: np.ndarray, width: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray]:
        z1 = np.zeros(len(X))
        for f, u in enumerate(self.first_order):
            z1 += u[X[:, f]]
        z2 = np.zeros(len(X))
        for (i, j), w in zip(self.pairs, self.pair_weights):
            z2 += w * np.einsum("nr,nr->n", self.embeddings[i][X[:, i], :width], self.embeddings[j][X[:, j], :width])
        return z1, z2

    @property
    def rank(self) -> int:
        return self.embeddings[0].shape[1]

    def logits(self, X: np.ndarray, width: Optional[int] = None) -> np.ndarray:
        """The true logit; with `width`, of the teacher truncated to its first `width` coordinates
        (standardised as the full teacher is)."""
        z1, z2 = self.raw_scores(X, width)
        m1, s1, m2, s2 = self.z_stats
        return (self.bias + self.first_order_scale * (z1 - m1) / s1
                + self.interaction_scale * (z2 - m2) / s2)


def make_teacher(cfg) -> Teacher:
    cards = [int(c) for c in cfg.cardinalities]
    if not cards or min(cards) < 2:
        raise ValueError(f"data.synthetic.cardinalities={cards}: need fields with >= 2 values")
    if not 0.0 < cfg.positive_rate < 1.0:
        raise ValueError(f"data.synthetic.positive_rate={cfg.positive_rate}: must be in (0, 1)")
    if cfg.teacher_rank < 1:
        raise ValueError(f"data.synthetic.teacher_rank={cfg.teacher_rank}: must be >= 1")
    rng = np.random.default_rng([cfg.seed, GENERATOR_VERSION])
    scales = column_scales(cfg.teacher_rank, cfg.spectrum_decay)
    cdfs, id_of_rank, first_order, embeddings = [], [], [], []
    for c in cards:
        weights = (np.arange(c) + 1.0) ** -cfg.zipf_exponent
        cdfs.append(np.cumsum(weights / weights.sum()))
        id_of_rank.append(rng.permutation(c).astype(np.int32))
        first_order.append(rng.standard_normal(c))
        embeddings.append(rng.standard_normal((c, cfg.teacher_rank)) * scales)
    pairs = _teacher_pairs(cards, cfg, rng)
    pair_weights = rng.standard_normal(len(pairs))
    teacher = Teacher(cdfs, id_of_rank, first_order, embeddings, pairs, pair_weights,
                      (0.0, 1.0, 0.0, 1.0), 0.0, cfg.first_order_scale, cfg.interaction_scale)
    _calibrate(teacher, cfg)
    return teacher


def column_scales(rank: int, decay: float) -> np.ndarray:
    """s_k ∝ k^-decay, k = 1..rank, with Σ s_k² = 1 (so E‖t‖² = 1 for any decay)."""
    raw = np.arange(1, rank + 1, dtype=float) ** -decay
    return raw / np.sqrt((raw**2).sum())


def _teacher_pairs(cards: Sequence[int], cfg, rng: np.random.Generator) -> List[Tuple[int, int]]:
    pairs = []
    for i in range(len(cards)):
        for j in range(i + 1, len(cards)):
            lo, hi = sorted((cards[i], cards[j]))
            forced = cfg.low_high_pairs and lo < cfg.low_cardinality and hi >= cfg.high_cardinality
            # the draw happens for every pair, so the other pairs do not depend on the forced ones
            if (rng.random() < cfg.pair_density) or forced:
                pairs.append((i, j))
    if not pairs and len(cards) > 1:
        pairs.append((0, len(cards) - 1))
    return pairs


def _calibrate(teacher: Teacher, cfg) -> None:
    X = teacher.sample_fields([cfg.seed, GENERATOR_VERSION, 2], CALIBRATION_ROWS)
    z1, z2 = teacher.raw_scores(X)
    teacher.z_stats = (z1.mean(), z1.std() or 1.0, z2.mean(), z2.std() or 1.0)
    centred = teacher.logits(X)
    from scipy.optimize import brentq  # slow to import; only when a teacher is built

    teacher.bias = brentq(lambda b: expit(centred + b).mean() - cfg.positive_rate, -50.0, 50.0)


def generator_settings(cfg) -> dict:
    return {"generator": "synthetic", "generator_version": GENERATOR_VERSION, **asdict(cfg)}


def write_synthetic(path: Path, fp: str, cfg, split: Sequence[float], progress: bool = False) -> Path:
    teacher = make_teacher(cfg)
    names = [f"F{f + 1}" for f in range(len(teacher.cdfs))]
    writer = CacheWriter(path, names)
    try:
        writer.allocate(cfg.rows)
        for start in _progress(range(0, cfg.rows, CHUNK_ROWS), progress, cfg.rows):
            stop = min(cfg.rows, start + CHUNK_ROWS)
            key = [cfg.seed, GENERATOR_VERSION, 1, start // CHUNK_ROWS]
            X = teacher.sample_fields(key, stop - start)
            writer.X[start:stop] = X
            label_noise = np.random.default_rng([*key, len(teacher.cdfs)]).random(stop - start)
            writer.y[start:stop] = label_noise < expit(teacher.logits(X))
        positives = float(np.asarray(writer.y).mean())
        meta = {
            "source": "synthetic",
            "fingerprint": fp,
            "rows": int(cfg.rows),
            "positive_rate": positives,
            "teacher": {"pairs": [list(p) for p in teacher.pairs], "bias": teacher.bias},
            "bad_rows": {},
            "settings": generator_settings(cfg),
        }
        splits = seeded_split(cfg.rows, split, seed=cfg.seed)
        test = splits["test"] if len(splits["test"]) else np.arange(cfg.rows)
        meta["oracle"] = oracle_aucs(teacher, np.asarray(writer.X[test]), np.asarray(writer.y[test]))
        return writer.commit([len(c) for c in teacher.cdfs], splits, meta)
    except BaseException:
        writer.abort()
        raise


def oracle_aucs(teacher: Teacher, X: np.ndarray, y: np.ndarray) -> dict:
    """Test AUC of the true logit and of the teacher truncated to ORACLE_WIDTHS coordinates."""
    widths = [w for w in ORACLE_WIDTHS if w < teacher.rank]
    return {"bayes_auc": roc_auc(y, teacher.logits(X)), "teacher_rank": teacher.rank,
            "truncated_auc": {str(w): roc_auc(y, teacher.logits(X, w)) for w in widths}}


def _progress(chunks: range, enabled: bool, rows: int):
    if not enabled or len(chunks) < 4 or not sys.stderr.isatty():  # a bar only on a terminal
        return chunks
    from tqdm import tqdm

    return tqdm(chunks, desc=f"generating {rows:,} rows", unit="chunk", leave=False)


def synthetic_settings(cfg, split: Sequence[float]) -> dict:
    """What the generated cache depends on (its fingerprint): the generator, its version, the split."""
    return {**generator_settings(cfg), "split": list(split)}


def synthetic_dataset(name: str, cfg, split: Sequence[float], cache_dir: str, progress: bool = False) -> EncodedData:
    settings = synthetic_settings(cfg, split)
    return open_or_build(
        Path(cache_dir), name, settings,
        lambda path, fp: write_synthetic(path, fp, cfg, split, progress),
    )
