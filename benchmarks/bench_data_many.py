"""A dataset of many files, larger than its preparation's memory cap: Criteo-format day files
(day_0 ... day_N, Criteo Terabyte's layout) prepared with an out-of-time split under
data.prepare_memory, then read by the loader.

Prints, from one run: the data's size on disk against the cap, prepare rows/s, the preparing
process's peak RSS (resident pages, the data's memory maps included) and its peak anonymous
memory (sampled every 50 ms) above what the interpreter and its libraries hold before any data
(what the cap bounds), and loader samples/s at batch 2048.

    python benchmarks/bench_data_many.py --quick           # 2M rows in 4 files, about a minute
    python benchmarks/bench_data_many.py                   # 20M rows in 8 files, cap 1 GiB
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_data import write_criteo_file

ROOT = Path(__file__).resolve().parents[1]

PREPARE_CHILD = r"""
import json, resource, sys, threading, time
from hydra import compose, initialize_config_dir
from recsys_scaling.paths import CONF_DIR
from recsys_scaling.data import load_dataset

peak = {"anon_kb": 0}
def sample():
    while True:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("RssAnon:"):
                    peak["anon_kb"] = max(peak["anon_kb"], int(line.split()[1]))
        time.sleep(0.05)
threading.Thread(target=sample, daemon=True).start()
with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
    cfg = compose(config_name="config", overrides=["data=criteo_terabyte", "data.path=" + sys.argv[1],
                                                   "data.cache_dir=" + sys.argv[2], "data.prepare_memory=" + sys.argv[3]])
with open("/proc/self/status") as fh:  # the interpreter and its libraries, before any data
    baseline_kb = next(int(line.split()[1]) for line in fh if line.startswith("RssAnon:"))
start = time.perf_counter()
data = load_dataset(cfg.data)
seconds = time.perf_counter() - start
print(json.dumps({"rows": data.meta["rows"], "seconds": seconds, "path": str(data.path),
                  "split": {k: len(v) for k, v in data.splits.items()},
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "peak_anon_mb": peak["anon_kb"] / 1024, "baseline_mb": baseline_kb / 1024}))
"""


def loader_rate(cache_path: Path, seconds: float = 10.0) -> float:
    from recsys_scaling.data.cache import open_cache
    from recsys_scaling.data.loader import BatchLoader

    meta = json.loads((cache_path / "meta.json").read_text())
    data = open_cache(cache_path, meta["fingerprint"])
    loader = BatchLoader(data.X, data.y, data.splits["train"], 2048, shuffle=True, seed=0)
    start, seen = time.perf_counter(), 0
    for x, _ in loader.epoch(0):
        seen += len(x)
        if time.perf_counter() - start > seconds:
            break
    return seen / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=20_000_000)
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--cap", type=float, default=1.0, help="data.prepare_memory, GiB")
    parser.add_argument("--quick", action="store_true", help="2M rows in 4 files")
    args = parser.parse_args()
    rows, files = (2_000_000, 4) if args.quick else (args.rows, args.files)
    with tempfile.TemporaryDirectory(prefix="bench-data-many-") as tmp:
        folder = Path(tmp) / "criteo_tb"
        folder.mkdir()
        start = time.perf_counter()
        for day in range(files):
            write_criteo_file(folder / f"day_{day}", rows // files, seed=day)
        size = sum(p.stat().st_size for p in folder.iterdir())
        print(f"wrote {files} day files, {rows:,} rows, {size / 2**30:.2f} GiB in {time.perf_counter() - start:.0f} s")
        out = subprocess.run([sys.executable, "-c", PREPARE_CHILD, str(folder), str(Path(tmp) / "cache"),
                              str(args.cap)], check=True, capture_output=True, text=True, cwd=ROOT)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        cap_mb = args.cap * 1024
        print(f"prepare: {result['rows'] / result['seconds']:,.0f} rows/s ({result['seconds']:.0f} s; split "
              f"{result['split']}); data {size / 2**20:,.0f} MB = {size / 2**20 / cap_mb:.1f}x the cap of {cap_mb:,.0f} MB")
        above = result["peak_anon_mb"] - result["baseline_mb"]
        print(f"peak anonymous memory {result['peak_anon_mb']:,.0f} MB: {result['baseline_mb']:,.0f} MB of interpreter and "
              f"libraries before any data, {above:,.0f} MB preparing ({above / cap_mb:.2f}x the cap); peak RSS "
              f"{result['peak_rss_mb']:,.0f} MB (memory-mapped pages included)")
        print(f"loader: {loader_rate(Path(result['path'])):,.0f} samples/s at batch 2048")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
