"""Evaluation metrics for binary CTR prediction."""
from __future__ import annotations

import numpy as np


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with average ranks for ties); NaN if one class."""
    labels = np.asarray(labels).astype(bool)
    positives = int(labels.sum())
    negatives = len(labels) - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    from scipy.stats import rankdata  # scipy.stats takes 0.7 s to import: only when evaluating

    ranks = rankdata(scores)
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def log_loss(labels: np.ndarray, probabilities: np.ndarray, eps: float = 1e-7) -> float:
    p = np.clip(np.asarray(probabilities, dtype=np.float64), eps, 1 - eps)
    y = np.asarray(labels, dtype=np.float64)
    return float(-(y * np.log(p) + (1 - y) * np.log1p(-p)).mean())


def normalized_entropy(logloss: float, positive_rate: float) -> float:
    """NE: the logloss over the entropy of always predicting the training positive rate p (the
    logloss of the best constant predictor). Below 1 means better than that; NaN if p is 0 or 1."""
    p = float(positive_rate)
    if not 0 < p < 1:
        return float("nan")
    entropy = -(p * np.log(p) + (1 - p) * np.log1p(-p))
    return float(logloss / entropy)
