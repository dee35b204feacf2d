"""Training throughput of the fused SE/ME models against per-set-loop references.

For each backbone: samples/s of a full training step (forward, backward, Adam step; batch
2048) for SE d0, SE 4*d0, ME 4 x d0 and ME 10 x d0 (d0 = 10, NFwFM 50) on a Criteo-like
vocabulary, beside a per-set-loop reference computing each interaction the way the reference
code does (benchmarks/reference_models.py). Ratios come from the same run. Also: achieved
GFLOP/s of dcnv2 beside a same-process fp32 matmul peak.

    python benchmarks/bench_models.py --quick      # about a minute
    python benchmarks/bench_models.py              # every configuration, more steps
    python benchmarks/bench_models.py --precision --backbones dnn dcnv2   # bf16 and torch.compile vs fp32
    python benchmarks/bench_models.py --device cuda                      # on a GPU, with peak memory
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reference_models import LoopModel  # noqa: E402

from recsys_scaling.budget import count_flops  # noqa: E402
from recsys_scaling.config import EmbeddingShape, ModelConfig, TrainConfig  # noqa: E402
from recsys_scaling.device import autocast  # noqa: E402
from recsys_scaling.models import Shape, build_model  # noqa: E402
from recsys_scaling.runtime import tune_allocator  # noqa: E402
from recsys_scaling.train import make_optimizers  # noqa: E402

CRITEO_LIKE = [105, 83, 71, 46, 50, 24, 27, 21, 37, 101, 84, 111, 70, 12133, 19414, 14590, 12646, 10873,
               11199, 18701, 5549, 16317, 13418, 57, 7884, 17148, 11087, 674, 15298, 14593, 16931, 3515,
               1788, 17263, 444, 10830, 1610, 5996, 9622]
BACKBONES = ["dnn", "ipnn", "nfwfm", "xdeepfm", "dcnv2", "finalmlp"]
BATCH = 2048


DEVICE = torch.device("cpu")


def batches(n: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        x = torch.stack([torch.randint(0, dim, (BATCH,), generator=g) for dim in CRITEO_LIKE], 1)
        y = (torch.rand(BATCH, generator=g) < 0.25).float()
        out.append((x.to(DEVICE), y.to(DEVICE)))
    return out


def sync() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize(DEVICE)


def training_step(model, sparse: bool = False, precision: str = "fp32", compile_model: bool = False):
    """One full step (zero grads, forward, BCE loss, backward, Adam) as a function of a batch."""
    model.to(DEVICE)
    model.train()
    if hasattr(model, "embedding"):
        optimizers = make_optimizers(model, TrainConfig(sparse_embedding=sparse))
    else:
        optimizers = [torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-6)]
    loss_fn = torch.nn.BCEWithLogitsLoss()
    forward = torch.compile(model) if compile_model else model

    def step(x, y):
        for opt in optimizers:
            opt.zero_grad(set_to_none=True)
        with autocast(precision, DEVICE):
            logits = forward(x)
        loss_fn(logits.float(), y).backward()
        for opt in optimizers:
            opt.step()

    return step


def samples_per_second(step, data, min_seconds: float) -> float:
    """Steps over the pre-built batches (cycling) until `min_seconds` and all batches are done."""
    start, steps = time.perf_counter(), 0
    while steps < len(data) or time.perf_counter() - start < min_seconds:
        step(*data[steps % len(data)])
        steps += 1
        if steps % 8 == 0:
            sync()
    sync()
    return BATCH * steps / (time.perf_counter() - start)


def best_rates(steps, data, warmup: int, rounds: int, min_seconds: float):
    """Best-of-`rounds` samples/s per step function, the functions timed in alternation so
    that a noisy moment of a shared machine hits each of them alike."""
    for step in steps:
        for x, y in data[:warmup]:
            step(x, y)
    best = [0.0] * len(steps)
    for _ in range(rounds):
        for i, step in enumerate(steps):
            best[i] = max(best[i], samples_per_second(step, data[warmup:], min_seconds))
    return best


def fused_model(backbone: str, k: int, d: int, me: bool):
    torch.manual_seed(0)
    return build_model(backbone, CRITEO_LIKE, Shape(len(CRITEO_LIKE), EmbeddingShape(k, d), me), ModelConfig(backbone=backbone))


def matmul_peak(seconds: float = 1.0, dtype=torch.float32) -> float:
    """GFLOP/s of a large matmul in this process on the benchmark's device."""
    n = 8192 if DEVICE.type == "cuda" else 1024
    a, b = torch.randn(2 * n, n, device=DEVICE, dtype=dtype), torch.randn(n, n, device=DEVICE, dtype=dtype)
    for _ in range(3):
        a @ b
    sync()
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        count += 1
    sync()
    return 2 * 2 * n * n * n * count / (time.perf_counter() - start) / 1e9


def peak_memory() -> str:
    if DEVICE.type != "cuda":
        return ""
    peak = torch.cuda.max_memory_allocated(DEVICE) / 2**20
    torch.cuda.reset_peak_memory_stats(DEVICE)
    return f" {peak:8.0f} MiB"


