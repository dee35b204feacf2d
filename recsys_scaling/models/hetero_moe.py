"""Heterogeneous multi-embedding mixture of experts (the online form described by Guo et al.).

Expert e owns embedding set e and is the per-set tower of backbone ``experts[e]`` (K = 1,
ME form); a tower whose width is not H gets a Linear(T, H) projection. Experts are combined
by their mean or by a per-example softmax gate computed from all sets' concatenated
embeddings, then a shared head block(H) -> Linear(H, 1). Experts differ in type, so they are
applied one after the other: there is nothing to batch across them.
"""
from __future__ import annotations

from typing import Dict, Sequence

import torch
from torch import nn

from ..config import Aggregation, EmbeddingShape, choice
from .base import Backbone, Shape, get_backbone
from .embedding import MultiEmbedding
from .layers import MLPHead, linear_flops, linear_params, mlp_head_flops


def _expert_shape(shape: Shape) -> Shape:
    return Shape(shape.num_fields, EmbeddingShape(1, shape.embed_dim), multi_embedding=True)


def _check(cfg, shape: Shape) -> None:
    if not cfg.experts:
        raise ValueError("model.experts: hetero_moe needs a non-empty list of expert backbones")
    if shape.num_sets != len(cfg.experts):
        raise ValueError(f"model.num_embeddings={shape.num_sets}: hetero_moe has one set per expert "
                         f"({len(cfg.experts)})")
    choice(Aggregation, cfg.aggregation, "model.aggregation")
    for name in cfg.experts:
        if get_backbone(name) is HeteroMoE:
            raise ValueError("model.experts: hetero_moe cannot be its own expert")


class HeteroMoEModel(nn.Module):
    def __init__(self, field_dims: Sequence[int], shape: Shape, cfg):
        super().__init__()
        _check(cfg, shape)
        self.expert_names = list(cfg.experts)
        self.embedding = MultiEmbedding(field_dims, shape.num_sets, shape.embed_dim)
        one = _expert_shape(shape)
        self.towers = nn.ModuleList()
        self.projections = nn.ModuleList()
        for name in cfg.experts:
            backbone = get_backbone(name)
            self.towers.append(backbone.tower(one, cfg))
            width = backbone.tower_width(one, cfg)
            self.projections.append(nn.Identity() if width == cfg.hidden else nn.Linear(width, cfg.hidden))
        self.gate = (nn.Linear(shape.num_sets * shape.flat_dim, shape.num_sets)
                     if cfg.aggregation == "gate" else None)
        self.head = MLPHead(cfg.hidden, cfg.hidden, cfg.dropout)
        # kept on the model's device: no host sync per training step
        self.register_buffer("_gate_sum", torch.zeros(shape.num_sets), persistent=False)
        self._gate_count = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        emb = self.embedding(x)  # (E, B, F, d)
        outputs = torch.stack(
            [proj(tower(emb[e : e + 1])[0]) for e, (tower, proj) in enumerate(zip(self.towers, self.projections))],
            dim=1,
        )  # (B, E, H)
        if self.gate is None:
            return self.head(outputs.mean(1))
        weights = torch.softmax(self.gate(emb.permute(1, 0, 2, 3).flatten(1)), dim=-1)  # (B, E)
        self._gate_sum += weights.detach().sum(0)
        self._gate_count += weights.shape[0]
        return self.head((weights.unsqueeze(-1) * outputs).sum(1))

    def diagnostics(self) -> Dict[str, float]:
        """Mean gate weight per expert over the examples seen since the last call."""
        if not self._gate_count:
            return {}
        means = (self._gate_sum / self._gate_count).cpu()
        self._gate_sum.zero_()
        self._gate_count = 0
        return {f"gate_{e}_{name}": float(w) for e, (name, w) in enumerate(zip(self.expert_names, means))}


class HeteroMoE(Backbone):
    name = "hetero_moe"

    @classmethod
    def label(cls, cfg) -> str:
        """e.g. hetero_moe-gate: mean and gated mixtures are different models in a report."""
        return f"{cls.name}-{cfg.aggregation}"

    @classmethod
    def build(cls, field_dims, shape, cfg):
        return HeteroMoEModel(field_dims, shape, cfg)

    @classmethod
    def dense_params(cls, shape, cfg):
        return _cost(shape, cfg, lambda b, s: b.tower_params(s, cfg), linear_params, MLPHead.num_params)

    @classmethod
    def flops(cls, shape, cfg):
        return _cost(shape, cfg, lambda b, s: b.tower_flops(s, cfg), linear_flops, mlp_head_flops)


def _cost(shape: Shape, cfg, tower_cost, linear_cost, head_cost) -> int:
    """Parameters or FLOPs of HeteroMoEModel, summed the way it is built: expert towers, their
    projections to H, the gate, the head."""
    _check(cfg, shape)
    one = _expert_shape(shape)
    total = head_cost(cfg.hidden, cfg.hidden)
    for name in cfg.experts:
        backbone = get_backbone(name)
        total += tower_cost(backbone, one)
        width = backbone.tower_width(one, cfg)
        total += 0 if width == cfg.hidden else linear_cost(width, cfg.hidden)
    if cfg.aggregation == "gate":
        total += linear_cost(shape.num_sets * shape.flat_dim, shape.num_sets)
    return total
