"""Towers a user might bring (model.tower=towers:CLASS, with tests/ on the path): good ones, and
one for each fault the tool must refuse in one line."""
from __future__ import annotations

import torch
from torch import nn


class FlatMLP(nn.Module):
    """flatten(F*d) -> Linear(H) -> ReLU: 2*F*d*H forward FLOPs per example."""

    def __init__(self, num_fields: int, embed_dim: int, hidden: int = 16):
        super().__init__()
        self.linear = nn.Linear(num_fields * embed_dim, hidden)

    def forward(self, emb):
        return torch.relu(self.linear(emb.flatten(1)))


class NormedTower(nn.Module):
    """Linear -> BatchNorm -> ReLU -> Dropout, with an out_dim attribute: buffers and randomness."""

    def __init__(self, num_fields: int, embed_dim: int, hidden: int = 12, dropout: float = 0.0):
        super().__init__()
        self.out_dim = hidden
        self.net = nn.Sequential(nn.Linear(num_fields * embed_dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(),
                                 nn.Dropout(dropout))

    def forward(self, emb):
        return self.net(emb.flatten(1))


class PairTower(nn.Module):
    """Field-pair inner products through a non-persistent index table (a constant all sets share)."""

    def __init__(self, num_fields: int, embed_dim: int, hidden: int = 8):
        super().__init__()
        rows, cols = torch.triu_indices(num_fields, num_fields, offset=1)
        self.register_buffer("rows", rows, persistent=False)
        self.register_buffer("cols", cols, persistent=False)
        self.scale = nn.Parameter(torch.randn(embed_dim))
        self.linear = nn.Linear(rows.numel(), hidden)

    def forward(self, emb):
        pairs = (emb[:, self.rows] * self.scale * emb[:, self.cols]).sum(-1)
        return torch.relu(self.linear(pairs))


class DataDependent(FlatMLP):
    """Branches on a value (.item()): vmap cannot map it, so it runs as a loop."""

    def forward(self, emb):
        out = super().forward(emb)
        return out * 2 if emb.sum().item() > 1e9 else out


def not_a_class(num_fields, embed_dim):
    return nn.Linear(num_fields * embed_dim, 4)


class NotAModule:
    def __init__(self, num_fields: int, embed_dim: int):
        pass


class NoFieldArguments(nn.Module):
    def __init__(self, hidden: int = 8):
        super().__init__()
        self.linear = nn.Linear(hidden, hidden)


class WrongShape(FlatMLP):
    def forward(self, emb):
        return emb * self.linear.weight.sum()  # (B, F, d): not flattened to features


class MakesNaN(FlatMLP):
    def forward(self, emb):
        return super().forward(emb) * float("nan")


class Detached(FlatMLP):
    def forward(self, emb):
        return super().forward(emb.detach())


class NoParameters(nn.Module):
    def __init__(self, num_fields: int, embed_dim: int):
        super().__init__()

    def forward(self, emb):
        return emb.flatten(1)


class RaisesInConstructor(nn.Module):
    def __init__(self, num_fields: int, embed_dim: int):
        super().__init__()
        raise RuntimeError("needs a GPU")
