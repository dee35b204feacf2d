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
import os
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..config import SplitBy, VocabScope, choice
from ..runtime import cpu_count
from .cache import CacheWriter, EncodedData, open_or_build, seeded_split
from .files import file_times, time_name
from .faults import DataError, check_labels, reading
from .identity import content_hash
from .formats import BAD_KINDS, MISSING, Batch
from .sources import RawFormat, make_formats
from .splits import check_times, files_meta, time_split
from .prefetch import prefetched
from .spill import BufferedRows, DictionarySpill, ValueCounter, memory_cap

log = logging.getLogger(__name__)
FIRST_LINES_KEPT = 10


@dataclass
class BadRows:
    """Bad rows by kind: how many, and the first line numbers (1-based, in the file)."""

    counts: Dict[str, int] = field(default_factory=lambda: {k: 0 for k in BAD_KINDS})
    first_lines: Dict[str, List[int]] = field(default_factory=lambda: {k: [] for k in BAD_KINDS})
    files: Dict[str, List[str]] = field(default_factory=dict)  # several files: the file of each first line

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def as_dict(self) -> dict:
        return {k: {"count": self.counts[k], "first_lines": self.first_lines[k],
                    **({"files": self.files[k]} if k in self.files else {})} for k in BAD_KINDS}

    def where(self, kind: str, limit: int = 5) -> List[str]:
        """The first lines of a kind, as file:line when there are several files."""
        lines = self.first_lines[kind][:limit]
        if kind not in self.files:
            return [str(v) for v in lines]
        return [f"{name}:{line}" for name, line in zip(self.files[kind], lines)]

    def summary(self) -> str:
        parts = [f"{k} {n} (first at line{'s' if n > 1 else ''} {', '.join(self.where(k))})"
                 for k, n in self.counts.items() if n]
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
    """One streaming pass over the raw files, in order: transformed batches, bad rows recorded
    by file and line, the valid rows of each file."""

    formats: List[RawFormat]
    strict: bool = False
    progress: bool = False
    bad: BadRows = field(default_factory=BadRows)
    valid_rows: int = 0
    file_rows: List[int] = field(default_factory=list)

    def __iter__(self) -> Iterator[Batch]:
        bar = _progress_bar("parsing" if self.progress else None)
        try:
            for fmt in self.formats:
                before = self.valid_rows
                with reading(fmt.path):
                    yield from self._batches(fmt, bar)
                self.file_rows.append(self.valid_rows - before)
        finally:  # an error line starts on a line of its own
            if bar is not None:
                bar.close()

    def _batches(self, fmt: RawFormat, bar) -> Iterator[Batch]:
        for chunk in prefetched(fmt.chunks()):  # parse the next block while this one is encoded
            batch = fmt.transform(chunk.table)
            found = {"wrong_column_count": chunk.skipped_lines}
            line_map = LineMap(chunk.first_line, chunk.skipped_lines, chunk.row_lines)
            found.update({kind: line_map.lines(pos) for kind, pos in batch.bad.items()})
            self._record(fmt.path, found)
            yield batch
            self.valid_rows += len(batch.labels)
            if bar is not None:
                bar.update(batch.raw_rows + len(chunk.skipped_lines))

    def _record(self, path: Path, found: Dict[str, np.ndarray]) -> None:
        found = {k: v for k, v in found.items() if len(v)}
        if found and self.strict:
            kind, lines = min(found.items(), key=lambda kv: kv[1].min())
            raise DataError(f"{path}:{int(lines.min())}: {kind.replace('_', ' ')} (data.strict=true)")
        several = len(self.formats) > 1
        for kind, lines in found.items():
            self.bad.counts[kind] += len(lines)
            room = FIRST_LINES_KEPT - len(self.bad.first_lines[kind])
            kept = [int(v) for v in np.sort(lines)[:room]]
            self.bad.first_lines[kind].extend(kept)
            if several:
                self.bad.files.setdefault(kind, []).extend([str(path)] * len(kept))


def _progress_bar(label: Optional[str]):
    """A bar on a terminal only (in a log or a pipe it would only garble the lines)."""
    if label is None or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(desc=label, unit="rows", unit_scale=True, mininterval=0.5, leave=False)


def input_fingerprint(formats: List[RawFormat], memo_dir: Optional[Path] = None, progress: bool = False) -> dict:
    """The input files by content (not by name or mtime): a file moved or touched keeps its
    cache and its jobs; a file rewritten in place, added or removed gets new ones. One file
    keeps the form it had before datasets of several files existed (so do its caches and jobs)."""
    def one(path: Path) -> dict:
        return {"bytes": path.stat().st_size, "blake2b": content_hash(path, memo_dir, progress)}

    if len(formats) == 1:
        return one(formats[0].path)
    root = Path(os.path.commonpath([str(f.path.resolve()) for f in formats]))
    return {"files": [{"name": str(f.path.resolve().relative_to(root)), **one(f.path)} for f in formats]}


