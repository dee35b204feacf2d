"""The encoded dataset cache: int32 ``X`` (rows x fields), ``y``, seeded split, ``meta.json``.

A cache directory is named by a fingerprint of its inputs and settings, is written to a
temporary sibling and renamed into place, and is verified on every open (format version,
fingerprint, array shapes, file sizes, a checksum of sampled blocks). A cache that fails
verification is rebuilt with a message, never silently reused.
"""
from __future__ import annotations

import hashlib
import json
import logging
import mmap
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Sequence

import numpy as np

from .faults import reserve

FORMAT_VERSION = 1
SPLIT_NAMES = ("train", "valid", "test")
log = logging.getLogger(__name__)


class CacheError(RuntimeError):
    """A cache directory that cannot be trusted."""


@dataclass
class EncodedData:
    """An opened cache: memory-mapped arrays plus metadata."""

    path: Path
    X: np.ndarray  # (rows, fields) int32, per-field local indices in [0, field_dims[f])
    y: np.ndarray  # (rows,) float32 in {0, 1}
    splits: Dict[str, np.ndarray]  # name -> int64 row indices
    meta: dict

    @property
    def field_names(self) -> List[str]:
        return list(self.meta["field_names"])

    @property
    def field_dims(self) -> List[int]:
        return [int(v) for v in self.meta["field_dims"]]


def fingerprint(settings: Mapping) -> str:
    blob = json.dumps({"format": FORMAT_VERSION, **settings}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _sampled_checksum(path: Path, block: int = 1 << 16, samples: int = 16) -> str:
    """Hash of evenly spaced blocks: cheap on multi-GB files, catches truncation and most damage."""
    size = path.stat().st_size
    digest = hashlib.blake2b(str(size).encode(), digest_size=16)
    with path.open("rb") as fh:
        for i in range(samples):
            fh.seek(max(0, (size - block) * i // max(1, samples - 1)))
            digest.update(fh.read(block))
    return digest.hexdigest()


def seeded_split(rows: int, ratios: Sequence[float], seed: int) -> Dict[str, np.ndarray]:
    if len(ratios) != 3 or any(r < 0 for r in ratios) or not np.isclose(sum(ratios), 1.0):
        raise ValueError(f"data.split={list(ratios)}: need three non-negative ratios summing to 1")
    order = np.random.default_rng(seed).permutation(rows)
    n_train = int(round(rows * ratios[0]))
    n_valid = int(round(rows * ratios[1]))
    bounds = [0, n_train, n_train + n_valid, rows]
    return {name: np.sort(order[bounds[i] : bounds[i + 1]]) for i, name in enumerate(SPLIT_NAMES)}


class CacheWriter:
    """Builds a cache in a temporary directory; `commit` verifies and renames it into place."""

    def __init__(self, final_dir: Path, field_names: Sequence[str]):
        self.final_dir = final_dir
        final_dir.parent.mkdir(parents=True, exist_ok=True)
        self.tmp_dir = Path(tempfile.mkdtemp(prefix=f".{final_dir.name}.tmp-", dir=final_dir.parent))
        self.field_names = list(field_names)

    def allocate(self, rows: int) -> None:
        """X and y as memory maps whose disk space is reserved up front: on a full disk this
        fails with one line, where writing a sparse map would die of SIGBUS."""
        self.X = self._memmap("X.npy", np.int32, (rows, len(self.field_names)))
        self.y = self._memmap("y.npy", np.float32, (rows,))

    def _memmap(self, name: str, dtype, shape) -> np.memmap:
        path = self.tmp_dir / name
        array = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
        try:
            reserve(path, path.stat().st_size)
        except OSError:
            del array
            raise
        return array

    def release(self) -> None:
        """Drops X's written pages from this process's resident memory: the mapping is shared, so
        they stay in the page cache, where every reader sees them (preparing data larger than RAM)."""
        handle = getattr(self.X, "_mmap", None)
        if handle is not None and hasattr(mmap, "MADV_DONTNEED"):
            handle.madvise(mmap.MADV_DONTNEED)

    def commit(self, field_dims: Sequence[int], splits: Dict[str, np.ndarray], meta: dict) -> Path:
        # No msync: the page cache already holds what every reader sees, and a cache damaged by
        # a crash before the kernel writes it back fails its checksums and is rebuilt.
        del self.X, self.y
        for name, idx in splits.items():
            np.save(self.tmp_dir / f"split_{name}.npy", idx.astype(np.int64))
        files = ["X.npy", "y.npy"] + [f"split_{n}.npy" for n in splits]
        meta = {
            **meta,
            "format_version": FORMAT_VERSION,
            "field_names": self.field_names,
            "field_dims": [int(v) for v in field_dims],
            "split_rows": {n: int(len(i)) for n, i in splits.items()},
            "files": {f: {"bytes": (self.tmp_dir / f).stat().st_size,
                          "checksum": _sampled_checksum(self.tmp_dir / f)} for f in files},
        }
        _write_json_atomic(self.tmp_dir / "meta.json", meta)
        try:
            self.tmp_dir.rename(self.final_dir)
        except OSError:
            if not self.final_dir.exists():
                raise
            # Another process built the same fingerprint first; its copy is identical.
            self.abort()
        return self.final_dir

    def abort(self) -> None:
        shutil.rmtree(self.tmp_dir, ignore_errors=True)


def _write_json_atomic(path: Path, payload: dict) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True))
    tmp.replace(path)


def open_cache(path: Path, expected_fingerprint: str) -> EncodedData:
    """Open and verify a cache; raises CacheError saying what is wrong."""
    try:
        return _open_verified(path, expected_fingerprint)
    except CacheError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, OSError) as exc:  # a meta.json or file that lies
        raise CacheError(f"{path}: damaged ({type(exc).__name__}: {' '.join(str(exc).split())[:120]})") from exc


