"""NFwFM: per set h = sum_i sum_j r_ij (e_i * e_j) with a full F x F matrix r (standard normal,
diagonal included) -> BatchNorm1d(d) -> Dropout -> block(H); mean over sets -> block(H) ->
Linear(H, 1). Computed as sum_i e_i * (r e)_i: B x F x d memory, never B x F x F x d."""
from __future__ import annotations

import torch
from torch import nn

from ..base import MLPHeadBackbone, Shape
from ..layers import StackedBatchNorm, StackedBlock, block_params, dropout, linear_flops


class FieldWeightedTower(nn.Module):
    def __init__(self, shape: Shape, hidden: int, dropout: float):
        super().__init__()
        k, f = shape.num_sets, shape.num_fields
        self.field_weights = nn.Parameter(torch.randn(k, f, f))
        self.norm = StackedBatchNorm(k, shape.embed_dim)
        self.dropout = dropout
        self.block = StackedBlock(k, shape.embed_dim, hidden, dropout)

    def forward(self, emb):  # (K, B, F, d)
        k, b, f, d = emb.shape
        fields_first = emb.transpose(1, 2).reshape(k, f, b * d)
        mixed = torch.bmm(self.field_weights, fields_first)  # sum_j r_ij e_j, one GEMM per set
        h = (fields_first * mixed).sum(1).view(k, b, d)
        h = dropout(self.norm(h), self.dropout, self.training)
        return self.block(h)


class NFwFM(MLPHeadBackbone):
    name = "nfwfm"

    @classmethod
    def tower(cls, shape, cfg):
        return FieldWeightedTower(shape, cfg.hidden, cfg.dropout)

    @classmethod
    def tower_params(cls, shape, cfg):
        d = shape.embed_dim
        per_set = shape.num_fields**2 + 2 * d + block_params(d, cfg.hidden)
        return shape.num_sets * per_set

    @classmethod
    def tower_flops(cls, shape, cfg):
        return shape.num_sets * (2 * shape.num_fields**2 * shape.embed_dim + 2 * shape.flat_dim
                                 + linear_flops(shape.embed_dim, cfg.hidden))