def prepare_settings(data_cfg, progress: bool = False) -> dict:
    """Everything the encoded cache depends on: the inputs' content and the preprocessing."""
    from omegaconf import OmegaConf

    formats = make_formats(data_cfg)
    if split_by(data_cfg) == "time":  # before any file is hashed: nothing is written for a split that cannot be
        check_times(file_times(_files_of(formats), data_cfg.get("time_key")))
    settings = {
        "kind": data_cfg.kind,
        "input": input_fingerprint(formats, Path(data_cfg.cache_dir), progress),
        "min_count": int(data_cfg.min_count),
        "vocab_scope": data_cfg.vocab_scope,
        "split": list(data_cfg.split),
        "split_seed": int(data_cfg.split_seed),
        "avazu_hour_features": bool(data_cfg.avazu_hour_features),
        "schema": OmegaConf.to_container(data_cfg.schema, resolve=True) if data_cfg.kind == "csv" else None,
    }
    if split_by(data_cfg) == "time":  # only when set: caches made before time splits keep their keys
        settings.update(split_by="time", time_key=data_cfg.get("time_key"))
    return settings


def split_by(data_cfg) -> str:
    return choice(SplitBy, data_cfg.get("split_by") or "random", "data.split_by")


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
    lines = ", ".join(bad.where(kind, 3))
    reason = f"{bad.counts[kind]:,} {kind} ({WHY_BAD[kind]}; first at line {lines})" if bad.total else "an empty file"
    if not valid:
        raise DataError(f"{path}: no valid rows: {reason}")
    raise DataError(f"{path}: {bad.total:,} of {total:,} rows ({bad.total / total:.0%}) are bad, more than "
                    f"data.max_bad_fraction={limit:g} allows; mostly {reason}. Fix the file, or set "
                    f"data.max_bad_fraction={min(1.0, round(bad.total / total + 0.005, 2)):g} to skip them")


def build_cache(path: Path, fp: str, data_cfg, settings: dict, progress: bool) -> Path:
    """One parse pass over the files stores each batch's per-field dictionary indices in X (and
    the dictionaries on disk); once the vocabularies are known, X is remapped in place."""
    formats = make_formats(data_cfg)
    names = formats[0].field_names
    source = formats[0].path if len(formats) == 1 else Path(os.path.commonpath([str(f.path) for f in formats]))
    scope = choice(VocabScope, data_cfg.vocab_scope, "data.vocab_scope")
    times = file_times(_files_of(formats), data_cfg.get("time_key")) if split_by(data_cfg) == "time" else None
    if times is not None:
        check_times(times)
    writer = CacheWriter(path, names)
    spill = DictionarySpill(writer.tmp_dir, len(names))
    try:
        counter = ValueCounter(len(names), writer.tmp_dir, memory_budget(data_cfg))
        scan = Scan(formats, strict=data_cfg.strict, progress=progress)
        local = BufferedRows(writer.tmp_dir, len(names), min(512 << 20, memory_budget(data_cfg)))
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
        check_bad_share(source, rows, scan.bad, float(data_cfg.max_bad_fraction))
        if scan.bad.total:
            log.warning("%s: skipped %d bad rows: %s", source, scan.bad.total, scan.bad.summary())
        with ThreadPoolExecutor(1) as background:  # the split is drawn while X is remapped
            split = background.submit(time_split, scan.file_rows, times) if times is not None else \
                background.submit(seeded_split, rows, list(data_cfg.split), int(data_cfg.split_seed))
            y = local.finish()
            if scope == "train":
                _count_training_rows(counter, spill, local, split.result()["train"], rows)
            vocabularies = counter.vocabularies(int(data_cfg.min_count))
            writer.allocate(rows)
            _remap(writer, spill, local, vocabularies)
            splits = split.result()
        writer.y[:] = y
        check_labels(y, splits, str(source), int(data_cfg.min_class_rows))
        local.remove()
        spill.remove()
        counter.remove()
        _write_vocabularies(writer.tmp_dir / "vocab.parquet", names, vocabularies)
        meta = {
            "source": data_cfg.kind,
            "fingerprint": fp,
            "rows": rows,
            "positive_rate": float(np.mean(y)),
            "bad_rows": scan.bad.as_dict(),
            "settings": settings,
            "source_path": str(source.resolve()),
            "oov_index": 0,
            "split_by": "time" if times is not None else "random",
            "time_name": time_name(_files_of(formats), data_cfg.get("time_key")) if times is not None else None,
            "inputs": files_meta(formats, scan.file_rows, times),
        }
        return writer.commit([v.num_rows + 1 for v in vocabularies], splits, meta)
    except BaseException:
        spill.close()
        writer.abort()
        raise


def _files_of(formats: List[RawFormat]) -> list:
    from .files import DataFile

    return [DataFile(f.path, dict(f.partition)) for f in formats]


def memory_budget(data_cfg) -> int:
    """Bytes the value counts (and, up to 512 MB, the buffered codes) may hold before spilling: a
    quarter of data.prepare_memory each; the rest is for the blocks in flight (a thirty-second
    each, sources.make_formats) and the vocabularies."""
    return memory_cap(data_cfg) // 4


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
        written = 0
        for (start, codes), dictionaries in zip(local.batches(), spill.batches()):
            in_flight.append(pool.submit(remap_batch, start, codes, dictionaries))
            if len(in_flight) >= 2 * workers:
                in_flight.pop(0).result()
            written += codes.nbytes
            if written > RELEASE_EVERY:  # written pages go to the page cache, out of this process's memory
                for future in in_flight:
                    future.result()
                in_flight, written = [], 0
                writer.release()
        for future in in_flight:
            future.result()


RELEASE_EVERY = 256 << 20


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
    if bad[kind].get("files"):  # several files: the file of that line
        source = bad[kind]["files"][bad[kind]["first_lines"].index(line)]
    raise DataError(f"{source}:{line}: {kind.replace('_', ' ')} "
                    f"(data.strict=true; the cache at {data.path} recorded {total} bad rows)")
