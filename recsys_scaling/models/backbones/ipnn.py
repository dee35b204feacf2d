"""IPNN. SE form: [flatten(F*d) || the F(F-1)/2 inner products] -> block(H).
ME form: per set the inner products only -> block(H). Then mean over sets -> block(H) ->
Linear(H, 1). Inner products come from one batched Gram matrix per set (B x F x F), never
from a gathered B x pairs x d tensor."""
from __future__ import annotations

import torch
from torch import nn

from ..base import MLPHeadBackbone, Shape
from ..layers import StackedBlock, block_params, linear_flops


def num_pairs(num_fields: int) -> int:
    return num_fields * (num_fields - 1) // 2


class PairwiseInnerProducts(torch.autograd.Function):
    """(N, F, d) -> (N, pairs): e_i . e_j for i < j, from one batched Gram matrix. The Gram
    matrix is symmetric, so its gradient w.r.t. e is (S + S^T) e with S the scattered pair
    gradients: one batched matmul instead of autograd's two."""

    @staticmethod
    def forward(ctx, emb: torch.Tensor, pair_index: torch.Tensor) -> torch.Tensor:
        n, f, _ = emb.shape
        ctx.save_for_backward(emb, pair_index)
        return torch.bmm(emb, emb.transpose(1, 2)).view(n, f * f).index_select(1, pair_index)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        emb, pair_index = ctx.saved_tensors
        n, f, _ = emb.shape
        grad = grad.to(emb.dtype)  # under bf16 autocast the product was bf16, the embeddings fp32
        scattered = grad.new_zeros(n, f * f).index_copy_(1, pair_index, grad).view(n, f, f)
        return torch.bmm(scattered + scattered.transpose(1, 2), emb), None


class InnerProductTower(nn.Module):
    def __init__(self, shape: Shape, hidden: int, dropout: float):
        super().__init__()
        self.with_flat = not shape.multi_embedding
        rows, cols = torch.triu_indices(shape.num_fields, shape.num_fields, offset=1)
        self.register_buffer("pair_index", rows * shape.num_fields + cols, persistent=False)
        width = num_pairs(shape.num_fields) + (shape.flat_dim if self.with_flat else 0)
        self.block = StackedBlock(shape.num_sets, width, hidden, dropout)

    def forward(self, emb):  # (K, B, F, d)
        k, b, f, d = emb.shape
        products = PairwiseInnerProducts.apply(emb.reshape(k * b, f, d), self.pair_index).view(k, b, -1)
        features = torch.cat([emb.flatten(2), products], dim=2) if self.with_flat else products
        return self.block(features)


class IPNN(MLPHeadBackbone):
    name = "ipnn"

    @classmethod
    def tower(cls, shape, cfg):
        return InnerProductTower(shape, cfg.hidden, cfg.dropout)

    @classmethod
    def tower_params(cls, shape, cfg):
        width = num_pairs(shape.num_fields) + (0 if shape.multi_embedding else shape.flat_dim)
        return shape.num_sets * block_params(width, cfg.hidden)

    @classmethod
    def tower_flops(cls, shape, cfg):
        return shape.num_sets * (2 * num_pairs(shape.num_fields) * shape.embed_dim + linear_flops(
            num_pairs(shape.num_fields) + (0 if shape.multi_embedding else shape.flat_dim), cfg.hidden))
