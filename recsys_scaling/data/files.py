"""Which files a raw dataset is: `data.path` as a file, a directory (every file under it), a glob,
or a list of them, in a stable order, with the hive partition values (`day=3/part-0.parquet`)
and day numbers (`day_3`, `day=3`) their paths carry.

Files are read in natural name order (day_2 before day_10), so rows keep the order the data was
written in; that order is what a time split cuts (data.split_by=time)."""
from __future__ import annotations

import glob
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from .faults import DataError
from .formats import PARQUET_SUFFIXES

DAY_FILE = re.compile(r"^day_(\d+)(?:\.|$)")
GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class DataFile:
    path: Path
    partition: Dict[str, str] = field(default_factory=dict)  # hive key=value folders above the file

    @property
    def day(self) -> Optional[int]:
        """The day a Criteo-Terabyte-style name (day_N) or a day=N partition gives, if any."""
        found = DAY_FILE.match(self.path.name)
        if found:
            return int(found.group(1))
        value = self.partition.get("day")
        return int(value) if value is not None and value.isdigit() else None

    @property
    def is_parquet(self) -> bool:
        return self.path.suffix in PARQUET_SUFFIXES


def natural_key(text: str) -> list:
    """"day_10" after "day_2": digit runs compare as numbers."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", text)]


def _partition(path: Path, root: Path) -> Dict[str, str]:
    try:
        parts = path.relative_to(root).parts[:-1]
    except ValueError:
        parts = path.parts[:-1]
    return dict(part.split("=", 1) for part in parts if "=" in part and not part.startswith("="))


def _visible(path: Path, root: Path) -> bool:
    """Skips what writers leave beside the data: hidden files, _SUCCESS, _metadata, *.crc."""
    relative = path.relative_to(root).parts
    return not any(p.startswith((".", "_")) for p in relative) and path.suffix != ".crc"


def _glob_root(pattern: Path) -> Path:
    """The folder a glob starts from: its parts before the first with a wildcard."""
    parts = []
    for part in pattern.parts:
        if GLOB_CHARS & set(part):
            break
        parts.append(part)
    return Path(*parts) if parts else Path(".")


def _entry_files(entry: str) -> List[DataFile]:
    path = Path(entry).expanduser()
    if GLOB_CHARS & set(entry):
        root = _glob_root(path)
        found = [Path(p) for p in glob.glob(str(path), recursive=True) if Path(p).is_file()]
        if not found:
            raise DataError(f"data.path={entry}: the glob matches no file")
        return [DataFile(p, _partition(p, root)) for p in found]
    if path.is_dir():
        found = [p for p in path.rglob("*") if p.is_file() and _visible(p, path)]
        if not found:
            raise DataError(f"{path}: an empty directory (no data file under it)")
        return [DataFile(p, _partition(p, path)) for p in found]
    if not path.exists():
        raise DataError(f"{path}: no such file")
    return [DataFile(path)]


def entries(value) -> List[str]:
    """data.path as a list of entries (one path, or a list of them)."""
    if value is None:
        return []
    if isinstance(value, (str, Path)):
        return [str(value)]
    return [str(v) for v in value]


def resolve_files(value, days: Optional[Sequence[int]] = None) -> List[DataFile]:
    """The files of data.path, each once, in natural order; every one of one format family
    (Parquet, or delimited text with or without gzip). `days` keeps the day files asked for."""
    files: Dict[Path, DataFile] = {}
    for entry in entries(value):
        for found in _entry_files(entry):
            files.setdefault(found.path.resolve(), found)
    ordered = sorted(files.values(), key=lambda f: natural_key(str(f.path)))
    if not ordered:
        raise DataError("data.path: no file given")
    _check_one_format(ordered)
    return _chosen_days(ordered, days) if days is not None else ordered


def _check_one_format(files: Sequence[DataFile]) -> None:
    parquet = [f for f in files if f.is_parquet]
    if parquet and len(parquet) != len(files):
        text = next(f for f in files if not f.is_parquet)
        raise DataError(f"data.path: a mix of formats ({parquet[0].path.name} is Parquet, {text.path.name} is "
                        "text); give files of one format")


def _chosen_days(files: Sequence[DataFile], days: Sequence[int]) -> List[DataFile]:
    by_day: Dict[int, List[DataFile]] = {}
    for f in files:
        if f.day is not None:
            by_day.setdefault(f.day, []).append(f)
    if not by_day:
        raise DataError(f"data.days={list(days)}: no file is a day file (day_N, or under day=N/)")
    missing = [d for d in days if d not in by_day]
    if missing:
        present = sorted(by_day)
        raise DataError(f"data.days: day {missing[0]} is not among the files (days {present[0]}..{present[-1]} "
                        f"present, {len(present)} in all)")
    return [f for f in files if f.day in set(days)]


def time_name(files: Sequence[DataFile], time_key: Optional[str]) -> str:
    """What file_times are: the partition key's values, days, or places in the file order."""
    return time_key or ("day" if all(f.day is not None for f in files) else "file")


def file_times(files: Sequence[DataFile], time_key: Optional[str]) -> List[str]:
    """The time of each file for a time split: its `time_key` partition value, else its day,
    else its place in the order."""
    if time_key:
        absent = [f.path for f in files if time_key not in f.partition]
        if absent:
            raise DataError(f"data.time_key={time_key}: {absent[0]} has no {time_key}=... folder above it")
        return [f.partition[time_key] for f in files]
    if all(f.day is not None for f in files):
        return [str(f.day) for f in files]
    return [str(i) for i in range(len(files))]
