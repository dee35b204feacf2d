"""Embedding-collapse diagnostics (Guo et al., ICML 2024).

Information Abundance IA(E) = sum_i sigma_i / max_i sigma_i over the singular values of a
field's embedding table: 1 for a rank-one table, min(rows, width) for a perfectly spread one.

What is measured, per field:
* per set: IA of the set's table, raw and with every row L2-normalised first (the authors'
  analysis notebook normalises; the paper's formula does not);
* the "effective" table: the K sets concatenated (rows x K*d) — for SE this is the table itself;
* a same-shape Gaussian random matrix's IA as a reference ceiling;
* the normalised singular-value spectrum (sigma / sigma_max) of the effective table;
* for K > 1, principal angles between each pair of sets' column spaces (the functions of the
  field's values each set can express): 0 degrees = the same subspace, 90 = orthogonal.

Only the `max_rows` most frequent values of a field (by training-split counts) enter, so fields
with 100k values stay cheap; rare values barely move from their initialisation and would only
add noise-like directions.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

# Fields with at least this many values: their IA can exceed any student width in a sweep, so
# collapse shows there; a small field's IA is capped by its cardinality.
LARGE_FIELD = 200
CARDINALITY_GROUPS = (("lt100", 0, 100), ("100_10k", 100, 10_000), ("ge10k", 10_000, None))


def _rows_normalised(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms > 0, norms, 1.0)


def singular_values(matrix: np.ndarray, normalize_rows: bool = False) -> np.ndarray:
    matrix = np.asarray(matrix, dtype=np.float64)
    if normalize_rows:
        matrix = _rows_normalised(matrix)
    return np.linalg.svd(matrix, compute_uv=False)


def information_abundance(matrix: np.ndarray, normalize_rows: bool = False) -> float:
    """sum(sigma) / max(sigma); 0 for an all-zero matrix."""
    sigma = singular_values(matrix, normalize_rows)
    return float(sigma.sum() / sigma[0]) if sigma.size and sigma[0] > 0 else 0.0


def _column_basis(matrix: np.ndarray, rtol: float = 1e-8) -> np.ndarray:
    """Orthonormal basis of the column space, rank-aware (QR would invent directions)."""
    u, sigma, _ = np.linalg.svd(np.asarray(matrix, dtype=np.float64), full_matrices=False)
    rank = int((sigma > rtol * sigma[0]).sum()) if sigma.size and sigma[0] > 0 else 0
    return u[:, :rank]


def principal_angles(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Principal angles in degrees (ascending) between the column spaces of a and b."""
    qa, qb = _column_basis(a), _column_basis(b)
    cosines = np.clip(np.linalg.svd(qa.T @ qb, compute_uv=False), -1.0, 1.0)
    return np.degrees(np.arccos(cosines))


def random_reference_ia(rows: int, width: int, seed: int = 0) -> float:
    return information_abundance(np.random.default_rng(seed).standard_normal((rows, width)))


@dataclass
class FieldDiagnostics:
    field: str
    cardinality: int
    rows_used: int
    ia_sets: List[float]
    ia_sets_rownorm: List[float]
    ia_effective: float
    ia_effective_rownorm: float
    ia_random: float
    spectrum: List[float]
    angles_mean: Optional[float]


def field_diagnostics(name: str, cardinality: int, sets: Sequence[np.ndarray]) -> FieldDiagnostics:
    """`sets`: the field's K tables (rows x d), restricted to the rows to analyse."""
    effective = np.concatenate(sets, axis=1)
    sigma = singular_values(effective)
    pairs = [principal_angles(a, b).mean() for a, b in combinations(sets, 2)]
    return FieldDiagnostics(
        field=name,
        cardinality=cardinality,
        rows_used=effective.shape[0],
        ia_sets=[information_abundance(s) for s in sets],
        ia_sets_rownorm=[information_abundance(s, normalize_rows=True) for s in sets],
        ia_effective=information_abundance(effective),
        ia_effective_rownorm=information_abundance(effective, normalize_rows=True),
        ia_random=random_reference_ia(*effective.shape),
        spectrum=(sigma / sigma[0]).tolist() if sigma.size and sigma[0] > 0 else [],
        angles_mean=float(np.mean(pairs)) if pairs else None,
    )


