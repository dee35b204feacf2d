"""DCNv2: per set L full-rank cross layers x_{l+1} = x0 * (W_l x_l + b_l) + x_l -> block(H);
mean over sets -> block(H) -> Linear(H, 1). W_l xavier-uniform, b_l = 0."""
from __future__ import annotations

import math

import torch
from torch import nn

from ..base import MLPHeadBackbone, Shape
from ..layers import StackedBlock, block_params, linear_flops


class CrossTower(nn.Module):
    def __init__(self, shape: Shape, layers: int, hidden: int, dropout: float):
        super().__init__()
        k, dim = shape.num_sets, shape.flat_dim
        bound = math.sqrt(6.0 / (2 * dim))
        self.weights = nn.ParameterList(
            nn.Parameter(torch.empty(k, dim, dim).uniform_(-bound, bound)) for _ in range(layers)
        )
        self.biases = nn.ParameterList(nn.Parameter(torch.zeros(k, 1, dim)) for _ in range(layers))
        self.block = StackedBlock(k, dim, hidden, dropout)

    def forward(self, emb):  # (K, B, F, d)
        x0 = emb.flatten(2)
        x = x0
        for w, b in zip(self.weights, self.biases):
            x = x0 * torch.baddbmm(b, x, w) + x
        return self.block(x)


class DCNv2(MLPHeadBackbone):
    name = "dcnv2"

    @classmethod
    def tower(cls, shape, cfg):
        return CrossTower(shape, cfg.cross_layers, cfg.hidden, cfg.dropout)

    @classmethod
    def tower_params(cls, shape, cfg):
        dim = shape.flat_dim
        cross = cfg.cross_layers * (dim * dim + dim)
        return shape.num_sets * (cross + block_params(dim, cfg.hidden))

    @classmethod
    def tower_flops(cls, shape, cfg):
        return shape.num_sets * (cfg.cross_layers * (linear_flops(shape.flat_dim, shape.flat_dim) + 2 * shape.flat_dim)
                                 + linear_flops(shape.flat_dim, cfg.hidden))
