"""Reading raw CTR text in streaming record batches with pyarrow (never as Python rows), and the
parsing every source shares (sources.py has the Criteo, Avazu and schema'd CSV/Parquet ones).

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
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from .faults import DataError

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


BOM = b"\xef\xbb\xbf"  # the UTF-8 byte-order mark Excel's "CSV UTF-8" starts with


def first_line(path: Path) -> str:
    return open_text_head(path).split("\n", 1)[0].rstrip("\r").lstrip("\ufeff")


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
        if "\x00" not in head and _single_byte_text(path):
            raise DataError(f"{path}: not UTF-8 text (a single-byte encoding such as Latin-1?); convert it first, "
                            f"e.g. iconv -f latin1 -t utf-8 {path.name} > {path.stem}.utf8{path.suffix}")
        raise DataError(f"{path}: binary content, not a text file; give a CSV/TSV (optionally .gz) or a "
                        "Parquet file (.parquet)")
    return path


def _single_byte_text(path: Path) -> bool:
    """Text in a single-byte encoding: printable once read as Latin-1 (binary data is not)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        text = fh.read(4096).decode("latin-1")
    return sum(ch.isprintable() or ch in "\r\n\t" for ch in text) >= 0.95 * len(text)


def _listed(names: Sequence[str], limit: int = 8) -> str:
    """A short, printable list of column names for an error line."""
    shown = [repr(n[:40]) for n in names[:limit]]
    return "[" + ", ".join(shown) + (f", ... {len(names) - limit} more" if len(names) > limit else "") + "]"


@dataclass
class Chunk:
    """Rows parsed from one row-aligned block of the file."""

    table: pa.Table  # every column as strings; rows with a wrong field count left out
    first_line: int  # file line number (1-based) of the block's first parsed line
    skipped_lines: np.ndarray  # file line numbers of the rows left out
    # The starting line of every row of the block (after a header), when some row spans several
    # lines (a quoted field with a newline); None when each row is one line.
    row_lines: Optional[np.ndarray] = None


def _row_ends(data: bytes, quoting: bool) -> np.ndarray:
    """Byte offsets of the newlines that end a row: every newline, or with quoting only those
    outside a quoted field (an even number of quote characters before them)."""
    arr = np.frombuffer(data, dtype=np.uint8)
    newlines = np.flatnonzero(arr == ord("\n"))
    if not quoting or b'"' not in data:
        return newlines
    return newlines[~_inside_quotes(arr)[newlines]]


def _inside_quotes(arr: np.ndarray) -> np.ndarray:
    """Per byte: after an odd number of quote characters (one byte each, not an int64 count)."""
    return np.logical_xor.accumulate(arr == ord('"'))


def _blocks(path: Path, block_bytes: int, quoting: bool = False) -> Iterator[bytes]:
    """Row-aligned blocks of the (possibly gzip) file, without a leading byte-order mark."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        head = fh.read(len(BOM))
        carry = b"" if head == BOM else head
        while True:
            data = fh.read(block_bytes)
            if not data:
                break
            data = carry + data
            ends = _row_ends(data, quoting)
            if not len(ends):
                carry = data
                continue
            cut = int(ends[-1])
            carry = data[cut + 1:]
            yield data[:cut + 1]
    if carry:
        yield carry + b"\n"


def _wrong_count_offsets(block: bytes, delimiter: str, expected_fields: int, ends: np.ndarray,
                         quoting: bool) -> np.ndarray:
    """0-based row offsets within a block of non-empty rows with the wrong field count
    (delimiters inside quoted fields do not count)."""
    arr = np.frombuffer(block, dtype=np.uint8)
    starts = np.concatenate([[0], ends[:-1] + 1])
    is_delim = arr == ord(delimiter)
    if quoting and b'"' in block:
        is_delim &= ~_inside_quotes(arr)
    delims = np.flatnonzero(is_delim)  # positions, not a running count per byte: memory per row, not per byte
    counts = np.searchsorted(delims, ends) - np.searchsorted(delims, starts)
    lengths = ends - starts - (arr[np.maximum(ends - 1, 0)] == ord("\r"))
    return np.flatnonzero((counts != expected_fields - 1) & (lengths > 0))


def read_chunks(layout: Layout, block_bytes: int = 32 << 20) -> Iterator[Chunk]:
    """The file in row-aligned blocks, each parsed by Arrow's multithreaded CSV reader, with
    exact line numbers: a row is named by the line it starts on (a quoted field may hold newlines)."""
    names = layout.column_names

    def parse_block(block: bytes, skip: int, typed: bool, multiline: bool) -> pa.Table:
        # newlines inside values slow Arrow's threaded reader: allowed only in blocks that have them
        parse = pcsv.ParseOptions(delimiter=layout.delimiter, quote_char='"' if layout.quoting else False,
                                  newlines_in_values=multiline, ignore_empty_lines=False,
                                  invalid_row_handler=lambda row: "skip")
        convert = pcsv.ConvertOptions(column_types=layout.column_types(typed), strings_can_be_null=False,
                                      quoted_strings_can_be_null=False, include_columns=layout.used_columns)
        # 4 MB parse blocks: both cores busy on a 32 MB block, few per-block dictionaries to unify
        return pcsv.read_csv(pa.BufferReader(block), read_options=pcsv.ReadOptions(
            column_names=names, skip_rows=skip, use_threads=True, block_size=4 << 20),
            parse_options=parse, convert_options=convert)

    line = 1
    for number, block in enumerate(_blocks(layout.path, block_bytes, layout.quoting)):
        skip = 1 if layout.header and number == 0 else 0
        lines_in_block = block.count(b"\n")
        ends = _row_ends(block, layout.quoting)
        multiline = len(ends) != lines_in_block
        # the line each row starts on: with one line per row, the row's number
        before = np.arange(1, len(ends)) if not multiline else np.searchsorted(
            np.flatnonzero(np.frombuffer(block, np.uint8) == ord("\n")), ends[:-1], side="right")
        starts = line + np.concatenate([[0], before])
        try:
            table = parse_block(block, skip, True, multiline)
        except pa.ArrowInvalid:
            table = parse_block(block, skip, False, multiline)
        skipped = np.zeros(0, dtype=np.int64)
        if table.num_rows != len(ends) - skip:
            offsets = _wrong_count_offsets(block, layout.delimiter, len(names), ends, layout.quoting)
            skipped = starts[offsets[offsets >= skip]]
        yield Chunk(table, int(starts[skip]) if len(starts) > skip else line + skip, skipped,
                    starts[skip:] if multiline else None)
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


_LABELS = pa.array(["0", "1", "0.0", "1.0", "true", "false", "True", "False", "TRUE", "FALSE"])
_POSITIVE = pa.array(["1", "1.0", "true", "True", "TRUE"])


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
