"""Training throughput against FuxiCTR on the same SE models, data and settings.

FuxiCTR (PyPI `fuxictr==2.3.10`, the optional `bench` extra; it needs `polars<2` and pulls Ray,
so a separate virtual environment with recsys-scaling installed `--no-deps` beside it works too)
ships its layers, not its model zoo: the peers below are composed from `fuxictr.pytorch.layers`
(FeatureEmbedding, MLP_Block, CrossNetV2, InnerProductInteraction, CompressedInteractionNet) the
way its documentation describes, with the same architecture as ours (d = 10, hidden 400, dropout
0.2, batch norm, 4 cross layers, CIN (16, 16)) and FuxiCTR's optimizer (torch Adam). Both train
on the same pre-built batches of a Criteo-like vocabulary in one process: samples/s of a full
step (forward, backward, optimizer) and the ratio.

    python benchmarks/bench_peers.py            # ~2 minutes
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_models import CRITEO_LIKE, batches, best_rates, fused_model, training_step  # noqa: E402

from recsys_scaling.runtime import tune_allocator  # noqa: E402



def feature_map(field_dims):
    from fuxictr.features import FeatureMap

    fmap = FeatureMap("bench", "/tmp")
    for i, dim in enumerate(field_dims):
        fmap.features[f"f{i}"] = {"type": "categorical", "vocab_size": int(dim), "source": ""}
    fmap.num_fields = len(field_dims)
    fmap.labels = ["label"]
    return fmap


class FuxiPeer(nn.Module):
    """FuxiCTR's FeatureEmbedding plus a backbone built from its layers; logits out."""

    def __init__(self, field_dims, d: int = 10, hidden: int = 400, dropout: float = 0.2):
        super().__init__()
        from fuxictr.pytorch import layers

        self.layers, self.f, self.d, self.hidden, self.dropout = layers, len(field_dims), d, hidden, dropout
        self.embedding = layers.FeatureEmbedding(feature_map(field_dims), d)
        self.build()

    def mlp(self, n_in: int, out=1):
        return self.layers.MLP_Block(n_in, [self.hidden, self.hidden], "ReLU", out, dropout_rates=self.dropout,
                                     batch_norm=True)

    def forward(self, x):
        emb = self.embedding({f"f{i}": x[:, i] for i in range(x.shape[1])})
        return self.interact(emb, emb.flatten(1)).squeeze(-1)


class DNNPeer(FuxiPeer):
    def build(self):
        self.dnn = self.mlp(self.f * self.d)

    def interact(self, emb, flat):
        return self.dnn(flat)


class DCNv2Peer(FuxiPeer):
    def build(self):
        self.cross = self.layers.CrossNetV2(self.f * self.d, 4)
        self.dnn = self.mlp(self.f * self.d)

    def interact(self, emb, flat):
        return self.dnn(self.cross(flat))


class IPNNPeer(FuxiPeer):
    def build(self):
        self.products = self.layers.InnerProductInteraction(self.f, output="inner_product")
        self.dnn = self.mlp(self.f * self.d + self.f * (self.f - 1) // 2)

    def interact(self, emb, flat):
        return self.dnn(torch.cat([flat, self.products(emb)], 1))


class XDeepFMPeer(FuxiPeer):
    def build(self):
        self.cin = self.layers.CompressedInteractionNet(self.f, [16, 16], output_dim=1)
        self.dnn = self.mlp(self.f * self.d)

    def interact(self, emb, flat):
        return self.dnn(flat) + self.cin(emb)


class FinalMLPPeer(FuxiPeer):
    def build(self):
        self.stream_x, self.stream_y = self.mlp(self.f * self.d, None), self.mlp(self.f * self.d, None)
        self.w_x, self.w_y = nn.Linear(self.hidden, 1), nn.Linear(self.hidden, 1)
        self.w_xy = nn.Parameter(torch.zeros(self.hidden, self.hidden))

    def interact(self, emb, flat):
        a, b = self.stream_x(flat), self.stream_y(flat)
        return self.w_x(a) + self.w_y(b) + ((a @ self.w_xy) * b).sum(-1, keepdim=True)


PEERS = {"dnn": DNNPeer, "ipnn": IPNNPeer, "xdeepfm": XDeepFMPeer, "dcnv2": DCNv2Peer, "finalmlp": FinalMLPPeer}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=1.5, help="timed seconds per model and round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; the best of each is kept")
    parser.add_argument("--backbones", nargs="*", default=list(PEERS))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tune_allocator()
    data = batches(4)
    print(f"{'backbone':9} {'recsys-scaling/s':>17} {'FuxiCTR/s':>10} {'ratio':>6}   (SE d=10, batch 2048, "
          f"{args.threads} threads, {sum(CRITEO_LIKE):,} vocabulary rows)")
    for backbone in args.backbones:
        ours_step = training_step(fused_model(backbone, 1, 10, False))
        torch.manual_seed(0)
        peer_step = training_step(PEERS[backbone](CRITEO_LIKE))
        ours, peer = best_rates([ours_step, peer_step], data, 1, args.rounds, args.seconds)
        print(f"{backbone:9} {ours:17.0f} {peer:10.0f} {ours / peer:5.2f}x", flush=True)


if __name__ == "__main__":
    main()
