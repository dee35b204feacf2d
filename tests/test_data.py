"""Synthetic teacher data and the fingerprinted cache."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from recsys_scaling.config import SyntheticConfig
from recsys_scaling.data.cache import CacheError, fingerprint, open_cache, seeded_split
from recsys_scaling.data.loader import BatchLoader
from recsys_scaling.data.synthetic import make_teacher, synthetic_dataset

SMALL = SyntheticConfig(rows=5000, cardinalities=[3, 7, 50, 1200], seed=3)


def build(tmp_path, cfg=SMALL, split=(0.8, 0.1, 0.1)):
    return synthetic_dataset("t", cfg, list(split), str(tmp_path))


def test_shape_labels_and_positive_rate(tmp_path):
    data = build(tmp_path, SyntheticConfig(rows=40_000, cardinalities=[3, 7, 50, 1200], seed=3))
    assert data.X.shape == (40_000, 4) and data.X.dtype == np.int32
    assert data.field_dims == [3, 7, 50, 1200]
    assert (np.asarray(data.X).max(0) < np.array(data.field_dims)).all() and np.asarray(data.X).min() >= 0
    assert set(np.unique(data.y)) == {0.0, 1.0}
    assert abs(float(np.mean(data.y)) - 0.25) < 0.02


def test_zipf_frequencies_and_low_x_high_pairs():
    teacher = make_teacher(SyntheticConfig(cardinalities=[3, 7, 50, 1200, 5000], pair_density=0.0))
    # every field with < 100 values interacts with every field with >= 1000
    assert set(teacher.pairs) == {(0, 3), (0, 4), (1, 3), (1, 4), (2, 3), (2, 4)}
    X = teacher.sample_fields([0], 50_000)
    counts = np.sort(np.bincount(X[:, 4], minlength=5000))[::-1]
    assert counts[0] > 20 * counts[100] > 0  # heavy head, long tail


def test_teacher_knobs_spectrum_and_negative_control():
    from recsys_scaling.data.synthetic import column_scales

    scales = column_scales(64, 0.25)
    assert np.sum(scales**2) == pytest.approx(1.0) and scales[0] / scales[-1] == pytest.approx(64**0.25)
    assert np.allclose(column_scales(16, 0.0), 1 / 4)
    cards = [2, 3, 50, 200, 1000]
    with_pairs = make_teacher(SyntheticConfig(cardinalities=cards, pair_density=0.2, high_cardinality=200))
    control = make_teacher(SyntheticConfig(cardinalities=cards, pair_density=0.2, high_cardinality=200,
                                           low_high_pairs=False))
    forced = {(i, j) for i in range(3) for j in (3, 4)}
    assert forced <= set(with_pairs.pairs)
    assert set(with_pairs.pairs) == set(control.pairs) | forced  # the other pairs are drawn alike
    assert not forced <= set(control.pairs)
    assert make_teacher(SyntheticConfig(cardinalities=cards, teacher_rank=8, spectrum_decay=1.0)).rank == 8


def test_oracle_aucs_show_the_headroom(tmp_path):
    cfg = SyntheticConfig(rows=30_000, cardinalities=[2, 4, 8, 300, 500], teacher_rank=48, spectrum_decay=0.25,
                          high_cardinality=200, interaction_scale=2.0, seed=4)
    data = build(tmp_path, cfg)
    oracle = data.meta["oracle"]
    assert oracle["teacher_rank"] == 48 and list(oracle["truncated_auc"]) == ["10", "20", "40"]
    widths = [oracle["truncated_auc"][w] for w in ("10", "20", "40")]
    assert 0.5 < widths[0] < widths[2] < oracle["bayes_auc"] < 1.0
    from recsys_scaling.data import describe

    assert "oracle test AUC: Bayes" in describe(data)


def test_split_is_seeded_disjoint_and_complete():
    a, b = seeded_split(1000, [0.8, 0.1, 0.1], 7), seeded_split(1000, [0.8, 0.1, 0.1], 7)
    assert all(np.array_equal(a[n], b[n]) for n in a)
    assert [len(a[n]) for n in ("train", "valid", "test")] == [800, 100, 100]
    assert np.array_equal(np.sort(np.concatenate(list(a.values()))), np.arange(1000))
    with pytest.raises(ValueError, match="data.split"):
        seeded_split(10, [0.5, 0.1], 0)


def test_rows_do_not_depend_on_the_total(tmp_path):
    a = build(tmp_path / "a", SyntheticConfig(rows=3000, cardinalities=[3, 50, 1200], seed=1))
    b = build(tmp_path / "b", SyntheticConfig(rows=200_000, cardinalities=[3, 50, 1200], seed=1))
    assert np.array_equal(np.asarray(a.X), np.asarray(b.X[:3000]))


def test_cache_is_reused_then_rebuilt_on_a_changed_setting(tmp_path):
    first = build(tmp_path)
    stamp = (first.path / "X.npy").stat().st_mtime_ns
    again = build(tmp_path)
    assert again.path == first.path and (again.path / "X.npy").stat().st_mtime_ns == stamp
    changed = build(tmp_path, SyntheticConfig(rows=5000, cardinalities=[3, 7, 50, 1200], seed=4))
    assert changed.path != first.path
    assert not np.array_equal(np.asarray(changed.y), np.asarray(first.y))


@pytest.mark.parametrize("damage", ["truncate", "corrupt", "meta"])
def test_damaged_cache_is_detected_and_rebuilt(tmp_path, damage, caplog):
    data = build(tmp_path)
    expected = np.asarray(data.X).copy()
    x_file = data.path / "X.npy"
    if damage == "truncate":
        with x_file.open("r+b") as fh:
            fh.truncate(x_file.stat().st_size - 100)
    elif damage == "corrupt":
        with x_file.open("r+b") as fh:
            fh.seek(200)
            fh.write(b"\xff" * 64)
    else:
        (data.path / "meta.json").write_text("{not json")
    with pytest.raises(CacheError):
        open_cache(data.path, fingerprint({}))
    rebuilt = build(tmp_path)
    assert "rebuilding cache" in caplog.text
    assert np.array_equal(np.asarray(rebuilt.X), expected)


def test_no_partial_cache_is_left_behind(tmp_path, monkeypatch):
    import recsys_scaling.data.synthetic as synthetic

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(synthetic, "seeded_split", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        build(tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.integration
def test_two_processes_encode_identically(tmp_path):
    code = ("import sys, hashlib, numpy as np;"
            "from recsys_scaling.config import SyntheticConfig;"
            "from recsys_scaling.data.synthetic import synthetic_dataset;"
            "d = synthetic_dataset('p', SyntheticConfig(rows=4000, cardinalities=[3, 50, 1200], seed=9),"
            " [0.8, 0.1, 0.1], sys.argv[1]);"
            "print(hashlib.sha256(np.asarray(d.X).tobytes() + np.asarray(d.y).tobytes()).hexdigest())")
    digests = [subprocess.run([sys.executable, "-c", code, str(tmp_path / str(i))], check=True,
                              capture_output=True, text=True).stdout.strip() for i in range(2)]
    assert digests[0] == digests[1] and len(digests[0]) == 64


def test_meta_json_describes_the_cache(tmp_path):
    meta = json.loads((build(tmp_path).path / "meta.json").read_text())
    assert meta["field_dims"] == [3, 7, 50, 1200] and meta["rows"] == 5000
    assert meta["split_rows"] == {"train": 4000, "valid": 500, "test": 500}
    assert meta["fingerprint"] and meta["format_version"] == 1


def test_loader_shuffles_per_epoch_and_covers_every_row(tmp_path):
    data = build(tmp_path)
    idx = data.splits["train"]
    loader = BatchLoader(data.X, data.y, idx, batch_size=512, shuffle=True, seed=0)
    epochs = [[x for x, _ in loader.epoch(e)] for e in (0, 1)]
    assert len(epochs[0]) == len(loader) == 8
    rows = np.concatenate([b.numpy() for b in epochs[0]])
    assert np.array_equal(np.sort(rows, axis=0), np.sort(np.asarray(data.X)[idx], axis=0))
    assert not np.array_equal(epochs[0][0].numpy(), epochs[1][0].numpy())
    again = [x for x, _ in loader.epoch(0)]
    assert all(np.array_equal(a.numpy(), b.numpy()) for a, b in zip(epochs[0], again))


def test_prefetching_loader_yields_the_same_batches(tmp_path):
    data = build(tmp_path)
    plain = BatchLoader(data.X, data.y, data.splits["train"], batch_size=300, shuffle=True, seed=3)
    ahead = BatchLoader(data.X, data.y, data.splits["train"], batch_size=300, shuffle=True, seed=3, prefetch=2)
    for (xa, ya), (xb, yb) in zip(plain.epoch(1), ahead.epoch(1), strict=True):
        assert np.array_equal(xa.numpy(), xb.numpy()) and np.array_equal(ya.numpy(), yb.numpy())
