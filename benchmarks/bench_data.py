"""Data-layer throughput: preparing a raw Criteo-format file, and loading batches.

Prints, from one run: prepare rows/s (and peak RSS of the preparing process) beside a per-row
Python parse-and-lookup loop (the way the official code builds its LMDB), and loader
samples/s at batch 2048 beside a per-sample `__getitem__` DataLoader.

    python benchmarks/bench_data.py --quick     # 1M rows, about a minute
    python benchmarks/bench_data.py --rows 4000000
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv

ROOT = Path(__file__).resolve().parents[1]


def write_criteo_file(path: Path, rows: int, seed: int = 0) -> None:
    """A raw Kaggle-format file: label, 13 integer columns (20% blank), 26 hashed categoricals
    with Zipf-distributed values (3 to 100k per field), tab-separated, no header."""
    rng = np.random.default_rng(seed)
    columns = {"label": pa.array((rng.random(rows) < 0.25).astype(np.int8)).cast(pa.string())}
    for i in range(1, 14):
        values = pa.array(rng.zipf(1.6, rows) - 1).cast(pa.string())
        blank = pa.array(rng.random(rows) < 0.2)
        columns[f"I{i}"] = pa.compute.if_else(blank, "", values)
    cardinalities = np.geomspace(3, 100_000, 26).astype(int)
    for i, card in enumerate(cardinalities, start=1):
        pool = pa.array([f"{(j * 2654435761 + i) % (1 << 32):08x}" for j in range(card)])
        columns[f"C{i}"] = pool.take(pa.array((rng.zipf(1.3, rows) - 1) % card))
    pcsv.write_csv(pa.table(columns), path, write_options=pcsv.WriteOptions(
        include_header=False, delimiter="\t", quoting_style="none"))


def per_row_baseline(path: Path, limit: int) -> float:
    """rows/s of a Python loop that parses, transforms, counts and then encodes each row."""
    start = time.perf_counter()
    counts = [dict() for _ in range(39)]
    lines = []
    with path.open() as fh:
        for n, line in enumerate(fh):
            if n >= limit:
                break
            parts = line.rstrip("\n").split("\t")
            values = []
            for i, v in enumerate(parts[1:14]):
                if v == "":
                    values.append("NULL")
                else:
                    x = int(v)
                    values.append(str(int(math.log(x) ** 2)) if x > 2 else str(x - 2))
            values.extend(parts[14:])
            for f, v in enumerate(values):
                counts[f][v] = counts[f].get(v, 0) + 1
            lines.append((int(parts[0]), values))
    vocab = [{v: i + 1 for i, (v, c) in enumerate(sorted(d.items(), key=lambda kv: (-kv[1], kv[0]))) if c >= 10}
             for d in counts]
    encoded = [[vocab[f].get(v, 0) for f, v in enumerate(values)] for _, values in lines]
    assert len(encoded) == len(lines)
    return len(lines) / (time.perf_counter() - start)


PREPARE_CHILD = """
import json, resource, sys, time
from hydra import compose, initialize_config_dir
from recsys_scaling.paths import CONF_DIR
from recsys_scaling.data import load_dataset
from recsys_scaling.runtime import tune_allocator
tune_allocator()  # as `recsys-scaling data prepare` does
with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
    cfg = compose(config_name="config", overrides=["data=criteo", "data.path=" + sys.argv[1],
                                                   "data.cache_dir=" + sys.argv[2]])
start = time.perf_counter()
data = load_dataset(cfg.data)
seconds = time.perf_counter() - start
print(json.dumps({"rows": data.meta["rows"], "seconds": seconds,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def prepare_in_child(path: Path, cache: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", PREPARE_CHILD, str(path), str(cache)], check=True,
                         capture_output=True, text=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def loader_throughput(cache: Path, seconds: float) -> tuple:
    import torch

    from recsys_scaling.data.cache import open_cache
    from recsys_scaling.data.loader import BatchLoader

    path = next(p for p in cache.iterdir() if p.name.startswith("criteo-"))
    meta = json.loads((path / "meta.json").read_text())
    data = open_cache(path, meta["fingerprint"])
    train = data.splits["train"]
    loader = BatchLoader(data.X, data.y, train, 2048, shuffle=True, seed=0)
    start, seen = time.perf_counter(), 0
    for x, _ in loader.epoch(0):
        seen += len(x)
    fast = seen / (time.perf_counter() - start)

    class PerSample(torch.utils.data.Dataset):
        def __len__(self):
            return len(train)

        def __getitem__(self, i):
            row = train[i]
            return torch.from_numpy(np.array(data.X[row])), torch.tensor(data.y[row])

    slow_loader = torch.utils.data.DataLoader(PerSample(), batch_size=2048, shuffle=True)
    start, seen = time.perf_counter(), 0
    for x, _ in slow_loader:
        seen += len(x)
        if time.perf_counter() - start > seconds:
            break
    slow = seen / (time.perf_counter() - start)
    return fast, slow


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1M rows, short baselines (about a minute)")
    parser.add_argument("--rows", type=int, default=None)
    args = parser.parse_args()
    rows = args.rows or (1_000_000 if args.quick else 4_000_000)
    with tempfile.TemporaryDirectory(prefix="bench-data-") as tmp:
        raw = Path(tmp) / "train.txt"
        start = time.perf_counter()
        write_criteo_file(raw, rows)
        print(f"raw Criteo-format file: {rows:,} rows, {raw.stat().st_size / 1e6:.0f} MB "
              f"(written in {time.perf_counter() - start:.1f} s)")
        result = prepare_in_child(raw, Path(tmp) / "cache")
        prepare_rate = result["rows"] / result["seconds"]
        baseline = per_row_baseline(raw, 100_000 if args.quick else 300_000)
        print(f"prepare: {prepare_rate:,.0f} rows/s (peak RSS {result['peak_rss_mb']:,.0f} MB) vs per-row Python "
              f"loop {baseline:,.0f} rows/s: {prepare_rate / baseline:.1f}x   [target >= 500,000 rows/s, < 1.5 GB]")
        fast, slow = loader_throughput(Path(tmp) / "cache", 3.0 if args.quick else 10.0)
        print(f"loader: {fast:,.0f} samples/s (batch 2048, shuffled) vs per-sample __getitem__ DataLoader "
              f"{slow:,.0f} samples/s: {fast / slow:.0f}x   [target >= 5,000,000 samples/s]")


if __name__ == "__main__":
    main()
