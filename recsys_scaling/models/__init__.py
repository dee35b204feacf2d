"""Models: one SE/ME family (embeddings -> K towers -> mean -> head), hetero_moe, and a user's own tower."""
from __future__ import annotations

from . import backbones as _backbones  # noqa: F401  (registers the backbones)
from . import hetero_moe as _hetero_moe  # noqa: F401
from .base import BACKBONES, Backbone, Shape, build_model, get_backbone, model_label, uses_me_form
from .custom import Custom, TowerError, check_tower, measure, tower_class
from .stacked import StackedTowers

__all__ = ["BACKBONES", "Backbone", "Custom", "Shape", "StackedTowers", "TowerError", "build_model", "check_tower",
           "get_backbone", "measure", "model_label", "tower_class", "uses_me_form"]
