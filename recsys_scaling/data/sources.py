"""The raw sources: the Criteo and Avazu files as the paper reads them, and any CSV or Parquet
file with a schema from the config; `make_formats` gives one per file of a data config."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Sequence, Tuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..config import DataKind, NumericRule, choice
from .faults import DataError, check_flat_columns
from .files import resolve_files
from .formats import (AVAZU_COLUMNS, CRITEO_CATS, CRITEO_INTS, MISSING, PARQUET_SUFFIXES, Batch, Chunk, Layout,
                      _listed, as_dictionary, check_readable, criteo_int_transform, first_line, is_empty_row,
                      parse_integers, parse_labels, read_chunks)
from .spill import memory_cap


@dataclass
class RawFormat:
    """Base: a delimited text file with a label column, integer columns and categorical columns."""

    path: Path
    label: str = "label"
    integer_columns: List[str] = field(default_factory=list)
    categorical_columns: List[str] = field(default_factory=list)
    partition: Dict[str, str] = field(default_factory=dict)  # hive key=value folders above the file
    block_bytes: int = 32 << 20  # text read (and parsed) this much at a time

    def layout(self) -> Layout:
        raise NotImplementedError

    @property
    def field_names(self) -> List[str]:
        return [*self.integer_columns, *self.categorical_columns]

    def file_columns(self) -> List[str]:
        """The file's own columns: its header, or (without one) as many as its first line has."""
        layout = self.layout()
        if layout.header:
            return list(layout.names)
        return [f"column {i + 1}" for i in range(first_line(self.path).count(layout.delimiter) + 1)]

    def chunks(self) -> Iterator[Chunk]:
        for chunk in read_chunks(self.layout(), self.block_bytes):
            yield self._with_partition(chunk)

    def _with_partition(self, chunk: Chunk) -> Chunk:
        """Partition values the schema uses as columns (a day=3 folder as a `day` field)."""
        wanted = [k for k in self.partition if k in (self.label, *self.field_names)
                  and k not in chunk.table.column_names]
        for key in wanted:
            chunk.table = chunk.table.append_column(key, pa.array([self.partition[key]] * chunk.table.num_rows,
                                                                  pa.string()))
        return chunk

    def integer_field(self, column: pa.Array) -> Tuple[pa.DictionaryArray, np.ndarray]:
        """(bucketed field, ok per row): parsed, validated and bucketed once per distinct value."""
        encoded = as_dictionary(column)
        keys, ok = self.bucket(encoded.dictionary)
        field = pa.DictionaryArray.from_arrays(encoded.indices, keys)
        if ok.all():
            return field, np.ones(len(encoded), dtype=bool)
        return field, ok[encoded.indices.to_numpy(zero_copy_only=False)]

    def bucket(self, values: pa.Array) -> Tuple[pa.Array, np.ndarray]:
        """(bucket keys, ok) of distinct integer-column values: the paper's ln^2 rule."""
        parsed, missing, ok = parse_integers(values)
        return criteo_int_transform(parsed, missing), ok

    def transform(self, table: pa.Table) -> Batch:
        """Valid rows as dictionary-encoded fields: integer keys for integer columns (null =
        missing), the strings themselves for categorical ones ("" is the missing category)."""
        column = {name: table.column(name).combine_chunks() for name in table.column_names}
        label = column[self.label]
        empty = is_empty_row(list(column.values()), label)
        labels, label_ok = parse_labels(label)
        integer_ok = np.ones(table.num_rows, dtype=bool)
        fields = []
        for name in self.integer_columns:
            values, ok = self.integer_field(column[name])
            integer_ok &= ok
            fields.append(values)
        fields.extend(as_dictionary(column[name]) for name in self.categorical_columns)
        bad = {
            "empty_line": np.flatnonzero(empty),
            "bad_label": np.flatnonzero(~empty & ~label_ok),
            "non_integer": np.flatnonzero(~empty & label_ok & ~integer_ok),
        }
        valid = ~empty & label_ok & integer_ok
        if not valid.all():
            mask = pa.array(valid)
            fields = [pc.filter(f, mask) for f in fields]
            labels = labels[valid]
        return Batch(fields, labels, bad, table.num_rows)


