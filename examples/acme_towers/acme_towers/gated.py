"""A gated bilinear interaction tower (in the spirit of FiBiNET's bilinear layer and a GLU gate)."""
from __future__ import annotations

import torch
from torch import nn


class GatedBilinear(nn.Module):
    """Each field pair (i, j) interacts as <e_i W, e_j>; a field gate computed from all embeddings
    scales the pairs' contributions; an MLP layer turns the pair vector into `hidden` features."""

    def __init__(self, num_fields: int, embed_dim: int, hidden: int = 64):
        super().__init__()
        self.out_dim = hidden
        rows, cols = torch.triu_indices(num_fields, num_fields, offset=1)
        self.register_buffer("rows", rows, persistent=False)
        self.register_buffer("cols", cols, persistent=False)
        self.bilinear = nn.Linear(embed_dim, embed_dim, bias=False)
        self.gate = nn.Linear(num_fields * embed_dim, num_fields)
        self.mlp = nn.Sequential(nn.Linear(rows.numel() + num_fields * embed_dim, hidden), nn.ReLU())

    def forward(self, emb: torch.Tensor) -> torch.Tensor:  # (B, F, d) -> (B, hidden)
        gate = torch.sigmoid(self.gate(emb.flatten(1))).unsqueeze(-1)  # (B, F, 1)
        gated = emb * gate
        pairs = (self.bilinear(gated[:, self.rows]) * gated[:, self.cols]).sum(-1)  # (B, pairs)
        return self.mlp(torch.cat([pairs, gated.flatten(1)], dim=1))
