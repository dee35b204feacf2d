"""xDeepFM without the linear term. Per set: a CIN (no split-half) whose layer k combines x0
and h_{k-1} field by field at each embedding coordinate with a 1x1 convolution
F*H_{k-1} -> H_k (bias) and ReLU, each layer sum-pooled over the coordinate; and
flatten(F*d) -> block(H). Mean over sets; logit = Linear(sum H_k, 1)(CIN) + head(DNN).

The convolution is applied to h first and x0 multiplied in after, so the largest
intermediate is B x H_k x F x d, never the B x F x F x d outer product."""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from ..base import Backbone, Shape
from ..layers import MLPHead, StackedBlock, block_params, linear_flops, linear_params, mlp_head_flops


class CIN(nn.Module):
    """K independent CINs. Internally set-first and channel-major, (K, C, B, d), so each layer
    is one GEMM per set: (H_k*F x H_{k-1}) by (H_{k-1} x B*d)."""

    def __init__(self, num_sets: int, num_fields: int, layer_sizes: Sequence[int]):
        super().__init__()
        self.weights, self.biases = nn.ParameterList(), nn.ParameterList()
        previous = num_fields
        for size in layer_sizes:
            bound = 1.0 / math.sqrt(num_fields * previous)  # as nn.Conv1d's default init
            # weight[k, o*F + i, j] multiplies x0_i * h_j into output channel o
            self.weights.append(nn.Parameter(torch.empty(num_sets, size * num_fields, previous).uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(torch.empty(num_sets, size, 1, 1).uniform_(-bound, bound)))
            previous = size

    def forward(self, emb):  # (K, B, F, d) -> (K, B, sum H_k)
        k, b, f, d = emb.shape
        x0 = emb.transpose(1, 2).contiguous()  # (K, F, B, d)
        h, pooled = x0, []
        for w, bias in zip(self.weights, self.biases):
            size = bias.shape[1]
            mixed = torch.bmm(w, h.reshape(k, h.shape[1], b * d)).view(k, size, f, b, d)
            h = F.relu((mixed * x0.unsqueeze(1)).sum(2) + bias)  # (K, H_k, B, d)
            pooled.append(h.sum(-1))  # (K, H_k, B)
        return torch.cat(pooled, dim=1).transpose(1, 2)


def cin_params(num_fields: int, layer_sizes: Sequence[int]) -> int:
    total, previous = 0, num_fields
    for size in layer_sizes:
        total += size * num_fields * previous + size
        previous = size
    return total


class CINAndDNNTower(nn.Module):
    def __init__(self, shape: Shape, cin_layers: Sequence[int], hidden: int, dropout: float):
        super().__init__()
        self.cin = CIN(shape.num_sets, shape.num_fields, cin_layers)
        self.block = StackedBlock(shape.num_sets, shape.flat_dim, hidden, dropout)

    def forward(self, emb):
        return torch.cat([self.cin(emb), self.block(emb.flatten(2))], dim=-1)


class CINAndDNNHead(nn.Module):
    def __init__(self, cin_width: int, hidden: int, dropout: float):
        super().__init__()
        self.cin_width = cin_width
        self.cin_out = nn.Linear(cin_width, 1)
        self.dnn = MLPHead(hidden, hidden, dropout)

    def forward(self, x):
        return self.cin_out(x[:, : self.cin_width]).squeeze(-1) + self.dnn(x[:, self.cin_width :])


class XDeepFM(Backbone):
    name = "xdeepfm"

    @classmethod
    def tower(cls, shape, cfg):
        return CINAndDNNTower(shape, cfg.cin_layers, cfg.hidden, cfg.dropout)

    @classmethod
    def tower_width(cls, shape, cfg):
        return sum(cfg.cin_layers) + cfg.hidden

    @classmethod
    def tower_params(cls, shape, cfg):
        per_set = cin_params(shape.num_fields, cfg.cin_layers) + block_params(shape.flat_dim, cfg.hidden)
        return shape.num_sets * per_set

    @classmethod
    def head(cls, shape, cfg):
        return CINAndDNNHead(sum(cfg.cin_layers), cfg.hidden, cfg.dropout)

    @classmethod
    def head_params(cls, shape, cfg):
        return linear_params(sum(cfg.cin_layers), 1) + MLPHead.num_params(cfg.hidden, cfg.hidden)

    @classmethod
    def tower_flops(cls, shape, cfg):
        f, d = shape.num_fields, shape.embed_dim
        cin, previous = 0, f
        for size in cfg.cin_layers:
            cin += previous * f * d + 2 * size * previous * f * d  # outer product, then the 1x1 conv
            previous = size
        return shape.num_sets * (cin + linear_flops(shape.flat_dim, cfg.hidden))

    @classmethod
    def head_flops(cls, shape, cfg):
        return linear_flops(sum(cfg.cin_layers), 1) + mlp_head_flops(cfg.hidden, cfg.hidden)
