"""K embedding sets of size d for F fields, held in one table of K*d columns."""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn


class MultiEmbedding(nn.Module):
    def __init__(self, field_dims: Sequence[int], num_sets: int, embed_dim: int, sparse: bool = False):
        super().__init__()
        self.num_fields, self.num_sets, self.embed_dim = len(field_dims), num_sets, embed_dim
        rows = int(sum(field_dims))
        self.table = nn.Embedding(rows, num_sets * embed_dim, sparse=sparse)
        offsets = torch.tensor([0, *list(field_dims)[:-1]], dtype=torch.long).cumsum(0)
        self.register_buffer("offsets", offsets, persistent=False)
        # Xavier-uniform on each set's (rows x d) table; all slices share that shape and bound.
        bound = math.sqrt(6.0 / (rows + embed_dim))
        nn.init.uniform_(self.table.weight, -bound, bound)

    @staticmethod
    def num_params(field_dims: Sequence[int], num_sets: int, embed_dim: int) -> int:
        return int(sum(field_dims)) * num_sets * embed_dim

    def set_table(self, k: int) -> torch.Tensor:
        """Set k's (rows x d) table, a view."""
        return self.table.weight[:, k * self.embed_dim : (k + 1) * self.embed_dim]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, F) local field indices -> (K, B, F, d)."""
        e = self.table(x.long() + self.offsets)  # (B, F, K*d)
        b = e.shape[0]
        return e.view(b, self.num_fields, self.num_sets, self.embed_dim).permute(2, 0, 1, 3)
