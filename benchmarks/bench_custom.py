"""A user's tower in its ME form: K copies fused (stack_module_state + vmap) against a loop over
the K copies, both built from the same modules, on one machine in one run.

Times a training step of the towers alone (forward, backward, Adam; batch 256 and 2048) on Criteo's 39
fields at d = 10, for the example package's GatedBilinear and for a two-layer MLP tower, at
K = 2, 4 and 10 (SE, K = 1, runs the plain module). The embedding table is left out: its lookups and Adam update are the same
in both forms (benchmarks/bench_models.py times whole models).

    python benchmarks/bench_custom.py --quick      # about a minute on 2 cores
    python benchmarks/bench_custom.py
    python benchmarks/bench_custom.py --device cuda     # where fewer, larger kernels should pay
"""
from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples" / "acme_towers"))
from acme_towers import GatedBilinear  # noqa: E402

from recsys_scaling.models import StackedTowers  # noqa: E402

FIELDS, DIM = 39, 10
BATCHES = (256, 2048)


class MLPTower(nn.Module):
    def __init__(self, num_fields: int, embed_dim: int, hidden: int = 256):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(num_fields * embed_dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(),
                                 nn.Linear(hidden, hidden), nn.ReLU())

    def forward(self, emb):
        return self.net(emb.flatten(1))


TOWERS = {"GatedBilinear(hidden=64)": lambda: GatedBilinear(FIELDS, DIM, hidden=64),
          "MLP(256, 256)": lambda: MLPTower(FIELDS, DIM)}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def step_seconds(towers: StackedTowers, emb: torch.Tensor, steps: int) -> float:
    towers.to(emb.device)
    optimizer = torch.optim.Adam(towers.parameters(), lr=1e-3)
    towers.train()

    def step():
        optimizer.zero_grad(set_to_none=True)
        towers(emb).square().mean().backward()
        optimizer.step()

    for _ in range(2):  # warm-up
        step()
    best = float("inf")
    for _ in range(steps):
        _sync(emb.device)
        start = time.perf_counter()
        step()
        _sync(emb.device)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer timed steps")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    args = parser.parse_args()
    device = torch.device(args.device)
    steps = 5 if args.quick else 20
    print(f"training step of the towers alone on {device}, F={FIELDS}, d={DIM}, {torch.get_num_threads()} threads; best of "
          f"{steps} steps; speed-up = loop time / fused time")
    print(f"{'tower':26s} {'batch':>6s} {'K':>3s} {'loop ms':>9s} {'fused ms':>9s} {'speed-up':>9s}")
    for name, make in TOWERS.items():
        for batch in BATCHES:
            for k in (2, 4, 10):
                torch.manual_seed(0)
                copies = [make() for _ in range(k)]
                emb = torch.randn(k, batch, FIELDS, DIM, device=device)
                loop = step_seconds(StackedTowers(copy.deepcopy(copies), fused=False), emb, steps)
                fused = step_seconds(StackedTowers(copies, fused=True), emb, steps)
                print(f"{name:26s} {batch:6d} {k:3d} {1e3 * loop:9.2f} {1e3 * fused:9.2f} {loop / fused:8.2f}x")


if __name__ == "__main__":
    main()
