"""Datasets of many files (issue #36): a folder, a glob or a list as one dataset, Criteo Terabyte's
day files, hive-partitioned Parquet, out-of-time splits, identity over every file, value counts
spilled to disk under a memory budget, each bad input as one line with nothing created, and a
sweep and report end to end on day files through the real CLI and MLflow."""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recsys_scaling.cli import main
from recsys_scaling.data import load_dataset
from recsys_scaling.data.files import natural_key, resolve_files
from recsys_scaling.data.spill import ValueCounter, partition_of

from conftest import sweep_counts
from test_bad_input import one_error_line
from test_prepare import data_cfg


def day_file(path: Path, rows: int, seed: int, gz: bool = False) -> Path:
    """A Criteo Terabyte day: tab-separated label, I1..I13, C1..C26, no header; the label leans on C1."""
    rng = np.random.default_rng(seed)
    lines = []
    for _ in range(rows):
        cats = [format(int(rng.integers(0, 15 + 4 * c)), "08x") for c in range(26)]
        label = int(rng.random() < (0.45 if int(cats[0], 16) % 3 == 0 else 0.15))
        ints = ["" if rng.random() < 0.2 else str(int(rng.integers(0, 60))) for _ in range(13)]
        lines.append("\t".join([str(label), *ints, *cats]))
    text = "\n".join(lines) + "\n"
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def terabyte(folder: Path, days: int = 4, rows: int = 600, gz: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for day in range(days):
        day_file(folder / f"day_{day}", rows + 10 * day, seed=day, gz=gz)
    return folder


def hive(folder: Path, days=(1, 2, 10), parts: int = 2, rows: int = 500) -> Path:
    rng = np.random.default_rng(5)
    for day in days:
        (folder / f"day={day}").mkdir(parents=True, exist_ok=True)
        for part in range(parts):
            n = rows + part
            pq.write_table(pa.table({"clicked": (rng.random(n) < 0.3).astype(int),
                                     "user": [f"u{x}" for x in rng.integers(0, 40, n)],
                                     "price": rng.lognormal(2, 1, n)}), folder / f"day={day}" / f"part-{part}.parquet")
    (folder / "_SUCCESS").write_text("")
    return folder


HIVE = ["data=csv", "data.schema.label=clicked", "data.schema.categorical=[user,day]", "data.schema.numeric=[price]",
        "data.schema.numeric_rule=log2", "data.schema.drop=[]"]


def test_files_are_read_in_natural_order_once_each(tmp_path):
    folder = terabyte(tmp_path / "tb", days=12, rows=5)
    files = resolve_files([str(folder), str(folder / "day_1*")])
    assert [f.path.name for f in files] == [f"day_{d}" for d in range(12)]
    assert [f.day for f in files] == list(range(12))
    assert natural_key("day=2") < natural_key("day=10")
    assert [f.path.name for f in resolve_files(str(folder), days=[10, 2])] == ["day_2", "day_10"]


def test_day_files_prepare_with_a_time_split_recorded(tmp_path):
    folder = terabyte(tmp_path / "tb", gz=True)
    data = load_dataset(data_cfg(tmp_path, "data=criteo_terabyte", f"data.path={folder}", "data.days=[0,1,2]"))
    rows = [600, 610, 620]
    assert data.meta["rows"] == sum(rows)
    assert list(data.splits["train"]) == list(range(1210)), "the earlier days train, in file order"
    assert list(data.splits["valid"]) == list(range(1210, 1520)) and list(data.splits["test"]) == list(range(1520, 1830))
    inputs = data.meta["inputs"]
    assert [Path(f["path"]).name for f in inputs] == ["day_0.gz", "day_1.gz", "day_2.gz"]
    assert [f["split"] for f in inputs] == ["train", "train", "valid+test"] and [f["rows"] for f in inputs] == rows
    assert data.meta["settings"]["vocab_scope"] == "train"


def test_the_vocabulary_of_a_time_split_counts_the_training_days_only(tmp_path):
    """A value seen only on the held-out day is out of vocabulary, however often it appears."""
    folder = terabyte(tmp_path / "tb", days=3, rows=300)
    late = (folder / "day_2").read_text().splitlines()
    late = ["\t".join(line.split("\t")[:14] + ["ffffffff"] + line.split("\t")[15:]) for line in late]
    (folder / "day_2").write_text("\n".join(late) + "\n")
    data = load_dataset(data_cfg(tmp_path, "data=criteo_terabyte", f"data.path={folder}", "data.min_count=1"))
    column = data.field_names.index("C1")
    assert (data.X[data.splits["test"], column] == 0).all() and (data.X[data.splits["train"], column] > 0).all()


def test_hive_partitions_are_fields_and_the_time_key(tmp_path):
    folder = hive(tmp_path / "events")
    data = load_dataset(data_cfg(tmp_path, *HIVE, f"data.path={folder}", "data.split_by=time", "data.time_key=day"))
    assert data.meta["rows"] == 3 * (500 + 501)
    assert data.field_names == ["price", "user", "day"] and data.field_dims[-1] == 4  # days 1, 2, 10 (+ OOV)
    held = [f for f in data.meta["inputs"] if f["split"] != "train"]
    assert {f["partition"]["day"] for f in held} == {"10"}, "day=10 is the last day, not day=2"
    assert len(data.splits["train"]) == 2 * 1001


def test_every_file_is_in_the_identity(tmp_path):
    """Added, removed or rewritten files make new data (new jobs); the same files, listed in
    another order or another spelling, do not."""
    from recsys_scaling.data import data_fingerprint

    folder = terabyte(tmp_path / "tb", days=3, rows=50)

    def fp(path):
        return data_fingerprint(data_cfg(tmp_path, "data=criteo_terabyte", f"data.path={path}", "data.min_class_rows=0"))

    first = fp(folder)
    assert fp(f"[{folder}/day_2,{folder}/day_0,{folder}/day_1]") == first == fp(f"{folder}/day_*")
    day_file(folder / "day_3", 50, seed=3)
    added = fp(folder)
    (folder / "day_3").unlink()
    assert added != first and fp(folder) == first
    day_file(folder / "day_1", 50, seed=99)
    assert fp(folder) not in (first, added)


def test_value_counts_spill_to_disk_and_give_the_same_vocabulary(tmp_path):
    rng = np.random.default_rng(0)
    in_memory, spilled = ValueCounter(2), ValueCounter(2, tmp_path, memory_bytes=4096)
    for _ in range(30):
        for f, pool in enumerate((5000, 40)):
            words = pa.array([f"v{x}" for x in rng.integers(0, pool, 400)]).dictionary_encode()
            counts = np.bincount(words.indices.to_numpy(), minlength=len(words.dictionary))
            in_memory.add(f, words.dictionary, counts)
            spilled.add(f, words.dictionary, counts)
    assert spilled.spilled_bytes > 0 and any(spilled.spills)
    for a, b in zip(in_memory.vocabularies(2), spilled.vocabularies(2)):
        assert a.equals(b)
    spilled.remove()
    assert not list(tmp_path.glob("counts_*"))
    same = pa.array(["x", "yy", "x", None])
    assert partition_of(same, 16)[0] == partition_of(same, 16)[2] and partition_of(same, 16)[3] == 0


def test_a_tight_memory_budget_prepares_the_same_cache(tmp_path):
    folder = terabyte(tmp_path / "tb", days=3, rows=400)
    common = ["data=criteo_terabyte", f"data.path={folder}", "data.min_count=2"]
    roomy = load_dataset(data_cfg(tmp_path / "a", *common))
    tight = load_dataset(data_cfg(tmp_path / "b", *common, "data.prepare_memory=0.00001"))
    assert np.array_equal(np.asarray(roomy.X), np.asarray(tight.X)) and roomy.field_dims == tight.field_dims


def _refused(workdir: Path, capsys, *overrides: str) -> str:
    cache = workdir / "cache"
    code = main(["data", "prepare", f"data.cache_dir={cache}", *overrides])
    line = one_error_line(capsys.readouterr().err, "data")
    assert code != 0
    assert not cache.exists() or not list(cache.glob("*")), "nothing is cached"
    return line


@pytest.mark.parametrize("case", ["empty folder", "glob matching nothing", "mixed formats", "other columns",
                                  "missing day", "one time", "time key absent"])
def test_each_bad_input_is_one_line_and_nothing_is_created(workdir, capsys, case):
    folder = workdir / "data"
    folder.mkdir()
    criteo = ["data=criteo_terabyte", f"data.path={folder}"]
    if case == "empty folder":
        assert "an empty directory" in _refused(workdir, capsys, *criteo)
    elif case == "glob matching nothing":
        assert "the glob matches no file" in _refused(workdir, capsys, "data=criteo", f"data.path={folder}/day_*")
    elif case == "mixed formats":
        day_file(folder / "day_0", 20, 0)
        pq.write_table(pa.table({"a": [1]}), folder / "day_1.parquet")
        assert "a mix of formats" in _refused(workdir, capsys, *criteo)
    elif case == "other columns":
        day_file(folder / "day_0", 20, 0)
        text = (day_file(folder / "day_1", 20, 1)).read_text().replace("\n", "\textra\n")
        (folder / "day_1").write_text(text)
        line = _refused(workdir, capsys, *criteo)
        assert "day_1: 41 columns, but the first file day_0 has 40" in line
    elif case == "missing day":
        terabyte(folder, days=2, rows=20)
        assert "data.days: day 5 is not among the files (days 0..1 present" in _refused(workdir, capsys, *criteo,
                                                                                           "data.days=[0,5]")
    elif case == "one time":
        terabyte(folder, days=1, rows=20)
        assert "a time split needs files of at least two times" in _refused(workdir, capsys, *criteo)
    else:
        hive(folder, days=(1, 2), rows=30)
        pq.write_table(pa.table({"clicked": [1], "user": ["u"], "price": [1.0]}), folder / "loose.parquet")
        line = _refused(workdir, capsys, *HIVE, f"data.path={folder}", "data.split_by=time", "data.time_key=day")
        assert "data.time_key=day" in line and "loose.parquet" in line


@pytest.mark.integration
def test_day_files_through_sweep_and_report_with_the_split_in_each_run(workdir, capsys):
    folder = terabyte(workdir / "tb", days=3, rows=700)
    overrides = ["data=criteo_terabyte", f"data.path={folder}", "data.min_count=1", "model=dnn", "model.hidden=16",
                 "scale=1,2", "arm=se,me", "seed=0", "train.max_epochs=1", "diagnostics.max_rows=200"]
    assert main(["sweep", "smoke", *overrides]) == 0
    assert sweep_counts(capsys.readouterr().out)["finished"] == 3
    assert main(["report", "smoke", "--resamples", "20"]) == 0
    runs = json.loads((workdir / "reports" / "smoke" / "fits.json").read_text())
    assert runs["claims"] is not None
    from recsys_scaling import tracking

    store = tracking.Store(f"sqlite:///{workdir / 'mlflow.db'}", "recsys-scaling")
    jobs = [r for r in store.client.search_runs([store.experiment_id]) if r.data.tags.get("recsys_scaling.role") == "job"]
    assert len(jobs) == 3
    split = {r.data.params["resolved.data_split"] for r in jobs}
    assert split == {"time: train days 0..1 (2) (1,410 rows), validation and test day 2 halved (720 rows)"}


def test_bad_rows_are_named_by_file_and_line(tmp_path):
    from recsys_scaling.data import DataError

    folder = terabyte(tmp_path / "tb", days=3, rows=300)
    with (folder / "day_1").open("a") as fh:
        fh.write("\t".join(["0.5", *["1"] * 13, *["aa"] * 26]) + "\n")
    common = ["data=criteo_terabyte", f"data.path={folder}"]
    data = load_dataset(data_cfg(tmp_path, *common))
    bad = data.meta["bad_rows"]["bad_label"]
    assert bad["count"] == 1 and bad["first_lines"] == [311] and bad["files"] == [str(folder / "day_1")]
    with pytest.raises(DataError, match=r"day_1:311: bad label \(data.strict=true"):
        load_dataset(data_cfg(tmp_path, *common, "data.strict=true"))
