"""Raw CTR file formats, read in streaming record batches with pyarrow (never as Python rows).

Every format turns a batch of raw string columns into categorical string columns (the paper
treats every field as categorical) plus 0/1 labels, and reports bad rows by kind:

* ``wrong_column_count`` — a line with too few or too many fields (skipped by the reader);
* ``non_integer`` — a value in an integer column that is not an integer;
* ``bad_label`` — a label other than 0 or 1;
* ``empty_line`` — an empty line.

A missing value is a category of its own: null for integer columns (written "NULL" in the
vocabulary, as the paper does), the empty string for categorical ones.
"""
from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Sequence, Tuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from ..config import DataKind, NumericRule, choice
from .faults import DataError, check_flat_columns

BAD_KINDS = ("wrong_column_count", "non_integer", "bad_label", "empty_line")
MISSING = "NULL"
PARQUET_SUFFIXES = (".parquet", ".pq")
CRITEO_INTS = [f"I{i}" for i in range(1, 14)]
CRITEO_CATS = [f"C{i}" for i in range(1, 27)]
AVAZU_COLUMNS = ["id", "click", "hour", "C1", "banner_pos", "site_id", "site_domain", "site_category", "app_id",
                 "app_domain", "app_category", "device_id", "device_ip", "device_model", "device_type",
                 "device_conn_type", "C14", "C15", "C16", "C17", "C18", "C19", "C20", "C21"]
_INTEGER = r"^[+-]?\d+(\.0*)?$"


@dataclass
class Batch:
    """The valid rows of one record batch, transformed."""

    fields: List[pa.DictionaryArray]  # per output field: codes into a batch-local dictionary of keys
    labels: np.ndarray  # float32 0/1
    bad: Dict[str, np.ndarray]  # kind -> row positions within the raw batch
    raw_rows: int


@dataclass
class Layout:
    """How to split a delimited text file into columns, and what Arrow's reader parses them to."""

    path: Path
    delimiter: str
    column_names: List[str]
    header: bool
    quoting: bool = False
    label: str = ""  # parsed straight to int8 when a block allows it
    # Parsed straight to int64 when a block allows it (blank = null); a block with any other
    # value in the label or these columns is parsed again with them as text, checked row by row.
    integer_columns: List[str] = field(default_factory=list)
    # Dictionary-encoded by the (multithreaded) reader itself, never materialised as strings.
    categorical_columns: List[str] = field(default_factory=list)
    unused_columns: List[str] = field(default_factory=list)  # split, never converted

    def column_types(self, typed: bool) -> Dict[str, pa.DataType]:
        types = {n: pa.string() for n in self.column_names}
        types.update({n: pa.dictionary(pa.int32(), pa.string()) for n in self.categorical_columns})
        if typed:
            types.update({n: pa.int64() for n in self.integer_columns})
            if self.label:
                types[self.label] = pa.int8()
        return types

    @property
    def used_columns(self) -> List[str]:
        return [n for n in self.column_names if n not in self.unused_columns]


def open_text_head(path: Path, nbytes: int = 65536) -> str:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            return fh.read(nbytes).decode("utf-8", errors="replace")
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc})") from exc


def first_line(path: Path) -> str:
    return open_text_head(path).split("\n", 1)[0].rstrip("\r")


