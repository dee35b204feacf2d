"""Example towers for recsys-scaling: plain torch modules, nothing imported from the tool.

A tower maps field embeddings (B, F, d) to features (B, H). recsys-scaling builds it as
CLASS(num_fields=F, embed_dim=d, **model.tower_args) and adds the K embedding sets, the mean
over sets and the head itself.
"""
from .gated import GatedBilinear

__all__ = ["GatedBilinear"]
