"""Collapse diagnostics against hand-computed values."""
from __future__ import annotations

import numpy as np
import pytest

from recsys_scaling import diagnostics as dg


def test_ia_of_identity_is_its_size():
    assert dg.information_abundance(np.eye(7)) == pytest.approx(7.0)


def test_ia_of_rank_one_is_one():
    u, v = np.arange(1, 6, dtype=float), np.array([2.0, -1.0, 0.5])
    assert dg.information_abundance(np.outer(u, v)) == pytest.approx(1.0)


def test_ia_of_a_hand_picked_spectrum():
    rng = np.random.default_rng(0)
    q1, _ = np.linalg.qr(rng.standard_normal((20, 4)))
    q2, _ = np.linalg.qr(rng.standard_normal((4, 4)))
    matrix = q1 @ np.diag([4.0, 2.0, 1.0, 1.0]) @ q2.T
    assert dg.information_abundance(matrix) == pytest.approx((4 + 2 + 1 + 1) / 4)


def test_row_normalisation_changes_what_it_should():
    matrix = np.array([[100.0, 0.0], [0.0, 1.0]])
    assert dg.information_abundance(matrix) == pytest.approx(1.01)
    assert dg.information_abundance(matrix, normalize_rows=True) == pytest.approx(2.0)


def test_zero_matrix_has_zero_ia():
    assert dg.information_abundance(np.zeros((3, 2))) == 0.0


def test_principal_angles_identical_and_orthogonal():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((10, 3))
    mix = rng.standard_normal((3, 3))
    np.testing.assert_allclose(dg.principal_angles(a, a @ mix), 0.0, atol=1e-5)
    e = np.eye(6)
    np.testing.assert_allclose(dg.principal_angles(e[:, :3], e[:, 3:]), 90.0)
    half = dg.principal_angles(e[:, :1], (e[:, :1] + e[:, 1:2]))
    np.testing.assert_allclose(half, 45.0)


def test_most_frequent_rows_by_count_then_index():
    X = np.array([[2, 0], [2, 1], [1, 1], [0, 1], [1, 0], [2, 0]], dtype=np.int32)
    counts = dg.value_counts(X, np.arange(6), [4, 2], chunk=4)
    assert [c.tolist() for c in counts] == [[1, 2, 3, 0], [3, 3]]
    rows = dg.most_frequent_rows(counts, 2)
    assert [r.tolist() for r in rows] == [[1, 2], [0, 1]]


def test_embedding_diagnostics_concatenates_the_sets():
    rng = np.random.default_rng(2)
    shared = rng.standard_normal((30, 1))
    table = np.concatenate([shared @ rng.standard_normal((1, 4)), shared @ rng.standard_normal((1, 4))], axis=1)
    (field,) = dg.embedding_diagnostics(table, 2, ["F1"], [30], [np.arange(30)])
    assert field.ia_sets == pytest.approx([1.0, 1.0])
    assert field.ia_effective == pytest.approx(1.0)  # both sets span the same one direction
    assert field.angles_mean == pytest.approx(0.0, abs=1e-4)
    assert field.spectrum[0] == pytest.approx(1.0) and len(field.spectrum) == 8
    summary = dg.summary_metrics([field])
    assert summary["ia_mean"] == pytest.approx(1.0) and summary["ia_random_mean"] > 5