@dataclass
class CriteoFormat(RawFormat):
    """Kaggle Criteo: label, I1-I13, C1-C26; tab-separated without header (the raw train.txt),
    or the comma-separated variant with a `label,I1,...` header and float-formatted integers."""

    def __post_init__(self):
        self.integer_columns = list(CRITEO_INTS)
        self.categorical_columns = list(CRITEO_CATS)

    def layout(self) -> Layout:
        line = first_line(self.path)
        header = line.lower().startswith("label")
        delimiter = "\t" if "\t" in line else ","
        names = ["label", *CRITEO_INTS, *CRITEO_CATS]
        if header and [c.strip() for c in line.split(delimiter)] != names:
            raise DataError(f"{self.path}:1: header is not label,I1..I13,C1..C26")
        return Layout(self.path, delimiter, names, header, label="label", integer_columns=list(CRITEO_INTS),
                      categorical_columns=list(CRITEO_CATS))


@dataclass
class AvazuFormat(RawFormat):
    """Avazu train CSV with header: `id` dropped, label `click`, the 22 other columns categorical
    (raw `hour` included, as in the paper); optional derived hour-of-day and weekday fields."""

    hour_features: bool = False

    def __post_init__(self):
        self.label = "click"
        self.categorical_columns = [c for c in AVAZU_COLUMNS if c not in ("id", "click")]

    @property
    def field_names(self) -> List[str]:
        return [*self.categorical_columns, *(["hour_of_day", "weekday"] if self.hour_features else [])]

    def layout(self) -> Layout:
        names = [c.strip() for c in first_line(self.path).split(",")]
        missing = [c for c in AVAZU_COLUMNS if c not in names]
        if missing:
            raise DataError(f"{self.path}:1: header lacks Avazu columns {missing}")
        return Layout(self.path, ",", names, header=True, label=self.label,
                      categorical_columns=list(self.categorical_columns),
                      unused_columns=[c for c in names if c not in (self.label, *self.categorical_columns)])

    def transform(self, table: pa.Table) -> Batch:
        out = super().transform(table)
        if self.hour_features:
            out.fields.extend(_hour_features(out.fields[self.categorical_columns.index("hour")]))
        return out


def _hour_features(hour: pa.DictionaryArray) -> List[pa.DictionaryArray]:
    """YYMMDDHH -> hour of day and weekday (2000-based dates); unparsable -> "NULL". Computed
    once per distinct hour."""
    text = np.asarray(hour.dictionary.to_numpy(zero_copy_only=False), dtype=str)
    ok = np.char.str_len(text) == 8
    digits = np.where(ok, text, "00010100")
    days = np.array([f"20{d[:2]}-{d[2:4]}-{d[4:6]}" for d in digits], dtype="datetime64[D]")
    weekday = ((days.astype(np.int64) + 3) % 7).astype(str)  # 1970-01-01 was a Thursday (3)
    hod = np.array([d[6:8] for d in digits])
    return [pa.DictionaryArray.from_arrays(hour.indices, pa.array(np.where(ok, keys, MISSING), pa.string()))
            for keys in (hod, weekday)]


