"""What goes wrong with data files, as one line naming the file: text that is not UTF-8, a
compressed stream cut short, a Parquet column of lists, labels AUC cannot be measured on, a
disk too small for the cache."""
from __future__ import annotations

import contextlib
import errno
import gzip
import os
import shutil
import zlib
from pathlib import Path
from typing import Dict, Iterator, Sequence

import numpy as np
import pyarrow as pa


class DataError(ValueError):
    """Input that cannot be read as asked: the message names the file, line or key."""

SPACE_SLACK = 1.05


@contextlib.contextmanager
def reading(path: Path) -> Iterator[None]:
    """Errors of the readers (pyarrow, gzip) while parsing `path`, as DataError naming it."""
    try:
        yield
    except DataError:
        raise
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise DataError(f"{path}: the compressed stream is cut short or damaged ({exc}); is the file "
                        "complete?") from None
    except pa.ArrowException as exc:
        text = " ".join(str(exc).split())
        if "UTF8" in text or "utf-8" in text.lower():
            raise DataError(f"{path}: not UTF-8 text ({text[:120]}); convert it first, e.g. iconv -f latin1 -t utf-8 "
                            f"{path.name} > {path.stem}.utf8{path.suffix}") from None
        raise DataError(f"{path}: cannot be read as {'Parquet' if path.suffix in ('.parquet', '.pq') else 'CSV'} "
                        f"({text[:200]})") from None


def check_flat_columns(schema: pa.Schema, columns: Sequence[str], path: Path) -> None:
    """Every column used holds one value per row (no lists, structs or maps)."""
    for name in columns:
        kind = schema.field(name).type
        if pa.types.is_nested(kind):
            raise DataError(f"{path}: column {name!r} holds {kind} values; each field needs one value per row "
                            "(flatten it, or leave it out of data.schema)")


def check_labels(y: np.ndarray, splits: Dict[str, np.ndarray], source: str, minimum: int) -> None:
    """Labels AUC can be measured on: both classes, and at least `minimum` rows of each in the
    validation and test splits (early stopping and the reported AUC are computed there).
    `minimum` 0 checks nothing."""
    if minimum <= 0:
        return
    positives = int(np.asarray(y, dtype=np.float64).sum())
    if positives in (0, len(y)):
        raise DataError(f"{source}: every label is {int(positives > 0)}; AUC needs both classes (is "
                        "data.schema.label the click column?)")
    for name in ("valid", "test"):
        idx = splits[name]
        pos = int(np.asarray(y[idx], dtype=np.float64).sum())
        if min(pos, len(idx) - pos) < minimum:
            raise DataError(f"{source}: the {name} split has {pos} positive and {len(idx) - pos} negative rows; AUC "
                            f"needs at least {minimum} of each there (more rows, a larger data.split share, or "
                            "data.min_class_rows=0 to only look at the encoding)")


def reserve(path: Path, size: int) -> None:
    """Give the file at `path` all `size` bytes on disk now (posix_fallocate), so that writing
    it through a memory map cannot fail later with SIGBUS on a full disk; a full disk is a
    one-line OSError naming the folder instead."""
    free = shutil.disk_usage(path.parent).free
    allocated = path.stat().st_blocks * 512 if path.exists() else 0  # a sparse map holds few blocks yet
    if free < size * SPACE_SLACK - allocated:
        raise OSError(errno.ENOSPC, f"No space left on device: the cache needs {size / 2**20:,.1f} MiB, "
                      f"{free / 2**20:,.1f} MiB free", str(path.parent))
    if not hasattr(os, "posix_fallocate"):
        return
    with open(path, "r+b") as fh:
        try:
            os.posix_fallocate(fh.fileno(), 0, size)
        except OSError as exc:
            if exc.errno in (errno.EOPNOTSUPP, errno.EINVAL):  # a filesystem without fallocate
                return
            raise OSError(exc.errno, exc.strerror, str(path)) from None
