"""FinalMLP (feature-selection gate off). Per set two streams, each flatten(F*d) -> block(H)
-> block(H); each stream averaged over sets; fusion logit
w_x.x + b_x + w_y.y + b_y + x^T W_xy y with W_xy (H x H) zero-initialised."""
from __future__ import annotations

import torch
from torch import nn

from ..base import Backbone, Shape
from ..layers import StackedBlock, block_params, linear_flops, linear_params


class TwoStreamTower(nn.Module):
    def __init__(self, shape: Shape, hidden: int, dropout: float):
        super().__init__()
        k = shape.num_sets

        def stream():
            return nn.Sequential(StackedBlock(k, shape.flat_dim, hidden, dropout),
                                 StackedBlock(k, hidden, hidden, dropout))

        self.stream_x, self.stream_y = stream(), stream()

    def forward(self, emb):
        flat = emb.flatten(2)
        return torch.cat([self.stream_x(flat), self.stream_y(flat)], dim=-1)


class BilinearFusion(nn.Module):
    def __init__(self, hidden: int):
        super().__init__()
        self.hidden = hidden
        self.w_x = nn.Linear(hidden, 1)
        self.w_y = nn.Linear(hidden, 1)
        self.w_xy = nn.Parameter(torch.zeros(hidden, hidden))

    def forward(self, xy):
        x, y = xy[:, : self.hidden], xy[:, self.hidden :]
        bilinear = ((x @ self.w_xy) * y).sum(-1)
        return (self.w_x(x) + self.w_y(y)).squeeze(-1) + bilinear


class FinalMLP(Backbone):
    name = "finalmlp"

    @classmethod
    def tower(cls, shape, cfg):
        return TwoStreamTower(shape, cfg.hidden, cfg.dropout)

    @classmethod
    def tower_width(cls, shape, cfg):
        return 2 * cfg.hidden

    @classmethod
    def tower_params(cls, shape, cfg):
        stream = block_params(shape.flat_dim, cfg.hidden) + block_params(cfg.hidden, cfg.hidden)
        return shape.num_sets * 2 * stream

    @classmethod
    def head(cls, shape, cfg):
        return BilinearFusion(cfg.hidden)

    @classmethod
    def head_params(cls, shape, cfg):
        return 2 * linear_params(cfg.hidden, 1) + cfg.hidden**2

    @classmethod
    def tower_flops(cls, shape, cfg):
        stream = linear_flops(shape.flat_dim, cfg.hidden) + linear_flops(cfg.hidden, cfg.hidden)
        return shape.num_sets * 2 * stream

    @classmethod
    def head_flops(cls, shape, cfg):
        return 2 * linear_flops(cfg.hidden, 1) + linear_flops(cfg.hidden, cfg.hidden) + 2 * cfg.hidden
