"""Layers holding K independent weight sets, applied with batched ops (no loop over K).

Tensors inside a tower are laid out set-first: (K, B, ...), so a stacked linear map is a
single `baddbmm` of (K, B, in) by (K, in, out).
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


def linear_params(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out


def linear_flops(n_in: int, n_out: int) -> int:
    """Forward FLOPs per example of Linear(n_in, n_out): one multiply and one add per weight."""
    return 2 * n_in * n_out


def mlp_head_flops(n_in: int, hidden: int) -> int:
    return linear_flops(n_in, hidden) + linear_flops(hidden, 1)


def block_params(n_in: int, n_out: int) -> int:
    """Linear -> BatchNorm1d (weight and bias) -> ReLU -> Dropout."""
    return linear_params(n_in, n_out) + 2 * n_out


class _Dropout(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, p: float) -> torch.Tensor:
        mask = (torch.rand_like(x) >= p).to(x.dtype).mul_(1.0 / (1.0 - p))
        ctx.save_for_backward(mask)
        return x * mask

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (mask,) = ctx.saved_tensors
        return grad * mask, None


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Inverted dropout, distributed exactly as F.dropout (zero with probability p, else scale
    by 1/(1-p)) but with the mask drawn from uniforms: on CPU, F.dropout's Bernoulli sampler
    costs about twice as much per step (benchmarks/bench_models.py)."""
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    return _Dropout.apply(x, p)


class Dropout(nn.Module):
    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)


class StackedLinear(nn.Module):
    """K independent Linear(n_in, n_out); initialised per set exactly like nn.Linear."""

    def __init__(self, num_sets: int, n_in: int, n_out: int):
        super().__init__()
        self.in_features, self.out_features = n_in, n_out
        self.weight = nn.Parameter(torch.empty(num_sets, n_in, n_out))
        self.bias = nn.Parameter(torch.empty(num_sets, n_out))
        bound = 1.0 / math.sqrt(n_in) if n_in > 0 else 0.0
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (K, B, in) -> (K, B, out)
        return torch.baddbmm(self.bias.unsqueeze(1), x, self.weight)


class StackedBatchNorm(nn.Module):
    """K independent BatchNorm1d(C): one BatchNorm over K*C channels (BN is per channel)."""

    def __init__(self, num_sets: int, channels: int):
        super().__init__()
        self.num_sets, self.channels = num_sets, channels
        self.norm = nn.BatchNorm1d(num_sets * channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (K, B, C)
        k, b, c = x.shape
        flat = x.transpose(0, 1).reshape(b, k * c)
        return self.norm(flat).view(b, k, c).transpose(0, 1)


class StackedBlock(nn.Module):
    """K independent Linear -> BatchNorm1d -> ReLU -> Dropout."""

    def __init__(self, num_sets: int, n_in: int, n_out: int, dropout: float):
        super().__init__()
        self.out_features = n_out
        self.linear = StackedLinear(num_sets, n_in, n_out)
        self.norm = StackedBatchNorm(num_sets, n_out)
        self.dropout = dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.norm(self.linear(x)))
        return dropout(h, self.dropout, self.training)


def block(n_in: int, n_out: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, n_out), nn.BatchNorm1d(n_out), nn.ReLU(), Dropout(dropout))


class MLPHead(nn.Module):
    """The shared tail: block(H) -> Linear(H, 1), logits out."""

    def __init__(self, n_in: int, hidden: int, dropout: float):
        super().__init__()
        self.net = nn.Sequential(block(n_in, hidden, dropout), nn.Linear(hidden, 1))

    @staticmethod
    def num_params(n_in: int, hidden: int) -> int:
        return block_params(n_in, hidden) + linear_params(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)