def _open_verified(path: Path, expected_fingerprint: str) -> EncodedData:
    meta_path = path / "meta.json"
    if not meta_path.is_file():
        raise CacheError(f"{path}: no meta.json")
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CacheError(f"{meta_path}: unreadable ({exc})") from exc
    if not isinstance(meta, dict):
        raise CacheError(f"{meta_path}: not a JSON object")
    if meta.get("format_version") != FORMAT_VERSION:
        raise CacheError(f"{path}: format version {meta.get('format_version')} != {FORMAT_VERSION}")
    if meta.get("fingerprint") != expected_fingerprint:
        raise CacheError(f"{path}: fingerprint does not match the requested input/settings")
    for name, info in meta["files"].items():
        file = path / name
        if not file.is_file() or file.stat().st_size != info["bytes"]:
            raise CacheError(f"{file}: missing or truncated")
        if _sampled_checksum(file) != info["checksum"]:
            raise CacheError(f"{file}: checksum mismatch (corrupt)")
    X = np.load(path / "X.npy", mmap_mode="r")
    y = np.load(path / "y.npy", mmap_mode="r")
    if X.shape != (meta["rows"], len(meta["field_names"])) or y.shape != (meta["rows"],):
        raise CacheError(f"{path}: array shapes {X.shape}, {y.shape} disagree with meta.json")
    splits = {n: np.load(path / f"split_{n}.npy") for n in SPLIT_NAMES}
    return EncodedData(path=path, X=X, y=y, splits=splits, meta=meta)


def cache_path(cache_root, name: str, settings: Mapping) -> Path:
    return Path(cache_root) / f"{name}-{fingerprint(settings)[:16]}"


def open_or_build(
    cache_root: Path, name: str, settings: Mapping, build: Callable[[Path, str], Path]
) -> EncodedData:
    """Return the verified cache for `settings`, building (or rebuilding) it when needed."""
    fp = fingerprint(settings)
    path = cache_path(cache_root, name, settings)
    if path.exists():
        try:
            return open_cache(path, fp)
        except CacheError as exc:
            log.warning("rebuilding cache: %s", exc)
            shutil.rmtree(path, ignore_errors=True)
    build(path, fp)
    return open_cache(path, fp)
