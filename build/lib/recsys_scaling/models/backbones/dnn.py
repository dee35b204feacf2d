"""DNN: per set flatten(F*d) -> block(H); mean over sets -> block(H) -> Linear(H, 1)."""
from __future__ import annotations

from torch import nn

from ..base import MLPHeadBackbone, Shape
from ..layers import StackedBlock, block_params, linear_flops


class FlatTower(nn.Module):
    def __init__(self, shape: Shape, hidden: int, dropout: float):
        super().__init__()
        self.block = StackedBlock(shape.num_sets, shape.flat_dim, hidden, dropout)

    def forward(self, emb):  # (K, B, F, d)
        return self.block(emb.flatten(2))


class DNN(MLPHeadBackbone):
    name = "dnn"

    @classmethod
    def tower(cls, shape, cfg):
        return FlatTower(shape, cfg.hidden, cfg.dropout)

    @classmethod
    def tower_params(cls, shape, cfg):
        return shape.num_sets * block_params(shape.flat_dim, cfg.hidden)

    @classmethod
    def tower_flops(cls, shape, cfg):
        return shape.num_sets * linear_flops(shape.flat_dim, cfg.hidden)