def value_counts(X: np.ndarray, rows: np.ndarray, field_dims: Sequence[int], chunk: int = 1 << 20) -> List[np.ndarray]:
    """Per field, how often each value occurs among `rows` of X (read in chunks: O(chunk) memory)."""
    counts = [np.zeros(dim, dtype=np.int64) for dim in field_dims]
    for start in range(0, len(rows), chunk):
        block = np.asarray(X[rows[start:start + chunk]])
        for f, dim in enumerate(field_dims):
            counts[f] += np.bincount(block[:, f], minlength=dim)
    return counts


def most_frequent_rows(counts: Sequence[np.ndarray], max_rows: int) -> List[np.ndarray]:
    """Per field, the local indices of its `max_rows` most frequent values (ties: lower index)."""
    chosen = []
    for field_counts in counts:
        dim = len(field_counts)
        order = np.lexsort((np.arange(dim), -field_counts))
        chosen.append(np.sort(order[: min(max_rows, dim)]))
    return chosen


def embedding_diagnostics(table: np.ndarray, num_sets: int, field_names: Sequence[str],
                          field_dims: Sequence[int], rows_per_field: Sequence[np.ndarray]) -> List[FieldDiagnostics]:
    """`table`: the (sum field_dims) x (K*d) weight of a MultiEmbedding."""
    d = table.shape[1] // num_sets
    offsets = np.concatenate([[0], np.cumsum(field_dims)[:-1]])
    results = []
    for name, dim, offset, rows in zip(field_names, field_dims, offsets, rows_per_field):
        block = table[offset + rows]
        results.append(field_diagnostics(name, int(dim), [block[:, k * d:(k + 1) * d] for k in range(num_sets)]))
    return results


def summary_metrics(fields: Sequence[FieldDiagnostics]) -> Dict[str, float]:
    """Run-level metrics: IA means/minima overall and per cardinality group."""
    effective = np.array([f.ia_effective for f in fields])
    per_set = np.array([np.mean(f.ia_sets) for f in fields])
    metrics = {
        "ia_mean": float(effective.mean()),
        "ia_min": float(effective.min()),
        "ia_rownorm_mean": float(np.mean([f.ia_effective_rownorm for f in fields])),
        "ia_set_mean": float(per_set.mean()),
        "ia_set_min": float(min(min(f.ia_sets) for f in fields)),
        "ia_random_mean": float(np.mean([f.ia_random for f in fields])),
    }
    for label, low, high in CARDINALITY_GROUPS:
        group = [f.ia_effective for f in fields if f.cardinality >= low and (high is None or f.cardinality < high)]
        if group:
            metrics[f"ia_mean_card_{label}"] = float(np.mean(group))
    for label, group in (("large", [f for f in fields if f.cardinality >= LARGE_FIELD]),
                         ("small", [f for f in fields if f.cardinality < LARGE_FIELD])):
        if group:  # the all-field mean hides collapse of the large fields behind the small ones
            metrics[f"ia_mean_{label}"] = float(np.mean([f.ia_effective for f in group]))
    angles = [f.angles_mean for f in fields if f.angles_mean is not None]
    if angles:
        metrics["principal_angle_mean_deg"] = float(np.mean(angles))
    return metrics


def plot_diagnostics(fields: Sequence[FieldDiagnostics], out_dir: Path, title: str) -> List[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    order = sorted(fields, key=lambda f: f.cardinality)
    fig, ax = plt.subplots(figsize=(8, 4))
    x = np.arange(len(order))
    ax.bar(x - 0.2, [f.ia_effective for f in order], width=0.4, label="IA (all sets concatenated)")
    ax.bar(x + 0.2, [f.ia_random for f in order], width=0.4, alpha=0.5, label="random matrix, same shape")
    ax.set_xticks(x, [f"{f.field}\n{f.cardinality}" for f in order], fontsize=7)
    ax.set_ylabel("information abundance")
    ax.set_title(f"{title}: IA per field (by cardinality)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    ia_path = out_dir / "ia_per_field.png"
    fig.savefig(ia_path, dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    cmap = plt.get_cmap("viridis")
    for i, f in enumerate(order):
        ax.plot(np.arange(1, len(f.spectrum) + 1), f.spectrum, color=cmap(i / max(1, len(order) - 1)), lw=1)
    ax.set_yscale("log")
    ax.set_xlabel("singular value index")
    ax.set_ylabel("sigma / sigma_max")
    ax.set_title(f"{title}: spectra (light = high cardinality)")
    fig.tight_layout()
    spectra_path = out_dir / "spectra.png"
    fig.savefig(spectra_path, dpi=110)
    plt.close(fig)
    return [ia_path, spectra_path]
