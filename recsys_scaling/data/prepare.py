"""Raw file -> encoded cache, with the paper's preprocessing.

One parse pass validates every row (bad rows counted by kind, with the first line numbers),
stores each batch's dictionary codes and counts each field's values; the codes are then remapped
to the vocabulary without parsing the file again. Per field, values seen fewer than `min_count` times map
to index 0 (the field's OOV index); the others get 1.. in order of count (descending), then
value (ascending bytes): the same on every machine and process.

`vocab_scope`: `all` counts values over every row (the paper); `train` counts them over the
training split only, so validation and test values unseen in training are OOV.
"""
from __future__ import annotations

import logging
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..config import VocabScope, choice
from ..runtime import cpu_count
from .cache import CacheWriter, EncodedData, open_or_build, seeded_split
from .faults import DataError, check_labels, reading
from .identity import content_hash
from .formats import BAD_KINDS, MISSING, Batch
from .sources import RawFormat, make_format
from .prefetch import prefetched

log = logging.getLogger(__name__)
FIRST_LINES_KEPT = 10
MERGE_EVERY = 8  # batches between merges of partial value counts


@dataclass
class BadRows:
    """Bad rows by kind: how many, and the first line numbers (1-based, in the file)."""

    counts: Dict[str, int] = field(default_factory=lambda: {k: 0 for k in BAD_KINDS})
    first_lines: Dict[str, List[int]] = field(default_factory=lambda: {k: [] for k in BAD_KINDS})

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def as_dict(self) -> dict:
        return {k: {"count": self.counts[k], "first_lines": self.first_lines[k]} for k in BAD_KINDS}

    def summary(self) -> str:
        parts = [f"{k} {n} (first at line{'s' if n > 1 else ''} "
                 f"{', '.join(map(str, self.first_lines[k][:5]))})" for k, n in self.counts.items() if n]
        return "; ".join(parts)


class LineMap:
    """Maps a parsed row's position within a chunk to its file line (the line it starts on)."""

    def __init__(self, first_line: int, skipped_lines: np.ndarray, row_lines: Optional[np.ndarray] = None):
        self.first_line = first_line
        self.parsed_before = (np.sort(skipped_lines) - first_line) - np.arange(len(skipped_lines))
        self.kept = None if row_lines is None else row_lines[~np.isin(row_lines, skipped_lines)]

    def lines(self, positions: np.ndarray) -> np.ndarray:
        if self.kept is not None:
            return self.kept[np.asarray(positions, dtype=np.int64)]
        return self.first_line + positions + np.searchsorted(self.parsed_before, positions, side="right")


@dataclass
class Scan:
    """One streaming pass over the raw file: transformed batches, bad rows recorded by line."""

    fmt: RawFormat
    strict: bool = False
    progress: bool = False
    bad: BadRows = field(default_factory=BadRows)
    valid_rows: int = 0

    def __iter__(self) -> Iterator[Batch]:
        bar = _progress_bar("parsing" if self.progress else None)
        try:
            with reading(self.fmt.path):
                yield from self._batches(bar)
        finally:  # an error line starts on a line of its own
            if bar is not None:
                bar.close()

    def _batches(self, bar) -> Iterator[Batch]:
        for chunk in prefetched(self.fmt.chunks()):  # parse the next block while this one is encoded
            batch = self.fmt.transform(chunk.table)
            found = {"wrong_column_count": chunk.skipped_lines}
            line_map = LineMap(chunk.first_line, chunk.skipped_lines, chunk.row_lines)
            found.update({kind: line_map.lines(pos) for kind, pos in batch.bad.items()})
            self._record(found)
            yield batch
            self.valid_rows += len(batch.labels)
            if bar is not None:
                bar.update(batch.raw_rows + len(chunk.skipped_lines))

    def _record(self, found: Dict[str, np.ndarray]) -> None:
        found = {k: v for k, v in found.items() if len(v)}
        if found and self.strict:
            kind, lines = min(found.items(), key=lambda kv: kv[1].min())
            raise DataError(f"{self.fmt.path}:{int(lines.min())}: {kind.replace('_', ' ')} (data.strict=true)")
        for kind, lines in found.items():
            self.bad.counts[kind] += len(lines)
            room = FIRST_LINES_KEPT - len(self.bad.first_lines[kind])
            self.bad.first_lines[kind].extend(int(v) for v in np.sort(lines)[:room])


