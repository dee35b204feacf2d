"""What data a job trained on, by content: the hash of a raw file's bytes (size and mtime alone
miss a file rewritten in place), or the synthetic generator's settings and version.

Hashing a large file takes a while (Criteo's 11 GB: ~20-30 s at ~570 MB/s), so each hash is remembered in the
cache folder under the file's identity on disk — real path, size, inode, mtime and ctime (ctime
changes with every write and cannot be set back) — and reused while none of them changes.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Optional

MEMO_NAME = "input-hashes.json"
BLOCK = 8 << 20


def _stat_key(path: Path) -> str:
    stat = path.stat()
    return f"{path.resolve()}|{stat.st_size}|{stat.st_ino}|{stat.st_mtime_ns}|{stat.st_ctime_ns}"


def _read_memo(memo: Path) -> dict:
    try:
        return json.loads(memo.read_text())
    except (OSError, ValueError):
        return {}  # none yet, or damaged: hashes are recomputed


def _write_memo(memo: Path, entries: dict) -> None:
    try:
        memo.parent.mkdir(parents=True, exist_ok=True)
        tmp = memo.with_suffix(f".tmp-{os.getpid()}")
        tmp.write_text(json.dumps(entries, indent=0, sort_keys=True))
        tmp.replace(memo)
    except OSError:
        pass  # a read-only or full cache folder only costs the next hash


def content_hash(path: Path, memo_dir: Optional[Path] = None, progress: bool = False) -> str:
    """blake2b of the file's bytes (hex), remembered in `memo_dir`."""
    path = Path(path)
    key = _stat_key(path)
    memo = Path(memo_dir) / MEMO_NAME if memo_dir is not None else None
    entries = _read_memo(memo) if memo is not None else {}
    if key in entries:
        return entries[key]
    digest = hashlib.blake2b(digest_size=20)
    bar = _bar(path, progress)
    with path.open("rb") as fh:
        while block := fh.read(BLOCK):
            digest.update(block)
            if bar is not None:
                bar.update(len(block))
    if bar is not None:
        bar.close()
    if _stat_key(path) != key:
        raise OSError(f"{path}: changed while it was being read; run again once it is written")
    value = digest.hexdigest()
    if memo is not None:
        _write_memo(memo, {**_read_memo(memo), key: value})
    return value


def _bar(path: Path, progress: bool):
    size = path.stat().st_size
    if not progress or size < (256 << 20) or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=size, unit="B", unit_scale=True, desc=f"hashing {path.name}", leave=False)
