"""Data files as users export them (faults round four, 16-20): a byte-order mark, soft labels,
mostly bad rows, the csv config's drop list — through the real CLI, one line, nothing cached."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from recsys_scaling.cli import main

from test_bad_input import one_error_line


def click_log(path: Path, rows: int = 300, label=None, bom: bool = False, bad_every: int = 0) -> Path:
    rng = np.random.default_rng(0)
    lines = ["clicked,site,app"]
    for n in range(rows):
        value = label(n) if label else str(int(rng.random() < 0.3))
        if bad_every and n % bad_every == 0:
            value = "0.5"
        lines.append(f"{value},s{int(rng.integers(20))},a{int(rng.integers(9))}")
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + ("\r\n".join(lines) + "\r\n").encode())
    return path


SCHEMA = ["data=csv", "data.schema.label=clicked", "data.schema.categorical=[site,app]", "data.schema.numeric=[]",
          "data.min_class_rows=0"]


def prepare(workdir: Path, path: Path, *overrides: str) -> int:
    return main(["data", "prepare", f"data.path={path}", f"data.cache_dir={workdir / 'cache'}", *SCHEMA, *overrides])


def _caches(workdir: Path) -> list:
    root = workdir / "cache"
    return sorted(p.name for p in root.glob("csv-*")) if root.exists() else []


def test_a_csv_with_a_byte_order_mark_is_read(workdir, capsys):
    path = click_log(workdir / "excel.csv", bom=True)
    assert prepare(workdir, path) == 0, capsys.readouterr().err
    (cache,) = _caches(workdir)
    meta = json.loads((workdir / "cache" / cache / "meta.json").read_text())
    assert meta["rows"] == 300 and meta["field_names"] == ["site", "app"]
    assert sum(v["count"] for v in meta["bad_rows"].values()) == 0


def test_the_csv_configs_drop_list_is_ignored_when_the_file_lacks_those_columns(workdir, capsys):
    """conf/data/csv.yaml drops the Taobao sample's time_stamp and click_sequence: a file without
    them has nothing to drop; a schema column the file lacks is named with its key."""
    path = click_log(workdir / "clicks.csv")
    assert prepare(workdir, path) == 0, capsys.readouterr().err
    capsys.readouterr()
    assert prepare(workdir, path, "data.schema.categorical=[site,nope]") == 2
    line = one_error_line(capsys.readouterr().err, "data")
    assert "data.schema.categorical: ['nope']" in line and "time_stamp" not in line.split("the file has")[0]


def test_soft_labels_say_labels_must_be_zero_or_one(workdir, capsys):
    path = click_log(workdir / "soft.csv", label=lambda n: f"{(n % 10) / 10 + 0.05:.2f}")
    assert prepare(workdir, path) == 2
    line = one_error_line(capsys.readouterr().err, "data")
    assert "no valid rows" in line and "300 bad_label" in line and "labels must be 0 or 1" in line
    assert _caches(workdir) == [], "nothing cached"


def test_mostly_bad_rows_fail_unless_allowed(workdir, capsys):
    path = click_log(workdir / "dirty.csv", bad_every=3)  # a third of the rows
    assert prepare(workdir, path) == 2
    line = one_error_line(capsys.readouterr().err, "data")
    assert "100 of 300 rows (33%) are bad" in line and "data.max_bad_fraction=0.34" in line and "bad_label" in line
    assert _caches(workdir) == []
    assert prepare(workdir, path, "data.max_bad_fraction=0.34") == 0
    assert len(_caches(workdir)) == 1


def test_true_false_labels_are_read(workdir, capsys):
    path = click_log(workdir / "bools.csv", label=lambda n: "true" if n % 3 == 0 else "false")
    assert prepare(workdir, path) == 0, capsys.readouterr().err
    (cache,) = _caches(workdir)
    meta = json.loads((workdir / "cache" / cache / "meta.json").read_text())
    assert abs(meta["positive_rate"] - 100 / 300) < 1e-6


def test_quoted_fields_with_newlines_are_rows_not_bad_lines(workdir, capsys):
    """A quoted field may hold newlines (and delimiters): each row counts once, none is bad,
    strict mode accepts the file, and a bad row is named by the line it starts on."""
    rows = ["clicked,site,app"]
    for n in range(200):
        site = f'"s{n % 7},\nsecond line"' if n % 5 == 0 else f"s{n % 7}"
        rows.append(f"{int(n % 3 == 0)},{site},a{n % 4}")
    rows.insert(101, '1,"broken\nover two lines",a1,extra')  # a row with a field too many, from line 141
    path = workdir / "notes.csv"
    path.write_text("\n".join(rows) + "\n")
    assert prepare(workdir, path) == 0, capsys.readouterr().err
    (cache,) = _caches(workdir)
    meta = json.loads((workdir / "cache" / cache / "meta.json").read_text())
    assert meta["rows"] == 200
    bad = {k: v for k, v in meta["bad_rows"].items() if v["count"]}
    start = 1 + 100 + 20 + 1  # header, 100 rows before it, 20 of them two lines long: line 122
    assert bad == {"wrong_column_count": {"count": 1, "first_lines": [start]}}, bad
    del rows[101]
    path.write_text("\n".join(rows) + "\n")
    assert prepare(workdir, path, "data.strict=true") == 0, capsys.readouterr().err
