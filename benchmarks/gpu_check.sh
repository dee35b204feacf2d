#!/usr/bin/env bash
# The device check for a lent GPU machine, in at most ~8 minutes. From the repository root:
#   bash benchmarks/gpu_check.sh            # writes its table to $OUT (default ./gpu_check/) and stdout
# (a) the tests marked gpu; (b) fused vs per-set-loop models on CUDA (samples/s, peak memory,
# achieved TFLOP/s vs a same-process matmul peak), bf16 / torch.compile speed-ups and a user's tower
# fused with vmap vs a loop over its K copies (bench_custom); (c) a packed
# sweep of 12 jobs at 1, 2 and 4 jobs per GPU (wall time, mean GPU utilisation from nvidia-smi);
# (d) the paper's Criteo grid on one GPU, estimated from (b) and (c); (e) `recsys-scaling budget`'s
# calibrated estimates of showcase and paper_criteo on this GPU (GPU time before anything runs).
# A dry run of the plumbing on a CPU machine:
#   DEVICE=cpu ROWS=20000 BENCH=--quick PRECISION_BACKBONES=dnn bash benchmarks/gpu_check.sh
set -uo pipefail
OUT=${OUT:-gpu_check}
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
DEVICE=${DEVICE:-cuda}
ROWS=${ROWS:-1000000}
BENCH=${BENCH:-}
PRECISION_BACKBONES=${PRECISION_BACKBONES:-dcnv2 dnn finalmlp}
mkdir -p "$OUT"
PY=${PYTHON:-python}
export MPLBACKEND=Agg RECSYS_SCALING_CACHE="$OUT/cache" RECSYS_SCALING_GPU_SLOTS="$OUT/slots"
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

log "(a) tests marked gpu"
$PY -m pytest -q -m gpu tests/test_gpu.py -p no:cacheprovider > "$OUT/a_tests.txt" 2>&1
tests_rc=$?
tail -3 "$OUT/a_tests.txt" >&2

log "(b) models on cuda"
$PY benchmarks/bench_models.py --device "$DEVICE" --threads 4 $BENCH --backbones dcnv2 dnn > "$OUT/b_models.txt" 2>&1
$PY benchmarks/bench_models.py --device "$DEVICE" --threads 4 $BENCH --precision --backbones $PRECISION_BACKBONES \
    > "$OUT/b_precision.txt" 2>&1
$PY benchmarks/bench_custom.py --device "$DEVICE" $BENCH > "$OUT/b_custom.txt" 2>&1
cat "$OUT/b_models.txt" "$OUT/b_precision.txt" "$OUT/b_custom.txt" >&2

log "(c) packed sweep: 12 jobs at 1, 2, 4 jobs per GPU"
SUBSET=(model=dnn,dcnv2,finalmlp scale=4,10 arm=se,me seed=0 data=synthetic_showcase
        data.synthetic.rows=$ROWS train.max_epochs=1 diagnostics.enabled=false train.device=auto)
$PY -m recsys_scaling.cli data prepare data=synthetic_showcase data.synthetic.rows=$ROWS > "$OUT/c_prepare.txt" 2>&1
gpus=$(nvidia-smi -L 2>/dev/null | wc -l)
gpus=$((gpus > 0 ? gpus : 1))
: > "$OUT/c_packing.txt"
for per_gpu in 1 2 4; do
    nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader,nounits -lms 500 \
        > "$OUT/c_util_$per_gpu.csv" 2>/dev/null &
    smi=$!
    start=$EPOCHREALTIME
    $PY -m recsys_scaling.cli sweep showcase "${SUBSET[@]}" hydra/launcher=joblib \
        hydra.launcher.n_jobs=$((gpus * per_gpu)) train.jobs_per_gpu=$per_gpu \
        "tracking.uri=sqlite:///$OUT/packed_$per_gpu.db" --force > "$OUT/c_sweep_$per_gpu.txt" 2>&1
    rc=$?
    end=$EPOCHREALTIME
    kill $smi 2>/dev/null
    echo "$per_gpu $(awk "BEGIN {print $end - $start}") $rc" >> "$OUT/c_packing.txt"
done

