"""One model family: embeddings -> K per-set towers -> mean over sets -> shared head.

SE is this family with K = 1. A backbone is a `Backbone` subclass declaring its per-set tower
and its head (with their closed-form parameter counts) and a `name` under which it registers
itself; `conf/model/<name>.yaml` selects it. Nothing here is keyed by backbone names.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Dict, Sequence, Type

import torch
from torch import nn

from ..config import EmbeddingShape
from .embedding import MultiEmbedding
from .layers import MLPHead, mlp_head_flops

BACKBONES: Dict[str, Type["Backbone"]] = {}


@dataclass(frozen=True)
class Shape:
    """What a tower needs to know about its input: the fields, the job's K and d, the form."""

    num_fields: int
    embedding: EmbeddingShape
    # The ME form (see `uses_me_form`); only IPNN's tower differs between its SE and ME forms.
    multi_embedding: bool

    @classmethod
    def of(cls, num_fields: int, embedding: EmbeddingShape, arm: str) -> "Shape":
        return cls(num_fields, embedding, uses_me_form(arm, embedding.num_embeddings))

    @property
    def num_sets(self) -> int:
        return self.embedding.num_embeddings

    @property
    def embed_dim(self) -> int:
        return self.embedding.embed_dim

    @property
    def flat_dim(self) -> int:
        return self.num_fields * self.embed_dim


def uses_me_form(arm: str, num_sets: int) -> bool:
    """ME with a single set is the SE base model (the paper's shared 1x column), so a backbone
    takes its ME form only with K > 1."""
    return arm == "me" and num_sets > 1


class Backbone:
    """Registry entry: builds a per-set tower and a head; counts their parameters analytically."""

    name: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.name:
            BACKBONES[cls.name] = cls

    # -- towers: (K, B, F, d) -> (K, B, T) ----------------------------------------------
    @classmethod
    def tower(cls, shape: Shape, cfg) -> nn.Module:
        raise NotImplementedError

    @classmethod
    def tower_width(cls, shape: Shape, cfg) -> int:
        raise NotImplementedError

    @classmethod
    def tower_params(cls, shape: Shape, cfg) -> int:
        raise NotImplementedError

    # -- head: (B, T) -> (B,) logits --------------------------------------------------
    @classmethod
    def head(cls, shape: Shape, cfg) -> nn.Module:
        raise NotImplementedError

    @classmethod
    def head_params(cls, shape: Shape, cfg) -> int:
        raise NotImplementedError

    @classmethod
    def label(cls, cfg) -> str:
        """The name runs and reports use for this model (variants may extend it)."""
        return cls.name

    @classmethod
    def check(cls, num_fields: int, embed_dim: int, cfg) -> None:
        """Raise a one-line ValueError if this model cannot be built and trained at (F, d); run
        before a job records anything. The built-ins are checked by their config's ranges."""

    # -- whole model ------------------------------------------------------------------
    @classmethod
    def build(cls, field_dims: Sequence[int], shape: Shape, cfg) -> nn.Module:
        return MultiEmbeddingModel(field_dims, shape, cls.tower(shape, cfg), cls.head(shape, cfg))

    @classmethod
    def dense_params(cls, shape: Shape, cfg) -> int:
        return cls.tower_params(shape, cfg) + cls.head_params(shape, cfg)

    # -- forward FLOPs per example of the dense part: 2 per multiply-add; lookups, norms and
    # activations not counted; element-wise products counted where they scale like a layer.
    @classmethod
    def tower_flops(cls, shape: Shape, cfg) -> int:
        raise NotImplementedError

    @classmethod
    def head_flops(cls, shape: Shape, cfg) -> int:
        raise NotImplementedError

    @classmethod
    def flops(cls, shape: Shape, cfg) -> int:
        return cls.tower_flops(shape, cfg) + cls.head_flops(shape, cfg)


class MLPHeadBackbone(Backbone):
    """A backbone whose tower ends in block(H) and whose head is block(H) -> Linear(H, 1)."""

    @classmethod
    def tower_width(cls, shape, cfg):
        return cfg.hidden

    @classmethod
    def head(cls, shape, cfg):
        return MLPHead(cfg.hidden, cfg.hidden, cfg.dropout)

    @classmethod
    def head_params(cls, shape, cfg):
        return MLPHead.num_params(cfg.hidden, cfg.hidden)

    @classmethod
    def head_flops(cls, shape, cfg):
        return mlp_head_flops(cfg.hidden, cfg.hidden)


def get_backbone(name: str) -> Type[Backbone]:
    try:
        return BACKBONES[name]
    except KeyError:
        raise ValueError(f"model.backbone={name!r}: unknown; choose from {sorted(BACKBONES)}") from None


class MultiEmbeddingModel(nn.Module):
    def __init__(self, field_dims: Sequence[int], shape: Shape, tower: nn.Module, head: nn.Module):
        super().__init__()
        self.embedding = MultiEmbedding(field_dims, shape.num_sets, shape.embed_dim)
        self.tower = tower
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        per_set = self.tower(self.embedding(x))  # (K, B, T)
        return self.head(per_set.mean(0))

    def diagnostics(self) -> Dict[str, float]:
        return {}


def model_label(model_cfg) -> str:
    """The backbone's name as runs and reports show it (hetero_moe names its experts)."""
    return get_backbone(model_cfg.backbone).label(model_cfg)


def build_model(backbone: str, field_dims: Sequence[int], shape: Shape, cfg) -> nn.Module:
    return get_backbone(backbone).build(field_dims, shape, cfg)