def _progress_bar(label: Optional[str]):
    """A bar on a terminal only (in a log or a pipe it would only garble the lines)."""
    if label is None or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(desc=label, unit="rows", unit_scale=True, mininterval=0.5, leave=False)


class DictionarySpill:
    """Per-batch dictionaries of every field, streamed to Arrow IPC files and read back in order:
    memory stays O(batch) however many distinct values a field has."""

    def __init__(self, folder: Path, num_fields: int):
        self.paths = [folder / f"dictionary_{f}.arrow" for f in range(num_fields)]
        self.writers: List[Optional[pa.ipc.RecordBatchStreamWriter]] = [None] * num_fields

    def append(self, f: int, dictionary: pa.Array) -> None:
        if self.writers[f] is None:
            self.writers[f] = pa.ipc.new_stream(str(self.paths[f]), pa.schema([("value", dictionary.type)]))
        self.writers[f].write_batch(pa.record_batch([dictionary], names=["value"]))

    def close(self) -> None:
        for writer in self.writers:
            if writer is not None:
                writer.close()

    def batches(self) -> Iterator[List[pa.Array]]:
        readers = [pa.ipc.open_stream(str(p)) for p in self.paths]
        while True:
            try:
                yield [reader.read_next_batch().column(0) for reader in readers]
            except StopIteration:
                return

    def remove(self) -> None:
        for path in self.paths:
            path.unlink(missing_ok=True)


class ValueCounter:
    """Per-field value counts, merged in Arrow (no Python object per distinct value)."""

    def __init__(self, num_fields: int):
        self.partial: List[List[pa.Table]] = [[] for _ in range(num_fields)]

    def add(self, f: int, dictionary: pa.Array, counts: np.ndarray) -> None:
        self.partial[f].append(pa.table({"value": dictionary, "count": pa.array(counts, pa.int64())}))
        if len(self.partial[f]) >= MERGE_EVERY:
            self.partial[f] = [self._merge(self.partial[f])]

    @staticmethod
    def _merge(tables: List[pa.Table]) -> pa.Table:
        table = pa.concat_tables(tables).group_by("value").aggregate([("count", "sum")])
        return table.rename_columns(["value", "count"])

    def vocabularies(self, min_count: int) -> List[pa.Table]:
        """Per field: values with count >= min_count, by count descending then value ascending
        (the missing value, null, last among equal counts)."""
        vocabularies = []
        for tables in self.partial:
            merged = self._merge(tables)
            kept = merged.filter(pc.greater_equal(merged["count"], min_count))
            vocabularies.append(kept.sort_by([("count", "descending"), ("value", "ascending", "at_end")]))
        return vocabularies


def input_fingerprint(path: Path, memo_dir: Optional[Path] = None, progress: bool = False) -> dict:
    """The input file by content (not by name or mtime): a file moved or touched keeps its
    cache and its jobs; a file rewritten in place gets new ones."""
    return {"bytes": path.stat().st_size, "blake2b": content_hash(path, memo_dir, progress)}


def prepare_settings(data_cfg, progress: bool = False) -> dict:
    """Everything the encoded cache depends on: the input's content and the preprocessing."""
    from omegaconf import OmegaConf

    fmt = make_format(data_cfg)
    return {
        "kind": data_cfg.kind,
        "input": input_fingerprint(fmt.path, Path(data_cfg.cache_dir), progress),
        "min_count": int(data_cfg.min_count),
        "vocab_scope": data_cfg.vocab_scope,
        "split": list(data_cfg.split),
        "split_seed": int(data_cfg.split_seed),
        "avazu_hour_features": bool(data_cfg.avazu_hour_features),
        "schema": OmegaConf.to_container(data_cfg.schema, resolve=True) if data_cfg.kind == "csv" else None,
    }


WHY_BAD = {"bad_label": "labels must be 0 or 1 (or true/false); soft labels (probabilities) are not read",
           "wrong_column_count": "rows with another number of columns than the file's (check the delimiter)",
           "non_integer": "values that are not integers in integer columns",
           "empty_line": "empty lines"}


def check_bad_share(path: Path, valid: int, bad: BadRows, limit: float) -> None:
    """No valid rows, or more bad rows than data.max_bad_fraction allows: one line, with the main
    reason and how to let it through."""
    total = valid + bad.total
    if valid and bad.total <= limit * total:
        return
    kind = max(bad.counts, key=bad.counts.get)
    lines = ", ".join(map(str, bad.first_lines[kind][:3]))
    reason = f"{bad.counts[kind]:,} {kind} ({WHY_BAD[kind]}; first at line {lines})" if bad.total else "an empty file"
    if not valid:
        raise DataError(f"{path}: no valid rows: {reason}")
    raise DataError(f"{path}: {bad.total:,} of {total:,} rows ({bad.total / total:.0%}) are bad, more than "
                    f"data.max_bad_fraction={limit:g} allows; mostly {reason}. Fix the file, or set "
                    f"data.max_bad_fraction={min(1.0, round(bad.total / total + 0.005, 2)):g} to skip them")