log "(e) budget estimates calibrated on this device"
$PY -c "import sys; sys.path.insert(0, 'benchmarks'); from pathlib import Path; from bench_data import write_criteo_file; write_criteo_file(Path('$OUT/e_criteo_like.txt'), 200000)"
$PY -m recsys_scaling.cli budget showcase train.device="$DEVICE" > "$OUT/e_showcase.txt" 2>&1
# paper_criteo: Criteo's 45,840,617 rows over the vocabulary of a Criteo-shaped file (bench_data.py)
$PY -m recsys_scaling.cli data prepare data=criteo data.path="$OUT/e_criteo_like.txt" data.min_class_rows=1 \
    > "$OUT/e_prepare.txt" 2>&1
$PY -m recsys_scaling.cli budget paper_criteo data.path="$OUT/e_criteo_like.txt" data.declared_rows=45840617 \
    data.min_class_rows=1 train.device="$DEVICE" > "$OUT/e_paper_criteo.txt" 2>&1
tail -n 1 "$OUT/e_showcase.txt" "$OUT/e_paper_criteo.txt" >&2

log "(d) table"
$PY - "$OUT" "$tests_rc" <<'EOF'
import re, statistics, sys
from pathlib import Path

out, tests_rc = Path(sys.argv[1]), int(sys.argv[2])
models = (out / "b_models.txt").read_text()
rates = {(m[0], m[1]): (float(m[2]), float(m[3]) if m[3] != "nan" else None)
         for m in re.findall(r"^(\w+)\s+(ME \d+x\d+|SE d=\d+)\s+(\d+)\s+(\S+)", models, re.M)}
print("recsys-scaling GPU check")
print(f"(a) gpu tests: {'passed' if tests_rc == 0 else 'FAILED'} ({(out / 'a_tests.txt').read_text().strip().splitlines()[-1]})")
print("(b) fused vs per-set loop, training samples/s (batch 2048):")
for (backbone, config), (fused, loop) in rates.items():
    ratio = f"{fused / loop:.1f}x" if loop else "-"
    goal = {"ME 4x10": 3, "ME 10x10": 6}.get(config) if backbone == "dcnv2" else None
    verdict = "" if goal is None or loop is None else ("  goal >= %dx: %s" % (goal, "met" if fused / loop >= goal else "NOT met"))
    loop_text = f"{loop:>10.0f}" if loop else f"{'-':>10}"
    print(f"    {backbone:8} {config:9} fused {fused:>10.0f}  loop {loop_text}  {ratio}{verdict}")
for line in models.splitlines():
    if "GFLOP/s" in line:
        print("    " + line)
print("    " + "\n    ".join((out / "b_precision.txt").read_text().strip().splitlines()[-4:]))
print("(c) packed sweep, 12 jobs (1 epoch each):")
walls = {}
for line in (out / "c_packing.txt").read_text().split("\n"):
    if not line.strip():
        continue
    per_gpu, wall, rc = line.split()
    util = [float(r.split(",")[0]) for r in (out / f"c_util_{per_gpu}.csv").read_text().splitlines() if r.strip()]
    walls[int(per_gpu)] = float(wall)
    print(f"    {per_gpu} job(s) per GPU: {float(wall):7.1f} s wall, mean GPU utilisation "
          f"{statistics.mean(util) if util else float('nan'):5.1f}%{'' if rc == '0' else '  (sweep FAILED, exit ' + rc + ')'}")
best = min(walls, key=walls.get) if walls else 1
gain = walls.get(1, 1.0) / walls[best] if walls else 1.0
print(f"    packing gain: {gain:.2f}x at {best} jobs per GPU")
# (d) the paper's Criteo grid: 6 backbones x 5 sizes x 2 arms x 3 seeds, 36.7M rows (80% train),
# here at an assumed 10 epochs per job (early stopping usually ends sooner), at the measured
# dcnv2 ME 4x10 rate times the packing gain.
jobs, rows, epochs = 6 * 5 * 2 * 3, 0.8 * 36.7e6, 10
rate = rates.get(("dcnv2", "ME 4x10"), (None,))[0]
if rate:
    hours = jobs * epochs * rows / (rate * gain) / 3600
    print(f"(d) paper's Criteo grid ({jobs} jobs x {epochs} epochs x {rows / 1e6:.1f}M rows) on one GPU: "
          f"about {hours:.1f} h at {rate:.0f} samples/s x {gain:.2f} packing")
for name in ("showcase", "paper_criteo"):
    lines = (out / f"e_{name}.txt").read_text().strip().splitlines()
    print(f"(e) budget {name} on this device: {lines[-1] if lines else '(no output)'}")
EOF
