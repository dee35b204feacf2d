"""What preparing a dataset keeps on disk rather than in memory: each batch's dictionary codes
(BufferedRows) and dictionaries (DictionarySpill), and the per-field value counts
(ValueCounter), which spill to hash-partitioned files past their memory budget."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator, List, Optional, Tuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

MERGE_EVERY = 8  # batches between merges of partial value counts


def memory_cap(data_cfg) -> int:
    """data.prepare_memory in bytes: what preparing a dataset may hold (see prepare.build_cache
    for how it is shared out)."""
    return int(float(data_cfg.get("prepare_memory") or 8.0) * (1 << 30))


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
    """Per-field value counts, merged in Arrow (no Python object per distinct value). Past
    `memory_bytes` of held counts, a field's counts are hash-partitioned into SPILL_PARTS files
    under `folder`; the vocabularies are then counted one partition at a time, so the most any
    moment holds is one partition of one field (and the values kept)."""

    def __init__(self, num_fields: int, folder: Optional[Path] = None, memory_bytes: int = 1 << 62):
        self.partial: List[List[pa.Table]] = [[] for _ in range(num_fields)]
        self.held = [0] * num_fields
        self.folder, self.memory_bytes = folder, memory_bytes
        self.spills: List[List[Path]] = [[] for _ in range(num_fields)]  # one file per spill per part
        self.spilled_bytes = 0

    def add(self, f: int, dictionary: pa.Array, counts: np.ndarray) -> None:
        table = pa.table({"value": dictionary, "count": pa.array(counts, pa.int64())})
        self.partial[f].append(table)
        self.held[f] += table.nbytes
        if len(self.partial[f]) >= MERGE_EVERY:
            self.partial[f] = [self._merge(self.partial[f])]
            self.held[f] = self.partial[f][0].nbytes
        if self.folder is not None and sum(self.held) > self.memory_bytes:
            self._spill(max(range(len(self.held)), key=self.held.__getitem__))

    def _spill(self, f: int) -> None:
        merged = self._merge(self.partial[f])
        parts = partition_of(merged["value"].combine_chunks(), SPILL_PARTS)
        order = np.argsort(parts, kind="stable")
        bounds = np.searchsorted(parts[order], np.arange(SPILL_PARTS + 1))
        sorted_table = merged.take(pa.array(order))
        for p in range(SPILL_PARTS):
            path = self.folder / f"counts_{f}_{p}_{len(self.spills[f]) // SPILL_PARTS}.arrow"
            with pa.ipc.new_file(str(path), sorted_table.schema) as writer:
                writer.write_table(sorted_table.slice(bounds[p], bounds[p + 1] - bounds[p]))
            self.spills[f].append(path)
        self.spilled_bytes += merged.nbytes
        self.partial[f], self.held[f] = [], 0

    @staticmethod
    def _merge(tables: List[pa.Table]) -> pa.Table:
        table = pa.concat_tables(tables).group_by("value").aggregate([("count", "sum")])
        return table.rename_columns(["value", "count"])

    def vocabularies(self, min_count: int) -> List[pa.Table]:
        """Per field: values with count >= min_count, by count descending then value ascending
        (the missing value, null, last among equal counts)."""
        return [self._vocabulary(f, min_count) for f in range(len(self.partial))]

    def _vocabulary(self, f: int, min_count: int) -> pa.Table:
        if self.spills[f] and self.partial[f]:
            self._spill(f)
        if self.spills[f]:
            kept = []
            for p in range(SPILL_PARTS):
                pieces = [pa.ipc.open_file(str(path)).read_all() for path in self.spills[f][p::SPILL_PARTS]]
                merged = self._merge(pieces)
                kept.append(merged.filter(pc.greater_equal(merged["count"], min_count)))
            kept_table = pa.concat_tables(kept)
        else:
            merged = self._merge(self.partial[f])
            kept_table = merged.filter(pc.greater_equal(merged["count"], min_count))
        return kept_table.sort_by([("count", "descending"), ("value", "ascending", "at_end")])

    def remove(self) -> None:
        for paths in self.spills:
            for path in paths:
                path.unlink(missing_ok=True)


SPILL_PARTS = 16


def partition_of(values: pa.Array, parts: int) -> np.ndarray:
    """A partition in [0, parts) per value, from its content alone (the same value always lands
    in the same partition); nulls in partition 0."""
    if pa.types.is_string(values.type) or pa.types.is_binary(values.type) or \
            pa.types.is_large_string(values.type) or pa.types.is_large_binary(values.type):
        codes = _bytes_hash(values)
    else:
        numbers = pc.fill_null(pc.cast(values, pa.float64()), 0.0).to_numpy(zero_copy_only=False)
        codes = np.frombuffer(numbers.astype(np.float64).tobytes(), dtype=np.uint64).copy()
        codes ^= codes >> np.uint64(33)  # murmur3's finaliser: every input bit reaches the low bits
        codes *= np.uint64(0xFF51AFD7ED558CCD)
        codes ^= codes >> np.uint64(33)
    parts_of = (codes % np.uint64(parts)).astype(np.int64)
    if values.null_count:
        parts_of[np.asarray(pc.is_null(values))] = 0
    return parts_of


def _bytes_hash(values: pa.Array) -> np.ndarray:
    """A multiplicative hash of each string's bytes, vectorised over the Arrow buffers."""
    wide = values.type in (pa.large_string(), pa.large_binary())
    offsets = np.frombuffer(values.buffers()[1], dtype=np.int64 if wide else np.int32)
    offsets = offsets[values.offset:values.offset + len(values) + 1].astype(np.int64)
    data = values.buffers()[2]
    raw = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)
    lengths = np.diff(offsets)
    owner = np.repeat(np.arange(len(values)), lengths)
    position = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    weights = ((position + 1) * 2654435761) % 4294967291
    sums = np.bincount(owner, weights=raw[np.repeat(offsets[:-1], lengths) + position] * weights.astype(np.float64),
                       minlength=len(values))
    return sums.astype(np.uint64) ^ lengths.astype(np.uint64) * np.uint64(40503)


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
        start = 0
        with self.x_path.open("rb") as fh:  # read, not mapped: pages already used do not stay resident
            for n in self.batch_rows:
                yield start, np.fromfile(fh, dtype=np.int32, count=n * self.num_fields).reshape(self.num_fields, n)
                start += n

    def remove(self) -> None:
        self.in_memory = []
        self.x_path.unlink(missing_ok=True)