def precision_table(backbones, data, warmup: int, rounds: int, seconds: float) -> None:
    """fp32 eager against bf16 autocast and torch.compile, at ME 4 x d0 (the compile time is the
    first steps' extra time over eager's)."""
    print(f"\n{'backbone':9} {'config':10} {'fp32/s':>9} {'bf16/s':>9} {'ratio':>6} {'compiled/s':>10} {'ratio':>6} "
          f"{'compile s':>9}")
    for backbone in backbones:
        d0 = 50 if backbone == "nfwfm" else 10
        eager = training_step(fused_model(backbone, 4, d0, True))
        bf16 = training_step(fused_model(backbone, 4, d0, True), precision="bf16")
        compiled = training_step(fused_model(backbone, 4, d0, True), compile_model=True)
        start = time.perf_counter()
        for x, y in data[:2]:
            compiled(x, y)
        sync()
        compile_seconds = time.perf_counter() - start
        fp32_rate, bf16_rate, compiled_rate = best_rates([eager, bf16, compiled], data, warmup, rounds, seconds)
        print(f"{backbone:9} {'ME 4x' + str(d0):10} {fp32_rate:9.0f} {bf16_rate:9.0f} {bf16_rate / fp32_rate:5.2f}x "
              f"{compiled_rate:10.0f} {compiled_rate / fp32_rate:5.2f}x {compile_seconds:9.1f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer steps and configurations (~1 minute)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--backbones", nargs="*", default=BACKBONES)
    parser.add_argument("--sparse", action="store_true", help="also time sparse embedding updates (SparseAdam)")
    parser.add_argument("--precision", action="store_true",
                        help="only the bf16-autocast and torch.compile speed-ups over fp32 eager (ME 4 x d0)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda[:N]; on CUDA also peak memory")
    args = parser.parse_args()
    global DEVICE
    DEVICE = torch.device(args.device)
    torch.set_num_threads(args.threads)
    tune_allocator()
    steps, warmup = (3, 1) if args.quick else (6, 2)
    rounds = 2 if args.quick else 3
    data = batches(steps)
    seconds = 0.4 if args.quick else 1.0
    if args.precision:
        print(f"torch {torch.__version__} on {DEVICE}, {args.threads} threads, batch {BATCH}; best of {rounds} rounds")
        precision_table(args.backbones, data, warmup + 1, rounds, seconds)
        return
    print(f"torch {torch.__version__} on {DEVICE}, {args.threads} threads, batch {BATCH}, vocabulary "
          f"{sum(CRITEO_LIKE):,} rows x {len(CRITEO_LIKE)} fields; best of {rounds} alternating rounds "
          f"of at least {seconds} s each")
    print(f"{'backbone':9} {'config':10} {'fused/s':>9} {'loop/s':>9} {'ratio':>6}"
          + (f" {'peak mem':>12}" if DEVICE.type == "cuda" else ""))
    for backbone in args.backbones:
        d0 = 50 if backbone == "nfwfm" else 10
        configs = [("se", 1, d0), ("se", 1, 4 * d0), ("me", 4, d0)] + ([] if args.quick else [("me", 10, d0)])
        for arm, k, d in configs:
            me = arm == "me"
            timed = {"fused": training_step(fused_model(backbone, k, d, me))}
            if not (args.quick and arm == "se" and d > d0):  # the slowest references; full run has them
                timed["loop"] = training_step(LoopModel(backbone, CRITEO_LIKE, k, d, multi_embedding=me))
            if args.sparse and me:
                timed["sparse"] = training_step(fused_model(backbone, k, d, me), sparse=True)
            if DEVICE.type == "cuda":
                torch.cuda.reset_peak_memory_stats(DEVICE)
            rate = dict(zip(timed, best_rates(list(timed.values()), data, warmup, rounds, seconds)))
            memory = peak_memory()  # of the fused and loop models together
            label = f"{arm.upper()} {k}x{d}" if me else f"SE d={d}"
            loop = rate.get("loop")
            ratio = f"{rate['fused'] / loop:5.2f}x" if loop else "    -"
            print(f"{backbone:9} {label:10} {rate['fused']:9.0f} {(loop or float('nan')):9.0f} {ratio:>6}{memory}",
                  flush=True)
            if "sparse" in rate:
                print(f"{backbone:9} {label + ' sp':10} {rate['sparse']:9.0f} {'':9} "
                      f"{rate['sparse'] / rate['fused']:5.2f}x (vs dense)")
    peak = matmul_peak()
    for k, d in [(1, 10), (1, 40)]:
        (rate,) = best_rates([training_step(fused_model("dcnv2", k, d, False))], data, warmup, rounds, seconds)
        flops = 3 * count_flops("dcnv2", len(CRITEO_LIKE), d, k, multi_embedding=False)  # fwd + 2x bwd
        achieved = rate * flops / 1e9
        print(f"dcnv2 SE d={d}: {achieved:.1f} GFLOP/s achieved vs fp32 matmul peak {peak:.1f} GFLOP/s "
              f"({achieved / peak:.0%}) on {DEVICE}")


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    main()
