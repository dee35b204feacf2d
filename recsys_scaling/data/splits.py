"""Out-of-time splits (data.split_by=time): the rows of earlier files train, the rows of the last
time are halved into validation (first half) and test (second half), as the Criteo Terabyte
protocol halves its last day. Which file went where is kept in the cache's meta.json and said
by `split_description` in every run."""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np

from .faults import DataError
from .files import natural_key


def check_times(times: Sequence[str]) -> None:
    distinct = sorted(set(times), key=natural_key)
    if len(distinct) < 2:
        raise DataError(f"data.split_by=time: every file has the same time ({distinct[0] if distinct else 'none'}); "
                        "a time split needs files of at least two times (several day files, or data.time_key)")


def last_time(times: Sequence[str]) -> str:
    return sorted(set(times), key=natural_key)[-1]


def time_split(file_rows: Sequence[int], times: Sequence[str]) -> Dict[str, np.ndarray]:
    """Row indices of train (every file before the last time), valid and test (the last time's
    rows, first half and second half, in file order)."""
    bounds = np.cumsum([0, *file_rows])
    last = last_time(times)
    ranges = [np.arange(bounds[i], bounds[i + 1]) for i in range(len(file_rows))]
    train = [r for r, t in zip(ranges, times) if t != last]
    held = [r for r, t in zip(ranges, times) if t == last]
    train_rows = np.concatenate(train) if train else np.zeros(0, np.int64)
    held_rows = np.concatenate(held) if held else np.zeros(0, np.int64)
    if not len(train_rows) or len(held_rows) < 2:
        raise DataError(f"data.split_by=time: no valid rows in the {'earlier files' if not len(train_rows) else 'last'}"
                        f" time ({last}); nothing to {'train on' if not len(train_rows) else 'validate and test on'}")
    half = len(held_rows) // 2
    return {"train": train_rows, "valid": held_rows[:half], "test": held_rows[half:]}


def files_meta(formats, file_rows: Sequence[int], times: Optional[Sequence[str]]) -> List[dict]:
    """Per file: its path, its valid rows, its time and split (a time split), its partition."""
    last = last_time(times) if times is not None else None
    entries = []
    for i, (fmt, rows) in enumerate(zip(formats, file_rows)):
        entry = {"path": str(fmt.path.resolve()), "rows": int(rows)}
        if fmt.partition:
            entry["partition"] = dict(fmt.partition)
        if times is not None:
            entry.update(time=times[i], split="valid+test" if times[i] == last else "train")
        entries.append(entry)
    return entries


def split_description(meta: dict) -> str:
    """One line for a run: which files or days trained, and which were validation and test."""
    files = meta.get("inputs") or []
    if meta.get("split_by") != "time":
        ratio = meta.get("settings", {}).get("split", [0.8, 0.1, 0.1])
        what = f"{len(files)} files" if len(files) > 1 else "the file"
        return f"random {':'.join(f'{r:g}' for r in ratio)} over {what} (data.split_seed)"
    train = [f for f in files if f["split"] == "train"]
    held = [f for f in files if f["split"] != "train"]
    name = meta.get("time_name") or "time"
    return (f"time: train {_times(train, name)} ({sum(f['rows'] for f in train):,} rows), validation and test "
            f"{_times(held, name)} halved ({sum(f['rows'] for f in held):,} rows)")


def _times(files: List[dict], name: str) -> str:
    times = sorted({f["time"] for f in files}, key=natural_key)
    return f"{name} {times[0]}" if len(times) == 1 else f"{name}s {times[0]}..{times[-1]} ({len(times)})"