@dataclass
class TableFormat(RawFormat):
    """Generic CSV or Parquet with a schema from config: a label column, categorical columns,
    numeric columns bucketed by a rule (criteo_log: the paper's ln^2 rule; log2: floor(log2(1+v))
    with the sign kept; identity: the value itself), columns to drop."""

    numeric_columns: List[str] = field(default_factory=list)
    numeric_rule: NumericRule = NumericRule.criteo_log
    drop: List[str] = field(default_factory=list)
    delimiter: str = ","

    def __post_init__(self):
        self.numeric_rule = choice(NumericRule, self.numeric_rule, "data.schema.numeric_rule")
        self.integer_columns = list(self.numeric_columns)  # numeric columns go through integer_field

    @property
    def field_names(self) -> List[str]:
        return [*self.numeric_columns, *self.categorical_columns]

    @property
    def is_parquet(self) -> bool:
        return self.path.suffix in PARQUET_SUFFIXES

    def _check_schema(self, names: Sequence[str]) -> None:
        """Every column the schema uses must be in the file or a partition folder above it (a
        `drop` column that is not there has nothing to drop: ignored)."""
        names = [*names, *self.partition]
        keys = {"data.schema.label": [self.label], "data.schema.numeric": self.numeric_columns,
                "data.schema.categorical": self.categorical_columns}
        absent = {key: [c for c in columns if c not in names] for key, columns in keys.items()}
        absent = {key: columns for key, columns in absent.items() if columns}
        if absent:
            said = "; ".join(f"{key}: {_listed(columns)}" for key, columns in absent.items())
            raise DataError(f"{self.path}: the schema names columns absent from the file ({said}; set in your data "
                            f"config or as overrides) — the file has {_listed(list(names))}")

    def layout(self) -> Layout:
        names = [c.strip().strip('"') for c in first_line(self.path).split(self.delimiter)]
        self._check_schema(names)
        used = (self.label, *self.numeric_columns, *self.categorical_columns)
        return Layout(self.path, self.delimiter, names, header=True, quoting=True, label=self.label,
                      categorical_columns=[c for c in self.categorical_columns if c in names],
                      unused_columns=[c for c in names if c not in used])

    def file_columns(self) -> List[str]:
        if not self.is_parquet:
            return super().file_columns()
        import pyarrow.parquet as pq

        return list(pq.ParquetFile(self.path).schema_arrow.names)

    def chunks(self) -> Iterator[Chunk]:
        if not self.is_parquet:
            yield from super().chunks()
            return
        import pyarrow.parquet as pq

        parquet = pq.ParquetFile(self.path)
        self._check_schema(parquet.schema_arrow.names)
        columns = [c for c in (self.label, *self.numeric_columns, *self.categorical_columns)
                   if c in parquet.schema_arrow.names]
        check_flat_columns(parquet.schema_arrow, columns, self.path)
        row = 1  # "lines" of a Parquet file are its 1-based row numbers
        for batch in parquet.iter_batches(columns=columns, batch_size=1 << 18):
            arrays = [pc.fill_null(pc.cast(c, pa.string()), "") for c in batch.columns]
            yield self._with_partition(Chunk(pa.Table.from_arrays(arrays, names=columns), row,
                                             np.zeros(0, dtype=np.int64)))
            row += batch.num_rows

    def bucket(self, column: pa.Array) -> Tuple[pa.Array, np.ndarray]:
        if self.numeric_rule == "criteo_log":
            return super().bucket(column)
        missing = np.asarray(pc.equal(pc.utf8_length(column), 0))
        ok = np.asarray(pc.match_substring_regex(column, r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")) | missing
        values = pc.cast(pc.if_else(pa.array(ok & ~missing), column, "0"), pa.float64()).to_numpy()
        if self.numeric_rule == "log2":
            values = np.sign(values) * np.floor(np.log2(1 + np.abs(values)))
        return pa.array(values, mask=missing), ok


def _table_format(path: Path, data_cfg, partition: Dict[str, str]) -> TableFormat:
    schema = data_cfg.schema
    if not schema.label:
        raise DataError("data.schema.label: required for data.kind=csv")
    return TableFormat(path, label=schema.label, categorical_columns=list(schema.categorical),
                       numeric_columns=list(schema.numeric), numeric_rule=schema.numeric_rule,
                       drop=list(schema.drop), delimiter=schema.delimiter, partition=partition)


FORMATS = {  # every DataKind but synthetic, which is generated rather than read
    DataKind.criteo: lambda path, cfg, partition: CriteoFormat(path, partition=partition),
    DataKind.avazu: lambda path, cfg, partition: AvazuFormat(path, partition=partition,
                                                             hour_features=cfg.avazu_hour_features),
    DataKind.csv: _table_format,
}


def make_formats(data_cfg) -> List[RawFormat]:
    """One reader per file of the data config (data.kind: one of FORMATS), every file checked to
    have the first one's columns."""
    if data_cfg.kind not in FORMATS:
        raise DataError(f"data.kind={data_cfg.kind!r}: choose from synthetic, {', '.join(FORMATS)}")
    if not data_cfg.path:
        raise DataError(f"data.path: required for data.kind={data_cfg.kind}")
    days = list(data_cfg.days) if data_cfg.get("days") is not None else None
    files = resolve_files(data_cfg.path, days)
    formats = [FORMATS[data_cfg.kind](check_readable(f.path), data_cfg, dict(f.partition)) for f in files]
    for fmt in formats:  # a small memory cap reads smaller blocks: 32 MB of text parses into ~5x that
        fmt.block_bytes = min(32 << 20, max(4 << 20, memory_cap(data_cfg) // 32))
    if len(formats) > 1:
        _check_same_columns(formats)
    return formats


def _check_same_columns(formats: Sequence[RawFormat]) -> None:
    first = formats[0].file_columns()
    for fmt in formats[1:]:
        columns = fmt.file_columns()
        if columns != first:
            differ = "columns" if len(columns) != len(first) else "column names"
            raise DataError(f"{fmt.path}: {len(columns)} columns, but the first file {formats[0].path.name} has "
                            f"{len(first)}: every file of a dataset needs the same {differ} "
                            f"(first difference: {_first_difference(first, columns)})")


def _first_difference(first: Sequence[str], other: Sequence[str]) -> str:
    for i, (a, b) in enumerate(zip(first, other)):
        if a != b:
            return f"column {i + 1} is {b!r} here, {a!r} there"
    return f"column {min(len(first), len(other)) + 1} is only in one of them"