def build_cache(path: Path, fp: str, data_cfg, settings: dict, progress: bool) -> Path:
    """One parse pass stores each batch's per-field dictionary indices in X (and the
    dictionaries on disk); once the vocabularies are known, X is remapped in place."""
    fmt = make_format(data_cfg)
    names = fmt.field_names
    scope = choice(VocabScope, data_cfg.vocab_scope, "data.vocab_scope")
    writer = CacheWriter(path, names)
    spill = DictionarySpill(writer.tmp_dir, len(names))
    try:
        counter = ValueCounter(len(names))
        scan = Scan(fmt, strict=data_cfg.strict, progress=progress)
        local = BufferedRows(writer.tmp_dir, len(names))
        for batch in scan:
            codes = np.empty((len(names), len(batch.labels)), dtype=np.int32)  # field-major
            for f, column in enumerate(batch.fields):
                codes[f] = column.indices.to_numpy(zero_copy_only=False)
                spill.append(f, column.dictionary)
                if scope == "all":
                    counter.add(f, column.dictionary, np.bincount(codes[f], minlength=len(column.dictionary)))
            local.append(codes, batch.labels)
        spill.close()
        rows = scan.valid_rows
        check_bad_share(fmt.path, rows, scan.bad, float(data_cfg.max_bad_fraction))
        if scan.bad.total:
            log.warning("%s: skipped %d bad rows: %s", fmt.path, scan.bad.total, scan.bad.summary())
        with ThreadPoolExecutor(1) as background:  # the split is drawn while X is remapped
            split = background.submit(seeded_split, rows, list(data_cfg.split), int(data_cfg.split_seed))
            y = local.finish()
            if scope == "train":
                _count_training_rows(counter, spill, local, split.result()["train"], rows)
            vocabularies = counter.vocabularies(int(data_cfg.min_count))
            writer.allocate(rows)
            _remap(writer, spill, local, vocabularies)
            splits = split.result()
        writer.y[:] = y
        check_labels(y, splits, str(fmt.path), int(data_cfg.min_class_rows))
        local.remove()
        spill.remove()
        _write_vocabularies(writer.tmp_dir / "vocab.parquet", names, vocabularies)
        meta = {
            "source": data_cfg.kind,
            "fingerprint": fp,
            "rows": rows,
            "positive_rate": float(np.mean(y)),
            "bad_rows": scan.bad.as_dict(),
            "settings": settings,
            "source_path": str(fmt.path.resolve()),
            "oov_index": 0,
        }
        return writer.commit([v.num_rows + 1 for v in vocabularies], splits, meta)
    except BaseException:
        spill.close()
        writer.abort()
        raise


class BufferedRows:
    """Each batch's field-major dictionary codes and its labels, kept in memory up to
    `memory_bytes` and appended to a raw file beyond it, then read back batch by batch."""

    def __init__(self, folder: Path, num_fields: int, memory_bytes: int = 512 << 20):
        self.num_fields, self.memory_bytes = num_fields, memory_bytes
        self.x_path = folder / "codes.int32"
        self.in_memory: List[np.ndarray] = []
        self.buffered_bytes = 0
        self.x_file = None
        self.labels: List[np.ndarray] = []
        self.batch_rows: List[int] = []

    def append(self, codes: np.ndarray, labels: np.ndarray) -> None:
        if self.x_file is None and self.buffered_bytes + codes.nbytes > self.memory_bytes:
            self.x_file = self.x_path.open("wb")
            for held in self.in_memory:
                held.tofile(self.x_file)
            self.in_memory = []
        if self.x_file is None:
            self.in_memory.append(codes)
            self.buffered_bytes += codes.nbytes
        else:
            codes.tofile(self.x_file)
        self.labels.append(labels.astype(np.float32))
        self.batch_rows.append(len(labels))

    def finish(self) -> np.ndarray:
        if self.x_file is not None:
            self.x_file.close()
        return np.concatenate(self.labels) if self.labels else np.zeros(0, dtype=np.float32)

    def batches(self) -> Iterator[Tuple[int, np.ndarray]]:
        """(first row, codes of shape fields x rows) per batch."""
        if self.x_file is None:
            yield from zip(np.cumsum([0, *self.batch_rows[:-1]]).tolist(), self.in_memory)
            return
        codes = np.memmap(self.x_path, dtype=np.int32, mode="r")
        start = 0
        for n in self.batch_rows:
            offset = start * self.num_fields
            yield start, codes[offset:offset + n * self.num_fields].reshape(self.num_fields, n)
            start += n

    def remove(self) -> None:
        self.in_memory = []
        self.x_path.unlink(missing_ok=True)


