"""Models: one SE/ME family (embeddings -> K towers -> mean -> head), plus hetero_moe."""
from __future__ import annotations

from typing import Sequence

from torch import nn

from . import backbones as _backbones  # noqa: F401  (registers the backbones)
from . import hetero_moe as _hetero_moe  # noqa: F401
from .base import BACKBONES, Backbone, Shape, get_backbone, uses_me_form

__all__ = ["BACKBONES", "Backbone", "Shape", "build_model", "get_backbone", "model_label", "uses_me_form"]


def model_label(model_cfg) -> str:
    return get_backbone(model_cfg.backbone).label(model_cfg)


def build_model(backbone: str, field_dims: Sequence[int], shape: Shape, cfg) -> nn.Module:
    return get_backbone(backbone).build(field_dims, shape, cfg)
