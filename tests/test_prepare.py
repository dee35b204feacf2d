"""Raw-file ingestion: readers, the paper's preprocessing, bad rows, the cache."""
from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from recsys_scaling.paths import CONF_DIR
from recsys_scaling.data import DataError, load_dataset
from recsys_scaling.data.formats import criteo_int_transform, parse_integers



def data_cfg(tmp_path, *overrides):
    """A data config; hand-made files of a few rows are checked for their encoding only
    (data.min_class_rows=0), the real-format samples (tests/samples.py) as users' files are."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[*overrides, f"data.cache_dir={tmp_path / 'cache'}"])
    return cfg.data


def criteo_line(label="1", ints=None, cats=None) -> str:
    ints = ints if ints is not None else ["1"] * 13
    cats = cats if cats is not None else ["aa"] * 26
    return "\t".join([label, *ints, *cats])


def write(path: Path, lines, gz=False) -> Path:
    text = "\n".join(lines) + "\n"
    if gz:
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    else:
        path.write_text(text)
    return path


@pytest.mark.parametrize("value,expected", [("", None), ("-1", -3), ("0", -2), ("1", -1), ("2", 0),
                                            ("3", 1), ("100000", 132), ("260.0", 30)])
def test_criteo_integer_rule(value, expected):
    values, missing, ok = parse_integers(pa.array([value]))
    assert ok.all()
    assert criteo_int_transform(values, missing).to_pylist() == [expected]


def test_non_integers_are_flagged():
    _, _, ok = parse_integers(pa.array(["12", "x", "1.5", "", "-4", "7.0"]))
    assert ok.tolist() == [True, False, False, True, True, True]


def test_real_criteo_sample_csv_variant(tmp_path, samples):
    data = load_dataset(data_cfg(tmp_path, "data=criteo", f"data.path={samples['criteo']}",
                                 "data.min_count=1"))
    assert data.meta["rows"] == 400 and len(data.field_dims) == 39
    assert data.field_names[:2] == ["I1", "I2"] and data.field_names[-1] == "C26"
    assert sum(data.meta["bad_rows"][k]["count"] for k in data.meta["bad_rows"]) == 0
    assert (np.asarray(data.X).max(0) < np.array(data.field_dims)).all()
    assert 0 < float(np.mean(data.y)) < 1


def test_real_avazu_sample(tmp_path, samples):
    data = load_dataset(data_cfg(tmp_path, "data=avazu", f"data.path={samples['avazu']}",
                                 "data.min_count=1"))
    assert data.meta["rows"] == 600 and len(data.field_dims) == 22
    assert "id" not in data.field_names and "click" not in data.field_names and "hour" in data.field_names
    assert data.field_dims[data.field_names.index("hour")] == 2  # one hour value, plus OOV
    with_hours = load_dataset(data_cfg(tmp_path, "data=avazu", f"data.path={samples['avazu']}",
                                       "data.avazu_hour_features=true"))
    assert with_hours.field_names[-2:] == ["hour_of_day", "weekday"]


def test_generic_csv_and_parquet_with_schema(tmp_path, samples):
    source = samples["csv"]
    csv = load_dataset(data_cfg(tmp_path, "data=csv", f"data.path={source}"))
    assert csv.meta["rows"] == 1000 and csv.field_names[0] == "price" and len(csv.field_dims) == 16
    import pyarrow.csv as pcsv

    table = pcsv.read_csv(source)
    pq.write_table(table, tmp_path / "tiny.parquet")
    parquet = load_dataset(data_cfg(tmp_path, "data=csv", f"data.path={tmp_path / 'tiny.parquet'}"))
    assert parquet.meta["rows"] == 1000 and parquet.field_names == csv.field_names


def test_schema_naming_absent_columns_is_a_clear_error(tmp_path, samples):
    with pytest.raises(DataError, match=r"absent from the file \(data.schema.categorical: \['nope'\]"):
        load_dataset(data_cfg(tmp_path, "data=csv", f"data.path={samples['csv']}",
                              "data.schema.categorical=[userid,nope]"))


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="no_such.txt: no such file"):
        load_dataset(data_cfg(tmp_path, "data=criteo", f"data.path={tmp_path / 'no_such.txt'}"))


def test_hand_computed_vocabulary_and_oov(tmp_path):
    cats = lambda c1: [c1] + ["z"] * 25  # noqa: E731
    lines = [criteo_line("1", ["5"] + [""] * 12, cats("b")),
             criteo_line("0", ["5"] + [""] * 12, cats("a")),
             criteo_line("0", ["0"] + [""] * 12, cats("b")),
             criteo_line("1", ["5"] + [""] * 12, cats("c")),
             criteo_line("0", ["0"] + [""] * 12, cats("a"))]
    path = write(tmp_path / "train.txt", lines)
    data = load_dataset(data_cfg(tmp_path, "data=criteo", f"data.path={path}", "data.min_class_rows=0", "data.min_count=2"))
    names = data.field_names
    # I1: "5" -> floor(ln 5 ^2) = 2 (3x), "0" -> "-2" (2x): by count then value
    # C1: a (2x), b (2x) kept, ordered by value; c (1x) -> OOV 0
    assert data.field_dims[names.index("I1")] == 3 and data.field_dims[names.index("C1")] == 3
    assert np.asarray(data.X)[:, names.index("I1")].tolist() == [1, 1, 2, 1, 2]
    assert np.asarray(data.X)[:, names.index("C1")].tolist() == [2, 1, 2, 0, 1]
    assert data.field_dims[names.index("I2")] == 2  # all "NULL"
    assert np.asarray(data.y).tolist() == [1, 0, 0, 1, 0]
    vocab = pq.read_table(data.path / "vocab.parquet").to_pandas()
    c1 = vocab[vocab.field == "C1"]
    assert c1.value.tolist() == ["a", "b"] and c1["index"].tolist() == [1, 2]


@pytest.mark.parametrize("gz", [False, True])
def test_bad_rows_counted_by_kind_with_line_numbers(tmp_path, gz, caplog):
    good = criteo_line()
    lines = [good,                                   # 1
             criteo_line(ints=["x"] + ["1"] * 12),   # 2 non-integer
             "\t".join(good.split("\t")[:20]),       # 3 wrong column count
             good,                                   # 4
             "",                                     # 5 empty line
             criteo_line(label="2"),                 # 6 bad label
             good + "\textra",                       # 7 wrong column count
             criteo_line(ints=["1.5"] + ["1"] * 12),  # 8 non-integer
             good]                                   # 9
    path = write(tmp_path / ("train.txt.gz" if gz else "train.txt"), lines, gz=gz)
    data = load_dataset(data_cfg(tmp_path, "data=criteo", f"data.path={path}", "data.min_class_rows=0", "data.min_count=1",
                                 "data.max_bad_fraction=1"))
    bad = data.meta["bad_rows"]
    assert {k: (v["count"], v["first_lines"]) for k, v in bad.items()} == {
        "wrong_column_count": (2, [3, 7]), "non_integer": (2, [2, 8]),
        "bad_label": (1, [6]), "empty_line": (1, [5])}
    assert data.meta["rows"] == 3
    assert "skipped 6 bad rows" in caplog.text and "line" in caplog.text
    meta = json.loads((data.path / "meta.json").read_text())
    assert meta["bad_rows"]["bad_label"]["first_lines"] == [6]


def test_strict_mode_names_file_and_line(tmp_path):
    path = write(tmp_path / "train.txt", [criteo_line(), criteo_line(), "\t".join(["1"] * 10), criteo_line(label="x")])
    with pytest.raises(DataError, match=r"train.txt:3: wrong column count"):
        load_dataset(data_cfg(tmp_path, "data=criteo", f"data.path={path}", "data.min_class_rows=0", "data.strict=true"))
    assert not any((tmp_path / "cache").glob("criteo-*")), "nothing half-written"


def test_cache_reuse_and_rebuild_on_changed_input_or_setting(tmp_path):
    path = write(tmp_path / "train.txt", [criteo_line(label=str(i % 2)) for i in range(50)])
    first = load_dataset(data_cfg(tmp_path, "data=criteo", f"data.path={path}", "data.min_class_rows=0"))
    stamp = (first.path / "X.npy").stat().st_mtime_ns
    again = load_dataset(data_cfg(tmp_path, "data=criteo", f"data.path={path}", "data.min_class_rows=0"))
    assert again.path == first.path and (again.path / "X.npy").stat().st_mtime_ns == stamp
    other_setting = load_dataset(data_cfg(tmp_path, "data=criteo", f"data.path={path}", "data.min_class_rows=0", "data.min_count=1"))
    assert other_setting.path != first.path
    write(path, [criteo_line(label=str(i % 2)) for i in range(60)])
    changed = load_dataset(data_cfg(tmp_path, "data=criteo", f"data.path={path}", "data.min_class_rows=0"))
    assert changed.path != first.path and changed.meta["rows"] == 60


def test_vocab_scope_train_counts_only_training_rows(tmp_path):
    lines = [criteo_line(label=str(i % 2), cats=[f"v{i}"] + ["z"] * 25) for i in range(40)]
    path = write(tmp_path / "train.txt", lines)
    scoped = load_dataset(data_cfg(tmp_path, "data=criteo", f"data.path={path}", "data.min_class_rows=0", "data.min_count=1",
                                   "data.vocab_scope=train"))
    c1 = scoped.field_names.index("C1")
    X = np.asarray(scoped.X)
    assert scoped.field_dims[c1] == len(scoped.splits["train"]) + 1
    assert (X[scoped.splits["test"], c1] == 0).all() and (X[scoped.splits["train"], c1] > 0).all()


@pytest.mark.integration
def test_two_processes_encode_identically(tmp_path):
    rng = np.random.default_rng(0)
    lines = [criteo_line(str(rng.integers(2)), [str(v) for v in rng.integers(-1, 500, 13)],
                         [f"{v:x}" for v in rng.integers(0, 50, 26)]) for _ in range(300)]
    path = write(tmp_path / "train.txt", lines)
    code = ("import sys, hashlib, numpy as np\n"
            "from hydra import compose, initialize_config_dir\n"
            "from recsys_scaling.paths import CONF_DIR\n"
            "from recsys_scaling.data import load_dataset\n"
            "with initialize_config_dir(config_dir=str(CONF_DIR), version_base='1.3'):\n"
            "    cfg = compose(config_name='config', overrides=['data=criteo', 'data.path=' + sys.argv[1],"
            " 'data.min_count=2', 'data.cache_dir=' + sys.argv[2]])\n"
            "d = load_dataset(cfg.data)\n"
            "print(hashlib.sha256(np.asarray(d.X).tobytes() + np.asarray(d.y).tobytes()).hexdigest())\n")
    digests = {subprocess.run([sys.executable, "-c", code, str(path), str(tmp_path / f"c{i}")], check=True,
                              capture_output=True, text=True).stdout.strip() for i in range(2)}
    assert len(digests) == 1 and len(digests.pop()) == 64


def test_bad_rows_in_blocks_arrow_parses_as_integers(tmp_path):
    # no non-integer value: the block takes the typed fast path; other kinds are still caught
    good = criteo_line()
    lines = [good, "", criteo_line(label="7"), "\t".join(["1"] * 5), good, criteo_line(ints=[""] * 13)]
    path = write(tmp_path / "train.txt", lines)
    data = load_dataset(data_cfg(tmp_path, "data=criteo", f"data.path={path}", "data.min_class_rows=0", "data.min_count=1",
                                 "data.max_bad_fraction=1"))
    bad = {k: (v["count"], v["first_lines"]) for k, v in data.meta["bad_rows"].items()}
    assert bad == {"wrong_column_count": (1, [4]), "non_integer": (0, []), "bad_label": (1, [3]),
                   "empty_line": (1, [2])}
    assert data.meta["rows"] == 3
    assert data.field_dims[data.field_names.index("I1")] == 3  # "1" -> -1 (2x), NULL (1x), plus OOV


def test_buffered_codes_spill_to_disk_beyond_the_memory_budget(tmp_path):
    from recsys_scaling.data.prepare import BufferedRows

    rng = np.random.default_rng(0)
    batches = [rng.integers(0, 50, (3, n)).astype(np.int32) for n in (5, 7, 4)]
    for budget, spilled in ((1 << 20, False), (100, True)):
        rows = BufferedRows(tmp_path, 3, memory_bytes=budget)
        for codes in batches:
            rows.append(codes, np.ones(codes.shape[1]))
        assert len(rows.finish()) == 16
        assert (tmp_path / "codes.int32").exists() == spilled
        back = list(rows.batches())
        assert [start for start, _ in back] == [0, 5, 12]
        assert all(np.array_equal(a, b) for (_, a), b in zip(back, batches))
        rows.remove()