def check_readable(path: Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if not path.is_file():
        raise DataError(f"{path}: not a file")
    if path.suffix in PARQUET_SUFFIXES:
        return path
    head = open_text_head(path, 4096)
    if "\x00" in head or head.count("\ufffd") > len(head) // 20:
        raise DataError(f"{path}: binary content, not a text file; give a CSV/TSV (optionally .gz) or a "
                        "Parquet file (.parquet)")
    return path


def _listed(names: Sequence[str], limit: int = 8) -> str:
    """A short, printable list of column names for an error line."""
    shown = [repr(n[:40]) for n in names[:limit]]
    return "[" + ", ".join(shown) + (f", ... {len(names) - limit} more" if len(names) > limit else "") + "]"


@dataclass
class Chunk:
    """Rows parsed from one newline-aligned block of the file."""

    table: pa.Table  # every column as strings; rows with a wrong field count left out
    first_line: int  # file line number (1-based) of the block's first parsed line
    skipped_lines: np.ndarray  # file line numbers of the rows left out


def _blocks(path: Path, block_bytes: int) -> Iterator[bytes]:
    """Newline-aligned blocks of the (possibly gzip) file."""
    opener = gzip.open if path.suffix == ".gz" else open
    carry = b""
    with opener(path, "rb") as fh:
        while True:
            data = fh.read(block_bytes)
            if not data:
                break
            data = carry + data
            cut = data.rfind(b"\n")
            if cut < 0:
                carry = data
                continue
            carry = data[cut + 1:]
            yield data[:cut + 1]
    if carry:
        yield carry + b"\n"


def _wrong_count_offsets(block: bytes, delimiter: str, expected_fields: int) -> np.ndarray:
    """0-based line offsets within a block of non-empty lines with the wrong field count."""
    arr = np.frombuffer(block, dtype=np.uint8)
    ends = np.flatnonzero(arr == ord("\n"))
    starts = np.concatenate([[0], ends[:-1] + 1])
    delims = np.concatenate([[0], np.cumsum(arr == ord(delimiter))])
    counts = delims[ends] - delims[starts]
    lengths = ends - starts - (arr[np.maximum(ends - 1, 0)] == ord("\r"))
    return np.flatnonzero((counts != expected_fields - 1) & (lengths > 0))


def read_chunks(layout: Layout, block_bytes: int = 32 << 20) -> Iterator[Chunk]:
    """The file in newline-aligned blocks, each parsed by Arrow's multithreaded CSV reader, with
    exact line numbers. (Quoted fields must not contain newlines; CTR datasets have none.)"""
    names = layout.column_names
    parse = pcsv.ParseOptions(delimiter=layout.delimiter, quote_char='"' if layout.quoting else False,
                              ignore_empty_lines=False, invalid_row_handler=lambda row: "skip")

    def parse_block(block: bytes, skip: int, typed: bool) -> pa.Table:
        convert = pcsv.ConvertOptions(column_types=layout.column_types(typed), strings_can_be_null=False,
                                      quoted_strings_can_be_null=False, include_columns=layout.used_columns)
        # 4 MB parse blocks: both cores busy on a 32 MB block, few per-block dictionaries to unify
        return pcsv.read_csv(pa.BufferReader(block), read_options=pcsv.ReadOptions(
            column_names=names, skip_rows=skip, use_threads=True, block_size=4 << 20),
            parse_options=parse, convert_options=convert)

    line = 1
    for number, block in enumerate(_blocks(layout.path, block_bytes)):
        skip = 1 if layout.header and number == 0 else 0
        lines_in_block = block.count(b"\n")
        try:
            table = parse_block(block, skip, typed=True)
        except pa.ArrowInvalid:
            table = parse_block(block, skip, typed=False)
        skipped = np.zeros(0, dtype=np.int64)
        if table.num_rows != lines_in_block - skip:
            offsets = _wrong_count_offsets(block, layout.delimiter, len(names))
            skipped = line + offsets[offsets >= skip]
        yield Chunk(table, line + skip, skipped)
        line += lines_in_block


def as_dictionary(column: pa.Array) -> pa.DictionaryArray:
    """The column as codes into a dictionary of its distinct values (null is a value too)."""
    if pa.types.is_dictionary(column.type):
        return column
    return pc.dictionary_encode(column, null_encoding="encode")


def blank(column: pa.Array) -> np.ndarray:
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    if pa.types.is_string(column.type):
        return np.asarray(pc.equal(pc.utf8_length(column), 0))
    return np.asarray(column.is_null())


def is_empty_row(columns: Sequence[pa.Array], label: pa.Array) -> np.ndarray:
    """Rows with every field empty (empty lines); only rows without a label are checked."""
    empty = blank(label)
    if empty.any():
        for column in columns:
            empty &= blank(column)
    return empty


_LABELS = pa.array(["0", "1", "0.0", "1.0"])
_POSITIVE = pa.array(["1", "1.0"])


def parse_labels(column: pa.Array) -> Tuple[np.ndarray, np.ndarray]:
    """(labels, ok): 0/1 labels ("1.0"-style accepted) and which rows have one."""
    if pa.types.is_integer(column.type):  # already parsed by the CSV reader
        values = pc.fill_null(column, -1).to_numpy()
        return (values == 1).astype(np.float32), (values == 0) | (values == 1)
    ok = np.asarray(pc.is_in(column, value_set=_LABELS))
    return np.asarray(pc.is_in(column, value_set=_POSITIVE)).astype(np.float32), ok


def parse_integers(column: pa.Array) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(values, missing, ok) for a column of integers: blanks are missing; "260.0" is 260."""
    if pa.types.is_integer(column.type):  # already parsed by the CSV reader
        return pc.fill_null(column, 0).to_numpy(), np.asarray(column.is_null()), np.ones(len(column), dtype=bool)
    missing = np.asarray(pc.equal(pc.utf8_length(column), 0))
    try:
        values = pc.cast(pc.if_else(missing, "0", column), pa.int64()).to_numpy()
        return values, missing, np.ones(len(column), dtype=bool)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    ok = np.asarray(pc.match_substring_regex(column, _INTEGER)) | missing
    cleaned = pc.replace_substring_regex(pc.if_else(ok & ~missing, column, "0"), r"\.0*$", "")
    return pc.cast(cleaned, pa.int64()).to_numpy(), missing, ok


def criteo_int_transform(values: np.ndarray, missing: np.ndarray) -> pa.Array:
    """The paper's integer feature rule, as integer keys: empty -> null ("NULL");
    v > 2 -> floor(ln(v)^2); else v - 2. (The paper writes them as strings; keys are the same.)"""
    big = values > 2
    out = np.where(big, np.floor(np.log(np.where(big, values, 3).astype(np.float64)) ** 2).astype(np.int64),
                   values - 2)
    return pa.array(out, mask=missing)


@dataclass
class RawFormat:
    """Base: a delimited text file with a label column, integer columns and categorical columns."""

    path: Path
    label: str = "label"
    integer_columns: List[str] = field(default_factory=list)
    categorical_columns: List[str] = field(default_factory=list)

    def layout(self) -> Layout:
        raise NotImplementedError

    @property
    def field_names(self) -> List[str]:
        return [*self.integer_columns, *self.categorical_columns]

    def chunks(self) -> Iterator[Chunk]:
        return read_chunks(self.layout())

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
        wanted = [self.label, *self.numeric_columns, *self.categorical_columns, *self.drop]
        absent = [c for c in wanted if c not in names]
        if absent:
            raise DataError(f"{self.path}: schema names columns absent from the file: {_listed(absent)} "
                            f"(the file has {_listed(list(names))})")

    def layout(self) -> Layout:
        names = [c.strip().strip('"') for c in first_line(self.path).split(self.delimiter)]
        self._check_schema(names)
        used = (self.label, *self.numeric_columns, *self.categorical_columns)
        return Layout(self.path, self.delimiter, names, header=True, quoting=True, label=self.label,
                      categorical_columns=list(self.categorical_columns),
                      unused_columns=[c for c in names if c not in used])

    def chunks(self) -> Iterator[Chunk]:
        if not self.is_parquet:
            yield from super().chunks()
            return
        import pyarrow.parquet as pq

        parquet = pq.ParquetFile(self.path)
        self._check_schema(parquet.schema_arrow.names)
        columns = [self.label, *self.numeric_columns, *self.categorical_columns]
        check_flat_columns(parquet.schema_arrow, columns, self.path)
        row = 1  # "lines" of a Parquet file are its 1-based row numbers
        for batch in parquet.iter_batches(columns=columns, batch_size=1 << 18):
            arrays = [pc.fill_null(pc.cast(c, pa.string()), "") for c in batch.columns]
            yield Chunk(pa.Table.from_arrays(arrays, names=columns), row, np.zeros(0, dtype=np.int64))
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


def _table_format(path: Path, data_cfg) -> TableFormat:
    schema = data_cfg.schema
    if not schema.label:
        raise DataError("data.schema.label: required for data.kind=csv")
    return TableFormat(path, label=schema.label, categorical_columns=list(schema.categorical),
                       numeric_columns=list(schema.numeric), numeric_rule=schema.numeric_rule,
                       drop=list(schema.drop), delimiter=schema.delimiter)


FORMATS = {  # every DataKind but synthetic, which is generated rather than read
    DataKind.criteo: lambda path, cfg: CriteoFormat(path),
    DataKind.avazu: lambda path, cfg: AvazuFormat(path, hour_features=cfg.avazu_hour_features),
    DataKind.csv: _table_format,
}


def make_format(data_cfg) -> RawFormat:
    """The reader a data config asks for (data.kind: one of FORMATS)."""
    if data_cfg.kind not in FORMATS:
        raise DataError(f"data.kind={data_cfg.kind!r}: choose from synthetic, {', '.join(FORMATS)}")
    if not data_cfg.path:
        raise DataError(f"data.path: required for data.kind={data_cfg.kind}")
    return FORMATS[data_cfg.kind](check_readable(Path(data_cfg.path).expanduser()), data_cfg)
