"""Analytic parameter counts: closed form from field_dims and the model config, no table allocated."""
from __future__ import annotations

from dataclasses import replace
from typing import Dict, Sequence

from .config import ModelConfig
from .models import Shape, get_backbone


def count_params(
    backbone: str,
    field_dims: Sequence[int],
    embed_dim: int,
    num_embeddings: int,
    multi_embedding: bool | None = None,
    **options,
) -> Dict[str, int]:
    """{"embedding", "dense", "total"} parameter counts of a model.

    `multi_embedding` picks the ME form (default: K > 1; it matters for IPNN only);
    `options` are ModelConfig fields (hidden, dropout, cross_layers, cin_layers, experts, ...).
    """
    cfg = replace(ModelConfig(backbone=backbone), **options)
    if multi_embedding is None:
        multi_embedding = num_embeddings > 1
    shape = Shape(len(field_dims), embed_dim, num_embeddings, multi_embedding)
    embedding = int(sum(int(v) for v in field_dims)) * num_embeddings * embed_dim
    dense = int(get_backbone(backbone).dense_params(shape, cfg))
    return {"embedding": embedding, "dense": dense, "total": embedding + dense}