def _count_training_rows(counter: ValueCounter, spill: DictionarySpill, local: BufferedRows,
                         train_rows: np.ndarray, rows: int) -> None:
    in_train = np.zeros(rows, dtype=bool)
    in_train[train_rows] = True
    for (start, codes), dictionaries in zip(local.batches(), spill.batches()):
        mask = in_train[start:start + codes.shape[1]]
        for f, dictionary in enumerate(dictionaries):
            counter.add(f, dictionary, np.bincount(codes[f][mask], minlength=len(dictionary)))


def _remap(writer: CacheWriter, spill: DictionarySpill, local: BufferedRows, vocabularies: List[pa.Table]) -> None:
    """Batch-local dictionary codes -> global indices (0 = OOV, then 1.. in vocabulary order),
    written into X. Batches are independent, so they are remapped on every core (numpy's
    gathers and Arrow's lookups release the GIL); at most two per core are in flight."""
    value_sets = [v["value"].combine_chunks() for v in vocabularies]

    def remap_batch(start: int, codes: np.ndarray, dictionaries: List[pa.Array]) -> None:
        encoded = np.empty_like(codes)
        for f, dictionary in enumerate(dictionaries):
            lookup = pc.fill_null(pc.index_in(dictionary, value_set=value_sets[f], skip_nulls=False), -1)
            np.take(lookup.to_numpy(zero_copy_only=False).astype(np.int32) + 1, codes[f], out=encoded[f])
        writer.X[start:start + codes.shape[1]] = encoded.T

    workers = cpu_count()
    with ThreadPoolExecutor(workers) as pool:
        in_flight: List[Future] = []
        for (start, codes), dictionaries in zip(local.batches(), spill.batches()):
            in_flight.append(pool.submit(remap_batch, start, codes, dictionaries))
            if len(in_flight) >= 2 * workers:
                in_flight.pop(0).result()
        for future in in_flight:
            future.result()


def _write_vocabularies(path: Path, names: List[str], vocabularies: List[pa.Table]) -> None:
    """vocab.parquet: field, index (1..; 0 is OOV), value (as text; "NULL" = missing), count."""
    parts = [pa.table({"field": pa.array([name] * v.num_rows, pa.string()),
                       "index": pa.array(np.arange(1, v.num_rows + 1), pa.int32()),
                       "value": pc.fill_null(pc.cast(v["value"], pa.string()), MISSING),
                       "count": v["count"]}) for name, v in zip(names, vocabularies)]
    pq.write_table(pa.concat_tables(parts), path)


def prepare_dataset(data_cfg, progress: bool = False) -> EncodedData:
    """The verified cache for a raw-file data config, built when missing, stale or damaged."""
    settings = prepare_settings(data_cfg, progress)
    data = open_or_build(Path(data_cfg.cache_dir), data_cfg.name, settings,
                         lambda path, fp: build_cache(path, fp, data_cfg, settings, progress))
    # also for a cache built before this check existed, or with another data.min_class_rows
    check_labels(data.y, data.splits, str(data_cfg.path), int(data_cfg.min_class_rows))
    if data_cfg.strict:
        check_strict(data)
    return data


def check_strict(data: EncodedData) -> None:
    """data.strict=true on a cache built leniently: fail on the first bad row it recorded (the
    cache is the same with or without strict, so a reused one must be checked too)."""
    bad = {kind: info for kind, info in (data.meta.get("bad_rows") or {}).items() if info["count"]}
    if not bad:
        return
    line, kind = min((min(info["first_lines"]), kind) for kind, info in bad.items())
    total = sum(info["count"] for info in bad.values())
    source = data.meta.get("source_path") or "the data file"
    raise DataError(f"{source}:{line}: {kind.replace('_', ' ')} "
                    f"(data.strict=true; the cache at {data.path} recorded {total} bad rows)")
