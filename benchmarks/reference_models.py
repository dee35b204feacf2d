"""Per-set-loop reference models for the benchmarks: K embedding tables and K interaction
modules in Python lists, each interaction computed the way the reference implementation
computes it (IPNN gathers every field pair by index, NFwFM and xDeepFM materialise the
B x F x F x d / B x F x H x d products). Architecturally the same models as the fused ones."""
from __future__ import annotations

import math
from typing import List, Sequence

import torch
from torch import nn


def block(n_in: int, n_out: int, dropout: float = 0.2) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, n_out), nn.BatchNorm1d(n_out), nn.ReLU(), nn.Dropout(dropout))


class DNNSet(nn.Module):
    def __init__(self, f, d, hidden, **_):
        super().__init__()
        self.mlp = block(f * d, hidden)

    def forward(self, e):
        return self.mlp(e.flatten(1))


class CrossSet(nn.Module):
    def __init__(self, f, d, hidden, layers=4, **_):
        super().__init__()
        dim = f * d
        self.cross = nn.ModuleList(nn.Linear(dim, dim) for _ in range(layers))
        for lin in self.cross:
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)
        self.mlp = block(dim, hidden)

    def forward(self, e):
        x0 = e.flatten(1)
        x = x0
        for lin in self.cross:
            x = x0 * lin(x) + x
        return self.mlp(x)


class InnerProductSet(nn.Module):
    def __init__(self, f, d, hidden, with_flat=False, **_):
        super().__init__()
        rows, cols = zip(*[(i, j) for i in range(f) for j in range(i + 1, f)])
        self.register_buffer("rows", torch.tensor(rows))
        self.register_buffer("cols", torch.tensor(cols))
        self.with_flat = with_flat
        self.mlp = block(len(rows) + (f * d if with_flat else 0), hidden)

    def forward(self, e):
        products = (e[:, self.rows] * e[:, self.cols]).sum(-1)  # B x pairs x d gathered
        return self.mlp(torch.cat([e.flatten(1), products], 1) if self.with_flat else products)


class FieldWeightedSet(nn.Module):
    def __init__(self, f, d, hidden, **_):
        super().__init__()
        self.r = nn.Parameter(torch.randn(f, f))
        self.norm = nn.BatchNorm1d(d)
        self.drop = nn.Dropout(0.2)
        self.mlp = block(d, hidden)

    def forward(self, e):
        outer = torch.einsum("bid,bjd->bdij", e, e)  # B x d x F x F
        h = (outer * self.r).sum((2, 3))
        return self.mlp(self.drop(self.norm(h)))


class CINSet(nn.Module):
    def __init__(self, f, d, hidden, cin_layers=(16, 16), **_):
        super().__init__()
        self.convs = nn.ModuleList()
        previous = f
        for size in cin_layers:
            self.convs.append(nn.Conv1d(f * previous, size, 1))
            previous = size
        self.mlp = block(f * d, hidden)

    def forward(self, e):
        b, f, d = e.shape
        h, pooled = e, []
        for conv in self.convs:
            z = torch.einsum("bhd,bmd->bhmd", e, h).reshape(b, -1, d)  # B x F x H x d
            h = torch.relu(conv(z))
            pooled.append(h.sum(-1))
        return torch.cat([torch.cat(pooled, 1), self.mlp(e.flatten(1))], 1)


class TwoStreamSet(nn.Module):
    def __init__(self, f, d, hidden, **_):
        super().__init__()
        self.x = nn.Sequential(block(f * d, hidden), block(hidden, hidden))
        self.y = nn.Sequential(block(f * d, hidden), block(hidden, hidden))

    def forward(self, e):
        flat = e.flatten(1)
        return torch.cat([self.x(flat), self.y(flat)], 1)


class MLPHead(nn.Module):
    def __init__(self, hidden):
        super().__init__()
        self.net = nn.Sequential(block(hidden, hidden), nn.Linear(hidden, 1))

    def forward(self, x):
        return self.net(x).squeeze(-1)


class CINHead(nn.Module):
    def __init__(self, hidden, cin_width=32):
        super().__init__()
        self.cin_width = cin_width
        self.cin = nn.Linear(cin_width, 1)
        self.dnn = MLPHead(hidden)

    def forward(self, x):
        return self.cin(x[:, : self.cin_width]).squeeze(-1) + self.dnn(x[:, self.cin_width :])


class FusionHead(nn.Module):
    def __init__(self, hidden):
        super().__init__()
        self.hidden = hidden
        self.wx, self.wy = nn.Linear(hidden, 1), nn.Linear(hidden, 1)
        self.wxy = nn.Parameter(torch.zeros(hidden, hidden))

    def forward(self, xy):
        x, y = xy[:, : self.hidden], xy[:, self.hidden :]
        return (self.wx(x) + self.wy(y)).squeeze(-1) + ((x @ self.wxy) * y).sum(-1)


SETS = {"dnn": (DNNSet, MLPHead), "dcnv2": (CrossSet, MLPHead), "ipnn": (InnerProductSet, MLPHead),
        "nfwfm": (FieldWeightedSet, MLPHead), "xdeepfm": (CINSet, CINHead), "finalmlp": (TwoStreamSet, FusionHead)}


class LoopModel(nn.Module):
    def __init__(self, backbone: str, field_dims: Sequence[int], num_sets: int, embed_dim: int,
                 hidden: int = 400, multi_embedding: bool = True):
        super().__init__()
        set_cls, head_cls = SETS[backbone]
        rows = int(sum(field_dims))
        self.register_buffer("offsets", torch.tensor([0, *list(field_dims)[:-1]]).cumsum(0))
        self.tables = nn.ModuleList(nn.Embedding(rows, embed_dim) for _ in range(num_sets))
        bound = math.sqrt(6.0 / (rows + embed_dim))
        for table in self.tables:
            nn.init.uniform_(table.weight, -bound, bound)
        f = len(field_dims)
        extra = {"with_flat": not multi_embedding} if backbone == "ipnn" else {}
        self.sets: List[nn.Module] = nn.ModuleList(set_cls(f, embed_dim, hidden, **extra) for _ in range(num_sets))
        self.head = head_cls(hidden)

    def forward(self, x):
        idx = x.long() + self.offsets
        outs = [module(table(idx)) for table, module in zip(self.tables, self.sets)]
        return self.head(torch.stack(outs).mean(0))
