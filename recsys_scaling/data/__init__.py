"""Data layer: encoded caches, the synthetic benchmark, batch loading."""
from __future__ import annotations

from typing import List, Optional

from omegaconf import OmegaConf

from .cache import EncodedData
from .loader import BatchLoader
from .synthetic import synthetic_dataset

__all__ = ["BatchLoader", "EncodedData", "declared_field_dims", "load_dataset"]


def declared_field_dims(data_cfg) -> Optional[List[int]]:
    """Vocabulary sizes known without reading data: declared ones, or the synthetic generator's."""
    if data_cfg.field_dims:
        return [int(v) for v in data_cfg.field_dims]
    if data_cfg.kind == "synthetic":
        return [int(v) for v in data_cfg.synthetic.cardinalities]
    return None


def load_dataset(data_cfg, progress: bool = False) -> EncodedData:
    """Open (building if needed) the encoded cache a data config describes."""
    if data_cfg.kind != "synthetic":
        raise ValueError(f"data.kind={data_cfg.kind!r}: only 'synthetic' is supported so far")
    synthetic = OmegaConf.to_object(data_cfg.synthetic)
    return synthetic_dataset(data_cfg.name, synthetic, list(data_cfg.split), data_cfg.cache_dir, progress)
