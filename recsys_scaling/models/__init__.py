"""Models: one SE/ME family (embeddings -> K towers -> mean -> head), plus hetero_moe."""
from __future__ import annotations

from . import backbones as _backbones  # noqa: F401  (registers the backbones)
from . import hetero_moe as _hetero_moe  # noqa: F401
from .base import BACKBONES, Backbone, Shape, build_model, get_backbone, model_label, uses_me_form

__all__ = ["BACKBONES", "Backbone", "Shape", "build_model", "get_backbone", "model_label", "uses_me_form"]
